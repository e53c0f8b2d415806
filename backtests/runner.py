"""Run one backtest: the tape streamed through a NautilusTrader BacktestEngine, then the report.

The tape is fed chunk by chunk (`run(streaming=True)`), which bounds memory on long tapes and
drives the progress bar. Everything a user needs to audit the run lands in its run directory.
"""

from __future__ import annotations

import gc
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import tomli_w
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import LatencyModel, MakerTakerFeeModel
from nautilus_trader.config import LoggingConfig, RiskEngineConfig
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import CustomData, DataType
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.identifiers import ClientId, TraderId
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money
from tqdm import tqdm

from backtests.config import BacktestConfig, as_logged
from backtests.fills.arrival import CommandArrivals
from backtests.fills.module import QueueFillModule
from backtests.fills.registry import fill_simulation
from backtests.metrics import Analytics, Costs, Limits, compute
from backtests.purge import CachePurger
from backtests.recorder import RecorderConfig, RunRecorder
from data.catalog import Tape, iso_utc, open_tape, parse_time
from data.instrument import currency_pair, instrument_summary
from data.levels import ColumnFeed
from data.venues import venue_profile
from strategies.control import register_halt_endpoint
from strategies.market_maker import MarketMaker

if TYPE_CHECKING:
    from models.replay import SignalReplayActor

NS = 1_000_000_000
FIRST_CHUNK_NS = 3 * 60 * NS  # see stream


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
    signals: pd.DataFrame


def run_backtest(
    config: BacktestConfig,
    out: str | Path | None = None,
    progress: bool = False,
    write: bool = True,
    strategy_cls: type[MarketMaker] = MarketMaker,
) -> RunResult:
    tape = open_tape(config.run.catalog, config.run.instrument_id or str(config.strategy_config().instrument_id))
    config = config.resolved(tape.meta)  # the venue profile's values wherever the file left them unset
    strat_cfg = config.strategy_config()
    if tape.instrument.id != strat_cfg.instrument_id:
        raise ValueError(f"strategy.instrument_id {strat_cfg.instrument_id} is not the tape's {tape.instrument.id}")
    start_ns, end_ns = window(config, tape)

    venue = config.venue
    engine, instrument, queue_module = build_engine(config, tape)
    # The signal's precompute and the queue-fill module replay every delta: they read them as
    # columns from the catalog rather than from NautilusTrader's objects (data/levels.py). Without
    # either, nothing reads the columns and they are not read.
    precomputed = strat_cfg.use_signal and config.signal.replay
    feed = ColumnFeed() if queue_module is not None or precomputed else None
    if queue_module is not None:
        queue_module.read_columns_from(feed)
    signal_actor = _signal_actor(config, instrument.id) if strat_cfg.use_signal else None
    if signal_actor is not None:
        engine.add_actor(signal_actor)  # before the strategy: a batch's signal is out before it quotes
    strategy = strategy_cls(as_logged(strat_cfg, config.run.log_level))
    strategy.set_action_cost(venue.action_cost)
    engine.add_strategy(strategy)
    replayed = precomputed and signal_actor is not None
    recorder = RunRecorder(RecorderConfig(instrument_id=instrument.id, strategy_id=strategy.id,
                                          signal_data=not replayed))
    if replayed:
        signal_actor.on_rows = recorder.record_signals  # the replay's rows, a chunk at a time
    engine.add_actor(recorder)
    engine.add_actor(CachePurger())
    register_halt_endpoint(engine.kernel.msgbus, engine.kernel.risk_engine)

    # What exists before the run (modules, the engine) is not garbage: frozen, the collector stops
    # rescanning it on every full collection (~2% of a run), and a forked signal worker does not
    # copy its pages by touching their collector headers. Collected first, so that what an earlier
    # run in this process left (a sweep worker's) is freed rather than kept frozen; unfrozen after.
    gc.collect()
    gc.freeze()
    wall0 = time.perf_counter()
    replay = signal_actor if precomputed else None
    signal_worker = False
    try:
        signal_worker = replay is not None and config.signal.worker and replay.start_worker()
        events = stream(engine, tape, start_ns, end_ns, config.run.chunk_minutes, progress, replay, feed)
        if replay is not None:
            replay.finish()
    finally:
        if replay is not None:
            replay.abandon()
        gc.unfreeze()
    wind_down(engine, strategy, latency_model(venue))
    wall = time.perf_counter() - wall0
    left_open = len(engine.cache.orders_open(strategy_id=strategy.id)) + len(
        engine.cache.orders_inflight(strategy_id=strategy.id))

    account = engine.portfolio.account(instrument.id.venue)
    cash_change = float(account.balance_total(instrument.quote_currency)) - venue.starting_quote
    base_change = float(account.balance_total(instrument.base_currency)) - venue.starting_base
    orders = recorder.orders(engine.cache)
    analytics, quotes = session_analytics(
        recorder, orders, strat_cfg, start_ns, end_ns, config.run.sample_interval_ms * 1_000_000,
        instrument.quote_currency.code, venue.action_cost,
    )
    metrics = dict(analytics.metrics)
    metrics.update({
        "events_processed": events,
        "wall_seconds": round(wall, 3),
        "fill_model": venue.fill_model,
        "queue_model": venue.queue_model if venue.fill_model == "queue" else None,
        "queue_power": venue.queue_power if venue.fill_model == "queue" and venue.queue_model == "prob_power" else None,
        "latency_ms": venue.latency_ms,
        "venue": {"profile": venue.profile, "maker_fee": venue.maker_fee, "taker_fee": venue.taker_fee,
                  "action_cost": venue.action_cost},
        "instrument": instrument_summary(instrument),
        "queue_fills": dict(queue_module.stats) if queue_module else None,
        "signal": signal_actor.engine.summary() if signal_actor else None,
        "signal_worker": signal_worker,  # the precomputed signal came from a forked worker process
        "halted": strategy.halted,
        "trading_state": engine.kernel.risk_engine.trading_state.name,
        "halt_reason": strategy.halt_reason,
        "orders_submitted": int(len(orders)),
        "orders_left_open": left_open,
        "strategy_stats": dict(strategy.stats),
        "window": {"start": iso_utc(start_ns), "end": iso_utc(end_ns)},
        "synthetic_data": bool(tape.meta.get("synthetic", False)),
    })
    engine.dispose()

    signals = recorder.signals.frame()
    run_dir = (_write_run(config, out, metrics, analytics, orders, quotes, signals if signal_actor else None)
               if write else None)
    return RunResult(run_dir, metrics, analytics, orders, quotes, strategy, cash_change, base_change, signals)


def build_engine(
    config: BacktestConfig, tape: Tape, exact_arrivals: bool | None = None
) -> tuple[BacktestEngine, CurrencyPair, QueueFillModule | None]:
    """A BacktestEngine with the venue and instrument the config describes, and no trader yet
    (plus the queue fill module when the venue uses queue fills).

    On a continuous venue (an API venue, a real exchange tape) a command reaches the venue exactly
    its latency after it was sent (`CommandArrivals`). On a block-gated venue (a chain) it lands
    with the first block after that, behind the block's own events: NautilusTrader's own handling,
    which hands the venue a due command after the next record. `exact_arrivals` overrides the
    venue's choice (fidelity compares with hftbacktest, whose latency is exact)."""
    venue = config.resolved(tape.meta).venue
    if exact_arrivals is None:
        exact_arrivals = not (venue.profile and venue_profile(venue.profile).block_gated)
    instrument = currency_pair(
        tape.instrument.id, tape.instrument.price_precision, tape.instrument.size_precision,
        venue.maker_fee, venue.taker_fee,
    )
    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("FLASHMM-001"),
        logging=LoggingConfig(
            # NautilusTrader's logging costs ~12% of a run even when it prints nothing: bypassed
            # unless the config asks for a level.
            log_level=config.run.log_level if config.run.log_level != "OFF" else "ERROR",
            bypass_logging=config.run.log_level == "OFF",
            # With queue fills the module owns resting-order fills and the matching engine is told
            # "no liquidity" for them; it would log that as an error on every crossed update.
            log_component_levels={f"OrderMatchingEngine({instrument.id.venue})": "OFF"}
            if venue.fill_model == "queue" else None,
        ),
        risk_engine=RiskEngineConfig(bypass=False),
    ))
    sim = fill_simulation(venue, instrument, config.run.seed)
    engine.add_venue(
        venue=instrument.id.venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        starting_balances=[
            Money(venue.starting_quote, instrument.quote_currency),
            Money(venue.starting_base, instrument.base_currency),
        ],
        book_type=BookType.L2_MBP,
        modules=sim.modules,
        fill_model=sim.fill_model,
        fee_model=MakerTakerFeeModel(),
        latency_model=latency_model(venue),
        trade_execution=False,
    )
    engine.add_instrument(instrument)
    if exact_arrivals and (latency := latency_model(venue)) is not None:
        engine.add_actor(CommandArrivals(latency))
    return engine, instrument, sim.queue_module


def latency_model(venue) -> LatencyModel | None:
    """Insert and cancel latency; set explicitly, as LatencyModel's own base default is not ours."""
    ms = 1_000_000
    insert = int((venue.latency_ms if venue.insert_latency_ms is None else venue.insert_latency_ms) * ms)
    cancel = int((venue.latency_ms if venue.cancel_latency_ms is None else venue.cancel_latency_ms) * ms)
    if insert == 0 and cancel == 0:
        return None
    return LatencyModel(base_latency_nanos=0, insert_latency_nanos=insert, update_latency_nanos=insert,
                        cancel_latency_nanos=cancel)


class EndOfTape(Data):
    """A marker fed after the last record of a run: it moves the engine's clock on, so that the
    commands still in flight when the tape ended (the strategy's last cancels) reach the venue."""

    def __init__(self, ts: int) -> None:
        self._ts = ts

    @property
    def ts_event(self) -> int:
        return self._ts

    @property
    def ts_init(self) -> int:
        return self._ts


def wind_down(engine: BacktestEngine, strategy: MarketMaker, latency: LatencyModel | None) -> None:
    """End a run as a live session ends: the strategy pulls every quote while it is still running
    (an order still in flight is cancelled once the venue accepts it), the clock runs on until the
    last of those commands has reached the venue, then the engine stops. Without it the run would
    end with orders resting or half-cancelled, and `orders.parquet` would say so."""
    strategy.pull_quotes("end of tape")
    if latency is not None:
        now = engine.kernel.clock.timestamp_ns()
        # An order in flight at the end is accepted after the insert latency, then cancelled.
        drain = latency.insert_latency_nanos + latency.cancel_latency_nanos + 1
        engine.add_data([CustomData(DataType(EndOfTape), EndOfTape(now + drain))], client_id=ClientId("FLASHMM"))
        engine.run(streaming=True)
        engine.clear_data()
    engine.end()


def window(config: BacktestConfig, tape: Tape) -> tuple[int, int]:
    start_ns = parse_time(config.run.start, tape, "run.start") or tape.start_ns
    end_ns = parse_time(config.run.end, tape, "run.end") or tape.end_ns
    if end_ns <= start_ns:
        raise ValueError(f"run window is empty: start {iso_utc(start_ns)} is not before end {iso_utc(end_ns)} "
                         f"(the tape spans {iso_utc(tape.start_ns)} .. {iso_utc(tape.end_ns)})")
    return start_ns, end_ns


def _signal_actor(config: BacktestConfig, instrument_id):
    """The ML signal's actor: precomputed and replayed (`[signal] replay`, the default) or online."""
    from models.actor import SignalActor, SignalActorConfig  # torch loads only when a signal runs
    from models.replay import SignalPrecompute, SignalReplayActor, SignalReplayActorConfig
    from models.runtime import SignalEngine

    sig = config.signal
    simulated = sig.simulated_inference_us if sig.inference_latency == "simulated" else None
    if sig.replay:
        engine = SignalEngine(sig.model or None, sig.latency_budget_ms, sig.trip_after, int(sig.cooldown_secs * 1e9),
                              simulated)
        return SignalReplayActor(SignalReplayActorConfig(instrument_id=instrument_id),
                                 SignalPrecompute(instrument_id, engine))
    return SignalActor(SignalActorConfig(
        instrument_id=instrument_id, model_dir=sig.model or None, latency_budget_ms=sig.latency_budget_ms,
        trip_after=sig.trip_after, cooldown_secs=sig.cooldown_secs, simulated_latency_us=simulated,
    ))


def stream(engine: BacktestEngine, tape: Tape, start_ns: int, end_ns: int, chunk_minutes: int, progress: bool,
           signal: SignalReplayActor | None = None, feed: ColumnFeed | None = None) -> int:
    """Feed the tape window into the engine chunk by chunk. With a replayed `signal` the tape is
    read a chunk ahead: the signal gets each chunk's signal (`deliver`) just before the engine gets
    the chunk, then the next chunk (`prepare`), whose signal a worker computes while the engine
    runs this one.

    That order matters with a worker: when the run sends it a chunk, the worker has sent all it
    owed and is waiting to read, so neither side can block writing to the other (sending chunk
    k+1 before collecting chunk k's signal deadlocks once both exceed the pipe's buffer)."""
    events = 0
    total_s = (end_ns - start_ns) / NS
    bar = tqdm(total=round(total_s), unit="s", desc="backtest", disable=not progress, leave=False)
    # A worker computes each chunk's signal while the engine runs the one before; the first chunk
    # has nothing to overlap with, and the engine waits for its signal: a short one (3 minutes of
    # tape, ~15 ms of signal on the sample, instead of a whole chunk's ~70 ms), long enough for the
    # worker to finish the second chunk while the engine runs it.
    first = min(FIRST_CHUNK_NS, chunk_minutes * 60 * NS) if signal is not None and signal.worker is not None else None
    parts = tape.parts(start_ns, end_ns, chunk_ns=chunk_minutes * 60 * NS, columns=feed is not None,
                       first_chunk_ns=first)
    current = next(parts, None)
    if current is not None and signal is not None:
        signal.prepare(*_chunk_parts(current))
    while current is not None:
        batches, trades, columns = _chunk_parts(current)
        current = None
        if signal is not None:
            signal.deliver(batches)
            current = next(parts, None)  # read ahead only for the signal: two chunks in memory
            if current is not None:
                signal.prepare(*_chunk_parts(current))
        if feed is not None:
            feed.columns = columns
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
        if signal is None:
            current = next(parts, None)
    bar.close()
    if feed is not None:
        feed.columns = None
    return events


def _chunk_parts(part: tuple) -> tuple:
    """(batches, trades, delta columns or None) of a `Tape.parts` item, with or without columns."""
    return part if len(part) == 3 else (*part, None)


def session_analytics(
    recorder: RunRecorder, orders: pd.DataFrame, strat_cfg, start_ns: int, end_ns: int, sample_interval_ns: int,
    quote_currency: str, action_cost: float,
) -> tuple[Analytics, pd.DataFrame]:
    """Metrics, equity and fills of a finished session (a backtest or a live node's), and its quotes."""
    tob, fills, quotes = recorder.tob.frame(), recorder.fills.frame(), recorder.quotes.frame()
    analytics = compute(
        tob, fills, quotes, orders,
        Limits(strat_cfg.order_size, strat_cfg.max_position, strat_cfg.max_notional),
        # From the window's start (its seed snapshot is stamped just before it), or the first book.
        start_ns=max(int(tob["ts"].iloc[0]), start_ns) if len(tob) else start_ns, end_ns=end_ns,
        sample_interval_ns=sample_interval_ns,
        costs=Costs(quote_currency, action_cost, tuple(recorder.actions.frame()["ts"].tolist())),
    )
    return analytics, quotes


def _write_run(config: BacktestConfig, out, metrics, analytics: Analytics, orders, quotes, signals) -> Path:
    base = Path(out or config.run.out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = base / f"{config.run.name}-{stamp}-s{config.run.seed}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    resolved = config.to_dict()
    resolved["strategy"] = json.loads(config.strategy_config().json())
    # TOML has no null: an unset optional is simply absent.
    resolved = {section: {k: v for k, v in values.items() if v is not None} for section, values in resolved.items()}
    (run_dir / "config.toml").write_text(tomli_w.dumps(resolved))
    write_session_files(run_dir, metrics, analytics, orders, quotes, signals)
    return run_dir


def write_session_files(run_dir: Path, metrics: dict, analytics: Analytics, orders, quotes, signals) -> None:
    """The files every run directory has, whoever produced it (the app reads them all alike)."""
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    analytics.fills.to_parquet(run_dir / "fills.parquet", index=False)
    orders.to_parquet(run_dir / "orders.parquet", index=False)
    analytics.equity.to_parquet(run_dir / "equity.parquet", index=False)
    quotes.to_parquet(run_dir / "quotes.parquet", index=False)
    if signals is not None:
        signals.to_parquet(run_dir / "signal.parquet", index=False)
