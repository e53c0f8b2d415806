"""One clock: decisions and analytics run on the engine's clock (ts_init, when data reached us).

A recorded row carries two times: the venue's (`ts_event`) and the receive time (`ts_init`). On a
real capture they differ by a second or more (the Binance tape in data/real runs 1.23-1.27 s
ahead), so anything that mixes them reorders fills against the book. The same tape with every
`ts_event` moved must give the same run, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nautilus_trader.model.data import OrderBookDelta, TradeTick

from backtests.config import parse_config
from backtests.runner import run_backtest
from data.catalog import open_tape, write_catalog
from data.synth import SynthParams, generate

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ("fills.parquet", "orders.parquet", "quotes.parquet", "equity.parquet", "signal.parquet")


def shifted_copy(src: Path, out: Path, shift_ns: int) -> Path:
    """The tape at `src` with every record's ts_event moved by `shift_ns` (ts_init unchanged)."""
    tape = open_tape(src)
    deltas, trades = [], []
    for batches, ticks in tape.parts():
        for batch in batches:
            for d in batch.deltas:
                deltas.append(OrderBookDelta(d.instrument_id, d.action, d.order, d.flags, d.sequence,
                                             d.ts_event + shift_ns, d.ts_init))
        for t in ticks:
            trades.append(TradeTick(t.instrument_id, t.price, t.size, t.aggressor_side, t.trade_id,
                                    t.ts_event + shift_ns, t.ts_init))
    return write_catalog(out, tape.instrument, deltas, trades, dict(tape.meta, ts_event_shift_ns=shift_ns))


@pytest.fixture(scope="module")
def tapes(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("clock")
    busy = SynthParams(regime_trade_rate=(0.8, 1.0, 1.2))
    original = generate(hours=0.04, seed=5, out=base / "original", params=busy)
    return {
        "original": original,
        "ahead": shifted_copy(original, base / "ahead", 1_270_000_000),  # the venue's clock runs ahead
        "behind": shifted_copy(original, base / "behind", -1_000_000_000),
    }


def run(catalog: Path, out: Path) -> Path:
    config = parse_config({
        "run": {"name": "clock", "seed": 3, "catalog": str(catalog), "out": str(out)},
        "venue": {"latency_ms": 250.0},
        "signal": {"model": str(ROOT / "models/artifacts/sample")},
        "strategy": {"instrument_id": "SEI/USDC.SEI", "use_signal": True, "half_spread_bps": 2.0,
                     "requote_interval_ms": 300},
    })
    result = run_backtest(config, out=out)
    assert result.metrics["fill_count"] > 5 and result.metrics["orders_submitted"] > 20
    assert result.metrics["signal"]["model_blocks"] > 0
    return result.run_dir


def comparable_metrics(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("wall_seconds")
    metrics["signal"].pop("inference_us_p50", None)
    return metrics


def test_moving_the_venue_clock_changes_nothing(tapes, tmp_path):
    runs = {name: run(path, tmp_path / name) for name, path in tapes.items()}
    base = runs.pop("original")
    for name, run_dir in runs.items():
        for file in RUN_FILES:
            assert (run_dir / file).read_bytes() == (base / file).read_bytes(), f"{name}: {file} differs"
        assert comparable_metrics(run_dir) == comparable_metrics(base), name
