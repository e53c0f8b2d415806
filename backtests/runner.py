"""Run one backtest: the tape streamed through a NautilusTrader BacktestEngine, then the report.

The tape is fed chunk by chunk (`run(streaming=True)`), which bounds memory on long tapes and
drives the progress bar. Everything a user needs to audit the run lands in its run directory.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import tomli_w
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FillModel, LatencyModel, MakerTakerFeeModel
from nautilus_trader.config import LoggingConfig, RiskEngineConfig
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money
from tqdm import tqdm

from backtests.config import BacktestConfig
from backtests.metrics import FILL_COLUMNS, QUOTE_COLUMNS, TOB_COLUMNS, Analytics, Limits, compute
from backtests.recorder import RecorderConfig, RunRecorder
from data.catalog import Tape, open_tape, parse_time
from data.instrument import currency_pair
from strategies.control import register_halt_endpoint
from strategies.market_maker import MarketMaker

NS = 1_000_000_000


@dataclass
class RunResult:
    run_dir: Path | None
    metrics: dict
    analytics: Analytics
    orders: pd.DataFrame
    quotes: pd.DataFrame
    strategy: MarketMaker
    account_cash_change: float
    account_base_change: float


def run_backtest(
    config: BacktestConfig,
    out: str | Path | None = None,
    progress: bool = False,
    write: bool = True,
) -> RunResult:
    strat_cfg = config.strategy_config()
    tape = open_tape(config.run.catalog, config.run.instrument_id or str(strat_cfg.instrument_id))
    if tape.instrument.id != strat_cfg.instrument_id:
        raise ValueError(f"strategy.instrument_id {strat_cfg.instrument_id} is not the tape's {tape.instrument.id}")
    start_ns, end_ns = window(config, tape)

    venue = config.venue
    engine, instrument = build_engine(config, tape)
    strategy = MarketMaker(strat_cfg)
    engine.add_strategy(strategy)
    recorder = RunRecorder(RecorderConfig(instrument_id=instrument.id, strategy_id=strategy.id))
    engine.add_actor(recorder)
    register_halt_endpoint(engine.kernel.msgbus, engine.kernel.risk_engine)

    wall0 = time.perf_counter()
    events = stream(engine, tape, start_ns, end_ns, config.run.chunk_minutes, progress)
    engine.end()
    wall = time.perf_counter() - wall0

    account = engine.portfolio.account(instrument.id.venue)
    cash_change = float(account.balance_total(instrument.quote_currency)) - venue.starting_quote
    base_change = float(account.balance_total(instrument.base_currency)) - venue.starting_base
    orders = _orders_frame(engine, strategy)
    tob = pd.DataFrame(recorder.tob, columns=TOB_COLUMNS)
    fills = pd.DataFrame(recorder.fills, columns=FILL_COLUMNS)
    quotes = pd.DataFrame(recorder.quotes, columns=QUOTE_COLUMNS).astype({"bid": float, "ask": float})
    analytics = compute(
        tob, fills, quotes, orders,
        Limits(strat_cfg.order_size, strat_cfg.max_position, strat_cfg.max_notional),
        start_ns=int(tob["ts"].iloc[0]) if len(tob) else start_ns, end_ns=end_ns,
        sample_interval_ns=config.run.sample_interval_ms * 1_000_000,
    )
    metrics = dict(analytics.metrics)
    metrics.update({
        "events_processed": events,
        "wall_seconds": round(wall, 3),
        "fill_model": venue.fill_model,
        "latency_ms": venue.latency_ms,
        "halted": strategy.halted,
        "trading_state": engine.kernel.risk_engine.trading_state.name,
        "halt_reason": strategy.halt_reason,
        "orders_submitted": int(len(orders)),
        "strategy_stats": dict(strategy.stats),
        "window": {"start": _iso(start_ns), "end": _iso(end_ns)},
        "synthetic_data": bool(tape.meta.get("synthetic", False)),
    })
    engine.dispose()

    run_dir = _write_run(config, out, metrics, analytics, orders, quotes) if write else None
    return RunResult(run_dir, metrics, analytics, orders, quotes, strategy, cash_change, base_change)


def build_engine(config: BacktestConfig, tape: Tape) -> tuple[BacktestEngine, CurrencyPair]:
    """A BacktestEngine with the venue and instrument the config describes, and no trader yet."""
    venue = config.venue
    instrument = currency_pair(
        tape.instrument.id, tape.instrument.price_precision, tape.instrument.size_precision,
        venue.maker_fee, venue.taker_fee,
    )
    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("FLASHMM-001"),
        logging=LoggingConfig(log_level="ERROR"),
        risk_engine=RiskEngineConfig(bypass=False),
    ))
    latency = int(venue.latency_ms * 1_000_000)
    engine.add_venue(
        venue=instrument.id.venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        starting_balances=[
            Money(venue.starting_quote, instrument.quote_currency),
            Money(venue.starting_base, instrument.base_currency),
        ],
        book_type=BookType.L2_MBP,
        fill_model=FillModel(prob_fill_on_limit=1.0, prob_slippage=0.0, random_seed=config.run.seed),
        fee_model=MakerTakerFeeModel(),
        # Explicit: LatencyModel's own default base latency is not what we want.
        latency_model=LatencyModel(base_latency_nanos=latency) if latency else None,
        trade_execution=False,
    )
    engine.add_instrument(instrument)
    return engine, instrument


def window(config: BacktestConfig, tape: Tape) -> tuple[int, int]:
    start_ns = parse_time(config.run.start, tape, "run.start") or tape.start_ns
    end_ns = parse_time(config.run.end, tape, "run.end") or tape.end_ns
    if end_ns <= start_ns:
        raise ValueError(f"run window is empty: start {_iso(start_ns)} is not before end {_iso(end_ns)}")
    return start_ns, end_ns


def stream(engine: BacktestEngine, tape: Tape, start_ns: int, end_ns: int, chunk_minutes: int, progress: bool) -> int:
    events = 0
    total_s = (end_ns - start_ns) / NS
    bar = tqdm(total=round(total_s), unit="s", desc="backtest", disable=not progress, leave=False)
    for batches, trades in tape.parts(start_ns, end_ns, chunk_ns=chunk_minutes * 60 * NS):
        # Trades first so that, at equal timestamps, a block's prints precede its book batch
        # (the engine's sort is stable); the book batch must still be registered as book data.
        if trades:
            engine.add_data(trades)
        if batches:
            engine.add_data(batches)
        engine.run(streaming=True)
        engine.clear_data()
        events += len(trades) + sum(len(b.deltas) for b in batches)
        last = max(batches[-1].ts_init if batches else 0, trades[-1].ts_init if trades else 0)
        bar.update(round((last - start_ns) / NS) - bar.n)
    bar.close()
    return events


def _orders_frame(engine: BacktestEngine, strategy: MarketMaker) -> pd.DataFrame:
    rows = []
    for order in engine.cache.orders(strategy_id=strategy.id):
        rows.append({
            "client_order_id": order.client_order_id.value,
            "venue_order_id": order.venue_order_id.value if order.venue_order_id else None,
            "side": order.side_string(),
            "price": float(order.price),
            "quantity": float(order.quantity),
            "filled_qty": float(order.filled_qty),
            "avg_px": float(order.avg_px) if order.avg_px else None,
            "status": order.status_string(),
            "post_only": order.is_post_only,
            "ts_init": order.ts_init,
            "ts_last": order.ts_last,
        })
    columns = ["client_order_id", "venue_order_id", "side", "price", "quantity", "filled_qty", "avg_px",
               "status", "post_only", "ts_init", "ts_last"]
    return pd.DataFrame(rows, columns=columns)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _write_run(config: BacktestConfig, out, metrics, analytics: Analytics, orders, quotes) -> Path:
    base = Path(out or config.run.out)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = base / f"{config.run.name}-{stamp}-s{config.run.seed}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    resolved = config.to_dict()
    resolved["strategy"] = json.loads(config.strategy_config().json())
    resolved["strategy"] = {k: v for k, v in resolved["strategy"].items() if v is not None}
    (run_dir / "config.toml").write_text(tomli_w.dumps(resolved))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    analytics.fills.to_parquet(run_dir / "fills.parquet", index=False)
    orders.to_parquet(run_dir / "orders.parquet", index=False)
    analytics.equity.to_parquet(run_dir / "equity.parquet", index=False)
    quotes.to_parquet(run_dir / "quotes.parquet", index=False)
    return run_dir
