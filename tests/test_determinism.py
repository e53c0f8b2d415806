"""Simulations are deterministic: the same inputs and seed give the same bytes, however busy the
machine is. Inside a backtest the signal's inference time is simulated (a configured figure), never
measured, so a loaded machine cannot change which blocks use the model, the fallback, or the fills."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from backtests.config import load_config
from backtests.runner import run_backtest

ROOT = Path(__file__).resolve().parent.parent
FILES = ("fills.parquet", "orders.parquet", "quotes.parquet", "signal.parquet")


def _spin() -> None:
    while True:
        pass


def run(out: Path) -> Path:
    config = load_config(ROOT / "backtests/configs/sample.toml",
                         {"run.start": "+120min", "run.end": "+128min", "strategy.use_signal": True})
    return run_backtest(config, out=out).run_dir


def test_same_bytes_under_an_artificial_cpu_hog(tmp_path):
    quiet = run(tmp_path / "quiet")
    hogs = [multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
            for _ in range(os.cpu_count() or 2)]
    for hog in hogs:
        hog.start()
    try:
        loaded = run(tmp_path / "loaded")
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    for name in FILES:
        assert (quiet / name).read_bytes() == (loaded / name).read_bytes(), f"{name} differs under load"
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (quiet, loaded))
    assert a["signal"]["model_blocks"] > 1000 and a["fill_count"] > 10
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b
