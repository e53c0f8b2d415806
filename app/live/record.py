"""`flashmm record`: what the venue's data client sees, written as a tape `flashmm backtest` reads.

On Monaco that is one book batch per WebSocket update and the trades, stamped with the time each
was received (`ts_init`) and the venue's time (`ts_event`); on the Sei CosmWasm CLOB, one batch per
block. The recorder subscribes to exactly what the strategy would (book deltas and trades).
Every `FLUSH_BLOCKS` batches it writes what it holds as one more Parquet part of a staged catalog
(`data.catalog.StagedCatalog`), so a day-long recording holds a few minutes of data in memory, not
the day; the catalog moves into place only when the recording ends, so an interrupted one leaves
no half catalog, and an existing catalog is never overwritten.

If the venue fails mid-recording (a height the feed cannot read, a WebSocket that stays down),
what was recorded up to it is contiguous and is kept, and the command exits non-zero saying where
it stopped.
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

from adapters.monaco import factories as monaco_factories
from adapters.sei import factories as sei_factories
from adapters.sei.config import SeiDataClientConfig
from app.live.config import LiveConfig
from app.live.lifecycle import run_until_stopped
from data.catalog import StagedCatalog, batch_deltas

FLUSH_BLOCKS = 1500  # book batches per Parquet part: about 10 minutes of Sei blocks, a few of a busy Monaco pair


class RecordingError(RuntimeError):
    """The recording stopped on a fault; `summary` says what was kept."""

    def __init__(self, message: str, summary: dict | None) -> None:
        super().__init__(message)
        self.summary = summary


class TapeRecorderConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    flush_blocks: int = FLUSH_BLOCKS


class TapeRecorder(Actor):
    """Holds the blocks since the last flush; `sink(deltas, trades)` takes each full part."""

    def __init__(self, config: TapeRecorderConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.flush_blocks = config.flush_blocks
        self.sink = None  # set once the instrument is known (the staged catalog needs it)
        self.deltas: list = []
        self.trades: list[TradeTick] = []
        self.blocks = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, book_type=BookType.L2_MBP)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.deltas.extend(deltas.deltas)
        self.blocks += 1
        if self.blocks % self.flush_blocks == 0:
            self.flush()

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.trades.append(tick)

    def flush(self, final: bool = False) -> None:
        """Hand the blocks held so far to the sink, with the trades up to the last of them (the
        rest wait for the next part, so parts never overlap in time; the final part takes all)."""
        if self.sink is None or not (self.deltas or final and self.trades):
            return
        batch_deltas(self.deltas)  # every part ends on a block boundary (F_LAST), or this raises
        last_ts = self.deltas[-1].ts_init if self.deltas and not final else None
        trades = [t for t in self.trades if last_ts is None or t.ts_init <= last_ts]
        self.trades = [t for t in self.trades if last_ts is not None and t.ts_init > last_ts]
        self.sink(self.deltas, trades)
        self.deltas = []


def record(config: LiveConfig, out: str | Path, duration_secs: float | None = None,
           flush_blocks: int = FLUSH_BLOCKS) -> dict:
    """Record until a signal or `duration_secs`; returns what was written."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} already exists and is not empty; recordings never overwrite")
    sei = config.sei
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if config.on_monaco:
        from app.live.node import monaco_data_config

        monaco_factories.forget_venues()
        data_cfg = monaco_data_config(config)
        factory = monaco_factories.MonacoLiveDataClientFactory
    else:
        sei_factories.forget_venues()
        data_cfg = SeiDataClientConfig(
            venue="SEI", rpc_url=sei.rpc_url, contract=sei.contract, chain_id=sei.chain_id or None,
            instrument_id=sei.instrument_id, book_depth=sei.book_depth,
        )
        factory = sei_factories.SeiLiveDataClientFactory
    node = TradingNode(
        config=TradingNodeConfig(
            trader_id=TraderId(config.node.trader_id),
            logging=LoggingConfig(log_level=config.node.log_level),
            data_clients={data_cfg.venue: data_cfg},
            timeout_connection=20.0,
            timeout_post_stop=0.5,
        ),
        loop=loop,
    )
    node.add_data_client_factory(data_cfg.venue, factory)
    node.build()
    venue = monaco_factories.shared_venue(loop, data_cfg) if config.on_monaco else \
        sei_factories.shared_venue(loop, data_cfg)[0]
    instrument_id = InstrumentId.from_str(config.instrument_id)
    recorder = TapeRecorder(TapeRecorderConfig(instrument_id=instrument_id, flush_blocks=flush_blocks))
    node.trader.add_actor(recorder)
    staged: list[StagedCatalog] = []

    def sink(deltas: list, trades: list) -> None:
        if not staged:
            staged.append(StagedCatalog(out, node.kernel.cache.instrument(instrument_id)))
        staged[0].append(deltas, trades)

    recorder.sink = sink
    duration = config.node.duration_secs if duration_secs is None else duration_secs
    started = time.time_ns()

    def venue_failure() -> str | None:
        return None if venue.failure is None else (f"lost {config.venue_url} after {venue.last_height}: "
                                                   f"{venue.failure!r:.300}")

    try:
        try:
            outcome = loop.run_until_complete(run_until_stopped(node, duration, venue_failure))
        finally:
            node.dispose()
            loop.close()
        if not outcome.connected:
            raise RuntimeError(f"could not connect to {config.venue_url}: "
                               f"{outcome.failure or 'no connection by the stop'}")
        recorder.flush(final=True)
        if not staged or not staged[0].deltas:
            raise RuntimeError(f"nothing recorded from {config.venue_url}: no instrument or no book data arrived")
        where = ({"venue": "monaco", "api_url": config.monaco.api_url, "symbol": config.monaco.symbol}
                 if config.on_monaco else {"venue": "sei-cosmwasm", "rpc_url": sei.rpc_url, "contract": sei.contract})
        staged[0].commit({
            "source": "flashmm record", **where,
            "recorded_from_ns": started, "recorded_to_ns": time.time_ns(), "synthetic": False,
            "last_height": venue.last_height,  # the last block, or on Monaco the book's last sequence
            "venue_profile": config.venue_profile(),
        })
    finally:
        for part in staged:
            part.close()
    summary = {"out": str(out), "blocks": recorder.blocks, "deltas": staged[0].deltas, "trades": staged[0].trades,
               "last_height": venue.last_height}
    if outcome.failure is not None:
        raise RecordingError(f"recording stopped early: {outcome.failure}; kept what came before it in {out}", summary)
    return summary
