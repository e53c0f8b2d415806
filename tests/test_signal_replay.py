"""A backtest's signal, precomputed chunk by chunk and replayed, is the online actor's signal.

Per book batch the replayed SignalData must equal what the online SignalActor publishes inside the
engine (same features, model calls, fallback and breaker), so the runs are the same byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtests.config import load_config
from backtests.runner import run_backtest

ROOT = Path(__file__).resolve().parent.parent
FILES = ("signal.parquet", "fills.parquet", "orders.parquet", "quotes.parquet", "equity.parquet")


def both_ways(tmp_path: Path, config: Path, overrides: dict) -> dict[str, Path]:
    runs = {}
    for replay in (True, False):
        cfg = load_config(config, {**overrides, "strategy.use_signal": True, "signal.replay": replay,
                                   "run.chunk_minutes": 2})  # several chunks: the precompute's state carries over
        runs["replay" if replay else "online"] = run_backtest(cfg, out=tmp_path / str(replay)).run_dir
    return runs


def metrics_of(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("wall_seconds")
    return metrics


@pytest.mark.parametrize("config, window", [
    ("backtests/configs/sample.toml", {"run.start": "+130min", "run.end": "+140min"}),  # seeded mid-tape
    ("backtests/configs/ethusdt_real.toml", {"run.start": "+60s", "run.end": "+150s",  # a deep real book
                                              "signal.model": str(ROOT / "models/artifacts/ethusdt")}),
])
def test_replayed_signal_is_the_online_signal(tmp_path, config, window):
    runs = both_ways(tmp_path, ROOT / config, window)
    for name in FILES:
        assert (runs["replay"] / name).read_bytes() == (runs["online"] / name).read_bytes(), name
    replay, online = metrics_of(runs["replay"]), metrics_of(runs["online"])
    assert replay == online
    assert replay["signal"]["model_blocks"] > 500 and replay["fill_count"] > 0
