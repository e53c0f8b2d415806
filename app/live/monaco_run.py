"""A live node trading a tape replayed by an in-process local Monaco: parity, bench and the tests.

The node runs as a child process (`flashmm live`), exactly as an operator would start it, against a
`MonacoLocalThread` in this process, so what this module reads back is the venue's own record: every
order and fill of the dev wallet with the tape block that was current when it happened, the wallet's
open orders and balances.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import tomli_w

from adapters.monaco.local.exchange import ExchangeConfig
from adapters.monaco.local.server import DEV_FUNDS, MonacoLocalThread, ServerConfig, dev_key
from adapters.monaco.wire import Wire
from adapters.sei.localnet.server import write_key_file
from app.live.localrun import run_node
from data.catalog import Tape

LOCAL_CHAIN_ID = 1328  # Monaco's non-mainnet environments settle on Sei testnet


@dataclass
class MonacoRun:
    session_dir: Path
    fills: list[dict]  # the venue's fill records of the dev wallet (tape_index, side, price, quantity, ...)
    placed: list[dict]  # the venue's "created" records of the dev wallet's orders
    open_orders: list  # the dev wallet's orders still open, after the node stopped
    balances: dict[str, tuple[Decimal, Decimal]]  # symbol -> (available, locked), after the node stopped
    genesis: dict[str, Decimal]  # symbol -> what the dev wallet started with
    index_ts: list[int]  # tape time of every tape block replayed, by index
    node_output: str


def instrument_on_monaco(tape: Tape) -> str:
    """The tape's pair as the node trades it on Monaco (`BASE/QUOTE.MONACO`)."""
    return f"{tape.instrument.id.symbol}.MONACO"


def start_local_monaco(tape: Tape, start_ns: int | None, end_ns: int | None, *, seed: int = 0,
                       maker_fee_bps: Decimal = Decimal(0), taker_fee_bps: Decimal = Decimal(5),
                       server: ServerConfig | None = None, wire: Wire | None = None) -> MonacoLocalThread:
    venue = MonacoLocalThread(tape, ExchangeConfig(seed=seed, start_ns=start_ns, end_ns=end_ns,
                                                   maker_fee_bps=maker_fee_bps, taker_fee_bps=taker_fee_bps),
                              server, wire)
    venue.start()
    return venue


def monaco_node_config(venue: MonacoLocalThread, workdir: Path, strategy: dict, *, signal: dict | None = None,
                       mode: str = "live", paper: dict | None = None, monaco: dict | None = None,
                       node: dict | None = None) -> Path:
    """Write a node TOML for `venue` (and the dev wallet's key file it names, mode 600) into
    `workdir`; sessions go to a fresh short directory under /tmp (`node.state_dir`)."""
    workdir = Path(workdir).resolve()
    key_file = workdir / "monaco.key"
    write_key_file(key_file, dev_key(venue.exchange_config.seed))
    state_dir = tempfile.mkdtemp(prefix="flashmm-", dir="/tmp")  # a Unix socket path is short
    pair = venue.pair
    instrument_id = f"{pair.symbol}.MONACO"
    raw = {
        "node": {"mode": mode, "state_dir": state_dir, "log_level": "INFO", "status_interval_secs": 0.5,
                 "ops_port": 0, **(node or {})},
        "venue": {"kind": "monaco"},
        "monaco": {"api_url": venue.url, "symbol": pair.symbol, "instrument_id": instrument_id,
                   "chain_id": LOCAL_CHAIN_ID, "key_file": str(key_file), **(monaco or {})},
        "strategy": {**strategy, "instrument_id": instrument_id},
    }
    if signal:
        raw["signal"] = signal
    if paper:
        raw["paper"] = paper
    if venue.server.codec.wire != Wire():
        raw["monaco"]["wire"] = json.loads(venue.server.codec.dumps(venue.server.codec.wire))
    path = workdir / "node.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def read_back_monaco(venue: MonacoLocalThread, session_dir: Path, node_output: str) -> MonacoRun:
    """Everything the venue says about the dev wallet, for comparing with what the node says."""
    owner = venue.dev.address

    def scan(server):
        ex = server.exchange
        records = [r for r in ex.records if r.get("owner") == owner.lower()]
        fills = [r for r in records if r["kind"] == "fills"]
        placed = [r for r in records if r["kind"] == "orders" and r["event"] == "created"]
        open_orders = [o for o in ex.orders_of(owner) if o.status in ("SUBMITTED", "PARTIALLY_FILLED")]
        balances = {b.symbol: (b.available, b.locked) for b in ex.balances(owner)}
        return fills, placed, open_orders, balances, list(ex.tape_ts), ex.pair

    fills, placed, open_orders, balances, index_ts, pair = venue.call(scan)
    genesis = dict(zip((pair.base_token, pair.quote_token), DEV_FUNDS, strict=True))
    return MonacoRun(session_dir, fills, placed, open_orders, balances, genesis, index_ts, node_output)


def live_latency_monaco(config_path: str | Path, seconds: float = 30.0) -> dict:
    """Tick-to-order of the live node on the local Monaco: book update received -> order request on
    the wire. The config's tape (from its window start) is the market and its strategy trades it."""
    from backtests.config import load_config
    from backtests.runner import window
    from data.catalog import open_tape

    config = load_config(config_path)
    tape = open_tape(config.run.catalog)
    start_ns, _ = window(config, tape)
    venue = start_local_monaco(tape, start_ns, start_ns + int((seconds + 30) * 1e9), seed=config.run.seed)
    with tempfile.TemporaryDirectory(prefix="flashmm-bench-") as tmp:
        try:
            signal = {k: v for k, v in config.to_dict()["signal"].items() if v is not None}
            session_dir, _ = run_node(monaco_node_config(venue, Path(tmp), dict(config.strategy), signal=signal),
                                      seconds)
            metrics = json.loads((session_dir / "metrics.json").read_text())
            shutil.rmtree(session_dir.parent)  # the node's state directory: a benchmark keeps only its figures
        finally:
            venue.stop()
    execution = metrics.get("execution") or {}
    keys = ("tick_to_order_ms_p50", "tick_to_order_ms_p90", "tick_to_order_ms_p99", "tick_to_order_ms_max",
            "tick_to_order_samples", "places", "replaces", "fills")
    return {k: execution.get(k) for k in keys} | {"fill_count": metrics.get("fill_count"), "seconds": seconds}
