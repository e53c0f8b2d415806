"""Our queue-aware fills against hftbacktest's on the same tape, rule, latency and queue model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtests.fidelity import compare
from data.catalog import open_tape, parse_time

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("queue_model", ["prob_power", "risk_averse"])
def test_fill_counts_agree_with_hftbacktest_within_25_percent(queue_model):
    tape = open_tape(ROOT / "data/sample")
    report = compare(tape, order_qty=100.0, latency_ms=400.0, queue_model=queue_model,
                     end_ns=parse_time("+20min", tape, "end"))
    print(f"\n{queue_model}: fill-count ratio {report['fill_count_ratio']:.3f}, "
          f"maker-volume ratio {report['maker_volume_ratio']:.3f}")
    assert report["flashmm"]["fills"] > 20 and report["hftbacktest"]["fills"] > 20
    assert 0.75 <= report["fill_count_ratio"] <= 1.25
    assert 0.75 <= report["maker_volume_ratio"] <= 1.25


def test_fidelity_cli_prints_both_engines_and_ratios():
    out = subprocess.run([sys.executable, "-m", "app.cli", "fidelity", "--catalog", str(ROOT / "data/sample"),
                          "--end", "+5min"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    for needle in ("FlashMM/NT", "hftbacktest", "fill-count ratio", "maker-volume ratio"):
        assert needle in out.stdout


def test_fidelity_without_hftbacktest_names_the_extra_to_install(tmp_path):
    """The node's image installs no extras: there `flashmm fidelity` must say what to install."""
    blocked = tmp_path / "hftbacktest"
    blocked.mkdir()
    (blocked / "__init__.py").write_text("raise ImportError('No module named hftbacktest')\n")
    out = subprocess.run([sys.executable, "-m", "app.cli", "fidelity", "--catalog", str(ROOT / "data/sample"),
                          "--end", "+1min"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "needs hftbacktest" in out.stderr and "pip install -e '.[fidelity]'" in out.stderr
