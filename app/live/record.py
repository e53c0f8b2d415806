"""`flashmm record`: what the Sei data client sees, written as a tape `flashmm backtest` reads.

The recorder subscribes to exactly what the strategy would (book deltas, one batch per block,
and trades) and writes them with `data.catalog.write_catalog`, which stages the catalog and moves
it into place only when complete: a recording interrupted by a crash leaves no half catalog, and an
existing catalog is never overwritten.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig, LoggingConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId, TraderId

from adapters.sei.config import SeiDataClientConfig
from adapters.sei.factories import SeiLiveDataClientFactory, forget_venues
from app.live.config import LiveConfig
from app.live.lifecycle import run_until_stopped
from data.catalog import write_catalog


class TapeRecorderConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId


class TapeRecorder(Actor):
    def __init__(self, config: TapeRecorderConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.deltas: list = []
        self.trades: list[TradeTick] = []
        self.blocks = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, book_type=BookType.L2_MBP)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.deltas.extend(deltas.deltas)
        self.blocks += 1

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.trades.append(tick)


def record(config: LiveConfig, out: str | Path, duration_secs: float | None = None) -> dict:
    """Record until a signal or `duration_secs`; returns what was written."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} already exists and is not empty; recordings never overwrite")
    sei = config.sei
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    forget_venues()
    node = TradingNode(
        config=TradingNodeConfig(
            trader_id=TraderId(config.node.trader_id),
            logging=LoggingConfig(log_level=config.node.log_level),
            data_clients={"SEI": SeiDataClientConfig(
                venue="SEI", rpc_url=sei.rpc_url, contract=sei.contract, chain_id=sei.chain_id or None,
                instrument_id=sei.instrument_id, book_depth=sei.book_depth,
            )},
            timeout_connection=20.0,
            timeout_post_stop=0.5,
        ),
        loop=loop,
    )
    node.add_data_client_factory("SEI", SeiLiveDataClientFactory)
    node.build()
    recorder = TapeRecorder(TapeRecorderConfig(instrument_id=InstrumentId.from_str(sei.instrument_id)))
    node.trader.add_actor(recorder)
    duration = config.node.duration_secs if duration_secs is None else duration_secs
    started = time.time_ns()
    try:
        if not loop.run_until_complete(run_until_stopped(node, duration)):
            raise RuntimeError(f"could not connect to {sei.rpc_url}")
    finally:
        node.dispose()
        loop.close()
    instrument = node.kernel.cache.instrument(InstrumentId.from_str(sei.instrument_id))
    if instrument is None or not recorder.deltas:
        raise RuntimeError(f"nothing recorded from {sei.rpc_url}: no instrument or no book data arrived")
    write_catalog(out, instrument, recorder.deltas, recorder.trades, {
        "source": "flashmm record", "rpc_url": sei.rpc_url, "contract": sei.contract,
        "recorded_from_ns": started, "recorded_to_ns": time.time_ns(), "synthetic": False,
    })
    return {"out": str(out), "blocks": recorder.blocks, "deltas": len(recorder.deltas), "trades": len(recorder.trades)}
