"""The live node: the backtested strategy on a NautilusTrader `TradingNode`, live or on paper.

The venue is Monaco (`[venue] kind = "monaco"`: REST orders, WebSocket market data) or FlashMM's
Sei CosmWasm CLOB (`"sei-cosmwasm"`: signed txs, blocks). Both modes use the venue's data client;
`live` adds its execution client, `paper` the simulated exchange of `app.live.paper`. Everything
a backtest run writes, a session writes too (same recorder, same analytics, same files), plus
`status.json` while it runs, so the app and the parity check read live sessions and backtests alike.

Stopping (SIGINT, SIGTERM, or `duration_secs`) is graceful: the strategy pulls its quotes, then the
execution client cancels every order and waits until the venue lists none of ours.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w
from nautilus_trader.config import (
    CacheConfig,
    DatabaseConfig,
    LiveDataEngineConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.identifiers import InstrumentId, TraderId

from adapters.monaco import factories as monaco_factories
from adapters.monaco import venue as monaco_venue
from adapters.monaco.config import MonacoDataClientConfig, MonacoExecClientConfig
from adapters.monaco.venue import MonacoVenue
from adapters.sei import factories as sei_factories
from adapters.sei.config import SeiDataClientConfig, SeiExecClientConfig
from adapters.sei.venue import SeiVenue
from app.live.config import LiveConfig, without_none
from app.live.control import operator_handlers, persisted_halt, prepare_control_dir, record_halt, start_control_server
from app.live.dispatch import dispatch_directly
from app.live.gc_pacer import GcPacer
from app.live.lifecycle import RunOutcome, run_until_stopped
from app.live.logs import AUDIT_FILE, AuditLog, AuditLogConfig, node_logging_config, redact_token, register_key_secrets
from app.live.ops import start_ops_server
from app.live.paper import PaperExecClientConfig, PaperExecClientFactory
from app.live.status import STATUS_FILE, StatusWriter, StatusWriterConfig, write_json_atomic
from backtests.recorder import RecorderConfig, RunRecorder
from backtests.runner import session_analytics, write_session_files
from data.catalog import iso_utc
from data.venues import venue_profile
from strategies.control import register_halt_endpoint
from strategies.market_maker import MarketMaker

NS = 1_000_000_000


class NodeError(RuntimeError):
    """The node stopped because of a fault, not a signal or its deadline (the CLI exits non-zero,
    so a supervisor restarts it)."""


class NodeStartError(NodeError):
    """The node could not connect to the venue; nothing was traded."""


class NodeFailure(NodeError):
    """The node lost the venue while it ran; it pulled its quotes and stopped."""


TIMEOUT_RECONCILIATION_S = 10.0
TIMEOUT_PORTFOLIO_S = 10.0


def connect_timeout(exec_cfg) -> float:
    """NautilusTrader's wait for the clients to connect. The Sei execution client's connect also
    replays the blocks missed while the node was down and cancels orphans, so it gets that long;
    Monaco's reconciles with the venue's REST view and cancels orphans."""
    if isinstance(exec_cfg, SeiExecClientConfig):
        return exec_cfg.catch_up_timeout_secs + exec_cfg.stop_timeout_secs + 20.0
    if isinstance(exec_cfg, MonacoExecClientConfig):
        return exec_cfg.stop_timeout_secs + 30.0
    return 20.0


@dataclass
class Session:
    config: LiveConfig
    node: TradingNode
    strategy: MarketMaker
    recorder: RunRecorder
    session_dir: Path
    started_ns: int
    venue: SeiVenue | MonacoVenue
    status_writer: StatusWriter
    signal_actor: object | None = None
    ops_port: int | None = None
    start_within_s: float = 60.0  # the trader must be running this long after the session started

    def failure(self) -> str | None:
        """Why this node can no longer trade safely, if it cannot (see `lifecycle`)."""
        if self.venue.failure is not None:
            return f"lost the venue at {self.config.venue_url}: {self.venue.failure!r:.300}"
        if not self.node.trader.is_running and time.time_ns() - self.started_ns > self.start_within_s * NS:
            return (f"not trading {self.start_within_s:g} s after start: the clients did not connect, "
                    f"catch up or reconcile with {self.config.venue_url}")
        return None

    @property
    def exec_client(self):
        return next(iter(self.node.kernel.exec_engine._clients.values()), None)

    @property
    def data_client(self):
        return next(iter(self.node.kernel.data_engine._clients.values()), None)


def monaco_data_config(config: LiveConfig) -> MonacoDataClientConfig:
    m = config.monaco
    return MonacoDataClientConfig(
        api_url=m.api_url, ws_url=m.ws_url, symbol=m.symbol, instrument_id=m.instrument_id, chain_id=m.chain_id,
        client_id=m.client_id, wire=m.wire, stale_after_secs=m.stale_after_secs,
        exclude_own_orders=m.exclude_own_orders, lost_after_secs=m.lost_after_secs, requests_per_s=m.requests_per_s,
        burst=m.burst, timeout_secs=m.timeout_secs, seed=config.node.seed,
    )


def _monaco_client_configs(config: LiveConfig):
    m = config.monaco
    data = monaco_data_config(config)
    if config.node.mode == "paper":
        paper = PaperExecClientConfig(venue=data.venue, instrument_id=m.instrument_id,
                                      simulation=config.paper_venue(), seed=config.node.seed)
        return data, paper, PaperExecClientFactory
    return data, MonacoExecClientConfig(
        api_url=m.api_url, ws_url=m.ws_url, symbol=m.symbol, instrument_id=m.instrument_id, chain_id=m.chain_id,
        client_id=m.client_id, wire=m.wire, key_env=m.key_env, key_file=m.key_file or None,
        refresh_before_secs=m.refresh_before_secs, use_replace=m.use_replace, replace_window_ms=m.replace_window_ms,
        in_doubt_secs=m.in_doubt_secs,
        cancel_orphans_on_start=m.cancel_orphans_on_start, stop_timeout_secs=m.stop_timeout_secs,
        lost_after_secs=m.lost_after_secs, requests_per_s=m.requests_per_s, burst=m.burst,
        timeout_secs=m.timeout_secs, seed=config.node.seed,
    ), monaco_factories.MonacoLiveExecClientFactory


def _client_configs(config: LiveConfig):
    if config.on_monaco:
        return _monaco_client_configs(config)
    sei = config.sei
    venue = "SEI"
    data = SeiDataClientConfig(
        venue=venue, rpc_url=sei.rpc_url, contract=sei.contract, chain_id=sei.chain_id or None,
        instrument_id=sei.instrument_id, book_depth=sei.book_depth, stale_after_secs=sei.stale_after_secs,
        exclude_own_orders=sei.exclude_own_orders,
    )
    if config.node.mode == "paper":
        return data, PaperExecClientConfig(
            venue=venue, instrument_id=sei.instrument_id, simulation=config.paper_venue(), seed=config.node.seed
        ), PaperExecClientFactory
    execution = SeiExecClientConfig(
        venue=venue, rpc_url=sei.rpc_url, contract=sei.contract, chain_id=sei.chain_id or None,
        instrument_id=sei.instrument_id, key_env=sei.key_env, key_file=sei.key_file or None,
        gas_base=sei.gas_base, gas_per_action=sei.gas_per_action, gas_price=sei.gas_price,
        timeout_blocks=sei.timeout_blocks,
        max_retries=sei.max_retries, order_expiry_blocks=sei.order_expiry_blocks or None,
        stop_timeout_secs=sei.stop_timeout_secs,
    )
    return data, execution, sei_factories.SeiLiveExecClientFactory


def on_loop(loop: asyncio.AbstractEventLoop, callback):
    """`callback(*args)` as the loop's next callback, from whatever thread calls it; nothing once
    the loop is closed (a timer can fire while the node shuts down)."""
    def post(*args) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)
    return post


def _action_cost(config: LiveConfig) -> float:
    """What each order action costs: the paper venue's as configured, else the venue profile's."""
    if config.node.mode == "paper":
        return config.paper_venue().action_cost
    return venue_profile(config.venue_profile()).action_cost


def cache_config(redis_url: str) -> CacheConfig:
    """In memory, or persisted to Redis so that orders, fills and the last processed block survive
    a crash: a restarted node resumes from them (and replays the blocks it missed).

    Only live mode persists: a paper venue is simulated in the process and starts empty with its
    starting balances, so orders and fills from an earlier paper session would be adopted against
    a venue that never had them (and would share the live node's keys in Redis)."""
    if not redis_url:
        return CacheConfig()
    url = urlsplit(redis_url)
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise ValueError(f"node.redis_url {redis_url!r} must look like redis://HOST:PORT")
    if url.path not in ("", "/", "/0"):
        raise ValueError(f"node.redis_url {redis_url!r}: NautilusTrader's cache uses database 0 only")
    database = DatabaseConfig(type="redis", host=url.hostname, port=url.port or 6379, username=url.username,
                              password=url.password, ssl=url.scheme == "rediss")
    # Writes go through at once (no buffering): what a crash loses must be as little as possible.
    return CacheConfig(database=database, buffer_interval_ms=None, flush_on_start=False)


def build_session(config: LiveConfig, loop: asyncio.AbstractEventLoop, session_dir: Path) -> Session:
    strat_cfg = config.strategy_config()
    if str(strat_cfg.instrument_id) != config.instrument_id:
        raise ValueError(f"strategy.instrument_id {strat_cfg.instrument_id} is not the venue's {config.instrument_id}")
    data_cfg, exec_cfg, exec_factory = _client_configs(config)
    factories = monaco_factories if config.on_monaco else sei_factories
    factories.forget_venues()
    venue_name = data_cfg.venue
    node = TradingNode(
        config=TradingNodeConfig(
            trader_id=TraderId(config.node.trader_id),
            logging=node_logging_config(session_dir, config.node.log_level),
            cache=cache_config(config.node.redis_url if config.node.mode == "live" else ""),
            data_engine=LiveDataEngineConfig(),
            risk_engine=LiveRiskEngineConfig(bypass=False),
            # Monaco's execution client resolves its own in-flight orders (a create whose answer was
            # lost is looked for on the venue); NautilusTrader's generic check would reject them blind.
            exec_engine=LiveExecEngineConfig(reconciliation=True,
                                             inflight_check_interval_ms=0 if config.on_monaco else 2_000),
            data_clients={venue_name: data_cfg},
            exec_clients={venue_name: exec_cfg},
            timeout_connection=connect_timeout(exec_cfg),
            timeout_reconciliation=TIMEOUT_RECONCILIATION_S,
            timeout_portfolio=TIMEOUT_PORTFOLIO_S,
            timeout_disconnection=config.stop_timeout_secs + 5.0,
            timeout_post_stop=1.0,
        ),
        loop=loop,
    )
    node.add_data_client_factory(venue_name, monaco_factories.MonacoLiveDataClientFactory if config.on_monaco
                                 else sei_factories.SeiLiveDataClientFactory)
    node.add_exec_client_factory(venue_name, exec_factory)
    node.build()
    if config.node.direct_dispatch:
        dispatch_directly(node.kernel)
    if config.node.mode == "paper":
        next(iter(node.kernel.exec_engine._clients.values())).portfolio = node.kernel.portfolio

    signal_actor = None
    if strat_cfg.use_signal:
        from models.actor import SignalActor, SignalActorConfig  # torch loads only when a signal runs

        sig = config.signal
        signal_actor = SignalActor(SignalActorConfig(
            instrument_id=InstrumentId.from_str(config.instrument_id), model_dir=sig.model or None,
            latency_budget_ms=sig.latency_budget_ms, trip_after=sig.trip_after, cooldown_secs=sig.cooldown_secs,
        ))
        node.trader.add_actor(signal_actor)
    strategy = MarketMaker(strat_cfg)
    strategy.set_action_cost(_action_cost(config))
    # NautilusTrader 1.221 fires a live clock's timer on its own thread, not the event loop: the
    # requote timer would run the strategy while its book handler runs (a dict changed while being
    # iterated, a node stopped). Handed to the loop, the timer runs between the loop's callbacks.
    strategy._on_timer = on_loop(loop, strategy._on_timer)
    node.trader.add_strategy(strategy)
    recorder = RunRecorder(RecorderConfig(instrument_id=strat_cfg.instrument_id, strategy_id=strategy.id))
    node.trader.add_actor(recorder)
    status = StatusWriter(StatusWriterConfig(
        path=str(session_dir / STATUS_FILE), interval_secs=config.node.status_interval_secs
    ))
    status.run_on = on_loop(loop, lambda write: write())
    node.trader.add_actor(status)
    node.trader.add_actor(AuditLog(AuditLogConfig(path=str(session_dir / AUDIT_FILE))))
    # The kill switch and the operator's halt take the same path; either survives a restart.
    register_halt_endpoint(node.kernel.msgbus, node.kernel.risk_engine,
                           on_halt=lambda reason: record_halt(session_dir.parent, reason))
    venue = monaco_factories.shared_venue(loop, data_cfg) if config.on_monaco else \
        sei_factories.shared_venue(loop, data_cfg)[0]
    start_within = connect_timeout(exec_cfg) + TIMEOUT_RECONCILIATION_S + TIMEOUT_PORTFOLIO_S + 5.0
    session = Session(config, node, strategy, recorder, session_dir, time.time_ns(), venue, status, signal_actor,
                      start_within_s=start_within)
    status.collect = lambda: node_status(session)
    reason = persisted_halt(session_dir.parent)
    if reason is not None:
        # Halted before the restart and never resumed: halted from the first block, not after it.
        strategy.halted, strategy.halt_reason = True, f"still halted from before the restart: {reason}"
        node.kernel.risk_engine.set_trading_state(TradingState.HALTED)
    return session


def node_status(session: Session) -> dict:
    """What `status.json` holds; the app's Live page and `flashmm live status` read it."""
    strategy, cfg = session.strategy, session.config
    venue = session.venue
    now = time.time_ns()
    book = strategy.book
    mid = None
    if book is not None and book.best_bid_price() is not None and book.best_ask_price() is not None:
        mid = (float(book.best_bid_price()) + float(book.best_ask_price())) / 2
    exec_client = session.exec_client
    data_client = session.data_client
    quotes = [
        {"client_order_id": coid.value, "side": w.side, "price_ticks": w.price_ticks, "leaves": w.leaves,
         "state": w.state}
        for coid, w in strategy.orders.items()
    ]
    return {
        "mode": cfg.node.mode,
        "updated_at": datetime.now(UTC).isoformat(),
        "uptime_s": round((now - session.started_ns) / NS, 3),
        "ready": session.strategy.is_running,
        "connected": bool(data_client and data_client.is_connected and exec_client and exec_client.is_connected
                          and venue.failure is None),
        "ops_port": session.ops_port,
        "last_block_height": venue.last_height,
        "last_block_age_s": round((now - venue.last_received_ns) / NS, 3) if venue.last_received_ns else None,
        "stale": bool(getattr(data_client, "stale", False)),
        "halted": strategy.halted or session.node.kernel.risk_engine.trading_state == TradingState.HALTED,
        "halt_reason": strategy.halt_reason,
        "trading_state": session.node.kernel.risk_engine.trading_state.name,
        "mid": mid,
        "pnl": strategy.pnl(mid) if mid is not None else None,
        "inventory": strategy.inventory,
        "cash": strategy.cash,
        "quotes": quotes,
        "fills": len(session.recorder.fills),
        "strategy_stats": dict(strategy.stats),
        "resumed": strategy.resumed,
        "execution": exec_client.snapshot() if hasattr(exec_client, "snapshot") else None,
        "data": {"resnapshots": getattr(data_client, "resnapshots", 0),
                 "stale_events": getattr(data_client, "stale_events", 0),
                 "stale_updates": getattr(data_client, "stale_updates", 0),
                 "blocks_seen": venue.blocks_seen, "book_excludes": getattr(data_client, "excluded_owner", None)},
        "signal": session.signal_actor.engine.summary() if session.signal_actor else None,
    }


def run_live(config: LiveConfig, duration_secs: float | None = None, state_dir: str | Path | None = None) -> Path:
    """Run a node until a signal or `duration_secs`; returns the session directory."""
    base = Path(state_dir or config.node.state_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    session_dir = base / f"{config.node.mode}-{stamp}-{time.time_ns() % 1_000_000:06d}"
    session_dir.mkdir(parents=True, exist_ok=False)
    (session_dir / "config.toml").write_text(tomli_w.dumps(without_none(config.to_dict())))
    # Before anything is built, so the key can never reach a log line, even in an error; tokens and
    # session keys the Monaco client receives are registered as they arrive.
    key_env, key_file = config.key_source
    register_key_secrets(key_env, key_file or None)
    if redact_token not in monaco_venue.SECRET_SINKS:
        monaco_venue.SECRET_SINKS.append(redact_token)
    sock_path, token = prepare_control_dir(session_dir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    session = build_session(config, loop, session_dir)
    duration = config.node.duration_secs if duration_secs is None else duration_secs
    pacer = GcPacer(loop) if config.node.gc_paced else None
    if pacer is not None:
        pacer.start()
    try:
        outcome = loop.run_until_complete(_serve(session, duration, sock_path, token))
    finally:
        if pacer is not None:
            pacer.stop()
        session.node.dispose()
        loop.close()
    if not outcome.connected:
        reason = outcome.failure or "the clients had not connected when the node was stopped"
        raise NodeStartError(f"could not connect to the venue at {config.venue_url}: {reason} "
                             f"(log: {session_dir}/node.json)")
    _write_session(session)
    if outcome.failure is not None:
        raise NodeFailure(f"{outcome.failure}; session written to {session_dir}")
    return session_dir


async def _serve(session: Session, duration: float, sock_path: Path, token: str) -> RunOutcome:
    """The node, with /health and /metrics and the operator's control socket beside it."""
    config, state_dir = session.config, session.session_dir.parent
    status = session.status_writer.collect
    ops = await start_ops_server(config.node.ops_host, config.node.ops_port, status)
    control = await start_control_server(
        sock_path, token, operator_handlers(status, session.strategy, session.node.kernel.risk_engine, state_dir)
    )
    session.ops_port = ops.port
    try:
        return await run_until_stopped(session.node, duration, session.failure)
    finally:
        await control.close()
        await ops.close()


def _write_session(session: Session) -> None:
    session.strategy.rebook()  # fills that landed after the strategy stopped (its cancels in flight)
    strat_cfg = session.config.strategy_config()
    orders = session.recorder.orders(session.node.kernel.cache)
    end_ns = time.time_ns()
    instrument = session.node.kernel.cache.instrument(strat_cfg.instrument_id)
    analytics, quotes = session_analytics(session.recorder, orders, strat_cfg, session.started_ns, end_ns, NS,
                                          instrument.quote_currency.code, _action_cost(session.config))
    metrics = dict(analytics.metrics)
    status = node_status(session)
    metrics.update({
        "mode": session.config.node.mode,
        "halted": session.strategy.halted,
        "halt_reason": session.strategy.halt_reason,
        "orders_submitted": int(len(orders)),
        "strategy_stats": dict(session.strategy.stats),
        "execution": status["execution"],
        "data": status["data"],
        "signal": status["signal"],
        "window": {"start": iso_utc(session.started_ns), "end": iso_utc(end_ns)},
    })
    write_session_files(session.session_dir, metrics, analytics, orders, quotes, None)
    write_json_atomic(session.session_dir / STATUS_FILE, status)


def session_summary(session_dir: Path) -> str:
    metrics = json.loads((session_dir / "metrics.json").read_text())
    return (f"session written to {session_dir}: {metrics.get('fill_count', 0)} fills, "
            f"pnl {metrics.get('pnl_total', 0.0):.4f} USDC, {metrics.get('orders_submitted', 0)} orders")
