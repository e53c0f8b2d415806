"""Our queue-aware fills against hftbacktest's on the same tape, rule, latency and queue model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import evolve
from tapebuilder import write_tape

from backtests.fidelity import compare
from data.catalog import open_tape, parse_time

ROOT = Path(__file__).resolve().parent.parent
REAL = "data/real/ethusdt-perp-20240808"


@pytest.mark.parametrize("queue_model", ["prob_power", "risk_averse"])
def test_fills_agree_with_hftbacktest_on_the_synthetic_sample(queue_model):
    """A market-sized order (the window's median print) on the first 20 minutes of the sample."""
    tape = open_tape(ROOT / "data/sample")
    report = compare(tape, queue_model=queue_model, end_ns=parse_time("+20min", tape, "end"))
    assert report["latency_ms"] == 400.0  # the sample's venue profile (sei-clob): one block
    assert report["flashmm"]["fills"] > 50 and report["hftbacktest"]["fills"] > 50
    assert 0.9 <= report["fill_count_ratio"] <= 1.1
    assert 0.9 <= report["maker_volume_ratio"] <= 1.1


@pytest.mark.slow
@pytest.mark.parametrize("queue_model", ["prob_power", "risk_averse"])
def test_fills_agree_with_hftbacktest_on_the_real_ethusdt_tape(queue_model):
    """The real Binance tape (two clocks, 100 ms updates, a deep book, real trade sizes), through
    the CLI at its defaults: the order is market-sized (the median print, 0.071 ETH) and the
    latency the venue profile's (binance-usdm, 50 ms)."""
    out = subprocess.run([sys.executable, "-m", "app.cli", "fidelity", "--catalog", str(ROOT / REAL),
                          "--queue-model", queue_model, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert (report["order_qty"], report["latency_ms"]) == (0.071, 50.0)
    assert report["flashmm"]["fills"] > 300 and report["hftbacktest"]["fills"] > 300
    assert 0.9 <= report["fill_count_ratio"] <= 1.1
    assert 0.9 <= report["maker_volume_ratio"] <= 1.1


def test_hftbacktest_fills_a_whole_order_from_a_smaller_print_through_it(tmp_path):
    """The residual difference, where we judge hftbacktest wrong. We rest a buy of 50 at 0.4000;
    the level empties and a seller prints 10 at 0.3999, through our price. hftbacktest fills all
    50 from that print of 10; FlashMM fills 10, because a fill never exceeds what traded (had our
    order been there, the seller would have filled 10 of it and stopped). On a real tape a sweep
    arrives as several prints microseconds apart, so FlashMM fills the same orders and volume in
    more steps: `fill_step_ratio` runs 1.3-1.4 there while filled orders and volume agree."""
    steps = [{"t": 400, "bid": {"0.4000": 0}, "trades": [("sell", "0.3999", 10.0)]}]
    report = compare(open_tape(write_tape(tmp_path / "tape", evolve(steps))), order_qty=50.0, latency_ms=0.0)
    assert report["flashmm"]["maker_volume"] == 10.0 and report["hftbacktest"]["maker_volume"] == 50.0
    assert report["flashmm"]["fills"] == report["hftbacktest"]["fills"] == 1


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
