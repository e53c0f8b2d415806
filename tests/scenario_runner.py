"""Run the real backtest stack (catalog -> engine -> strategy -> analytics) on a hand-built tape."""

from __future__ import annotations

from pathlib import Path

from tapebuilder import Block, write_tape

from backtests.config import parse_config
from backtests.runner import RunResult, run_backtest

BASE_STRATEGY = {
    "instrument_id": "SEI/USDC.SEI",
    "levels": 1,
    "order_size": 100.0,
    "spread_model": "fixed",
    "half_spread_bps": 4.9,  # 0.000196 at 0.4005: just under two ticks
    "min_spread_bps": 2.0,
    "fair_value": "mid",
    "linear_skew_bps": 0.0,
    "size_skew": 0.0,
    "max_position": 1000.0,
    "max_notional": 1000.0,
    "requote_tolerance_bps": 1.0,
}


def run_tape(tmp_path: Path, blocks: list[Block], strategy: dict | None = None, venue: dict | None = None,
             write: bool = False) -> RunResult:
    catalog = write_tape(tmp_path / "tape", blocks)
    raw = {
        "run": {"name": "scenario", "seed": 1, "catalog": str(catalog), "out": str(tmp_path / "runs")},
        "venue": {"latency_ms": 0.0, **(venue or {})},
        "strategy": {**BASE_STRATEGY, **(strategy or {})},
    }
    return run_backtest(parse_config(raw), write=write)


def submitted(result: RunResult) -> list[tuple[str, float, float]]:
    orders = result.orders.sort_values("ts_init", kind="stable")
    return [(r.side, round(r.price, 4), r.quantity) for r in orders.itertuples()]
