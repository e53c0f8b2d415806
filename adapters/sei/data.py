"""Market data from the CLOB contract: a book snapshot, then one delta batch per block.

The book comes from a `book` query and is then kept current from each block's events
(`BookTracker`), so the strategy receives what a backtest tape holds: one `OrderBookDeltas` per
block ending in F_LAST, and the block's trades before it. Blocks that arrive while the snapshot
is in flight are held and replayed on top of it. When the events stop fitting the book (a gap
the feed could not backfill, a malformed event), the client takes a fresh snapshot instead of
publishing a book it can no longer vouch for; every `verify_every_blocks` it also compares its
book with the contract's (an order resting before the snapshot can expire unseen).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.data.messages import SubscribeOrderBook, SubscribeTradeTicks, UnsubscribeOrderBook
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.identifiers import ClientId

from adapters.sei.book import BookOutOfSync, BookTracker
from adapters.sei.config import SeiDataClientConfig
from adapters.sei.feed import VenueBlock
from adapters.sei.providers import SeiInstrumentProvider
from adapters.sei.venue import SeiVenue, VenueError


class SeiDataClient(LiveMarketDataClient):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        venue: SeiVenue,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_provider: SeiInstrumentProvider,
        config: SeiDataClientConfig,
    ) -> None:
        super().__init__(
            loop=loop,
            client_id=ClientId(config.venue),
            venue=instrument_provider.venue,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=instrument_provider,
            config=config,
        )
        self._cfg = config
        self._sei = venue
        self._provider = instrument_provider
        self._tracker: BookTracker | None = None
        self._book_wanted = False
        self._held: list[VenueBlock] = []
        self._snapshot_task: asyncio.Task | None = None
        self._verify_task: asyncio.Task | None = None
        self._stale_task: asyncio.Task | None = None
        self.stale = False
        self.resnapshots = 0
        self.book_mismatches = 0
        self.stale_events = 0

    async def _connect(self) -> None:
        self._sei.add_listener(SeiVenue.DATA, self._on_block)
        await self._sei.start()  # loads the instrument before the first block is handed out
        instrument = self._provider.find(self._provider.instrument_id)
        if instrument is None:
            raise VenueError(f"instrument {self._provider.instrument_id} was not loaded from the contract")
        self._handle_data(instrument)
        # Set only when this node also trades (the execution client attached its key first).
        owner = self._sei.transport.owner if self._cfg.exclude_own_orders else None
        self._tracker = BookTracker(instrument.id, instrument.price_precision, instrument.size_precision, owner)
        self._stale_task = self.create_task(self._watch_staleness(), log_msg="sei_stale_watch")

    async def _disconnect(self) -> None:
        self._sei.remove_listener(self._on_block)
        for task in (self._stale_task, self._snapshot_task, self._verify_task):
            if task is not None:
                task.cancel()
        await self._sei.stop()

    async def _subscribe_order_book_deltas(self, command: SubscribeOrderBook) -> None:
        self._require(command.instrument_id)
        self._book_wanted = True
        self._tracker.synced = False  # hold blocks until the snapshot is in: none may be published before it
        self._resnapshot()

    async def _subscribe_order_book_snapshots(self, command: SubscribeOrderBook) -> None:
        await self._subscribe_order_book_deltas(command)

    async def _subscribe_trade_ticks(self, command: SubscribeTradeTicks) -> None:
        # Trades are always published (the paper venue fills from them whoever subscribed).
        self._require(command.instrument_id)

    async def _unsubscribe_order_book_deltas(self, command: UnsubscribeOrderBook) -> None:
        self._book_wanted = False

    def _require(self, instrument_id) -> None:
        if instrument_id != self._provider.instrument_id:
            raise VenueError(f"this contract trades {self._provider.instrument_id}, not {instrument_id}")

    # -- book -----------------------------------------------------------------------------------

    def _resnapshot(self) -> None:
        if self._snapshot_task is None or self._snapshot_task.done():
            self._snapshot_task = self.create_task(self._snapshot(), log_msg="sei_book_snapshot")

    @property
    def excluded_owner(self) -> str | None:
        """The account whose orders the published book leaves out (this node's own, when it trades)."""
        return self._tracker.exclude_owner if self._tracker is not None else None

    def _book_query(self) -> dict:
        query: dict = {"depth": self._cfg.book_depth}
        if self._tracker.exclude_owner is not None:
            query["exclude_owner"] = self._tracker.exclude_owner
        return {"book": query}

    async def _snapshot(self) -> None:
        self._load(await self._sei.transport.query(self._book_query()))
        self._log.info(f"book snapshot at height {self._tracker.height}")

    def _load(self, answer: dict) -> None:
        """Publish a `book` answer as the whole book, then the held blocks that came after it."""
        now = self._clock.timestamp_ns()
        deltas = self._tracker.load_snapshot(answer, self._cfg.book_depth, ts_event=self._sei.last_block_ns or now,
                                             ts_init=now)
        if self._book_wanted:
            self._handle_data(deltas)
        held, self._held = self._held, []
        for block in held:
            self._publish(block)

    def _on_block(self, block: VenueBlock) -> None:
        self.stale = False
        if self._tracker is None:
            return
        if not self._tracker.synced:
            self._held.append(block)
            self._resnapshot()
            return
        self._publish(block)

    def _publish(self, block: VenueBlock) -> None:
        now = self._clock.timestamp_ns()
        try:
            data = self._tracker.apply_block(block.height, (e for tx in block.txs for e in tx.events), block.time_ns,
                                             now)
        except BookOutOfSync as exc:
            self.resnapshots += 1
            self._log.warning(f"book out of sync ({exc}); taking a new snapshot")
            self._held.append(block)
            self._resnapshot()
            return
        for trade in data.trades:
            self._handle_data(trade)
        if self._book_wanted and data.deltas is not None:
            self._handle_data(data.deltas)
        every = self._cfg.verify_every_blocks
        if every and block.height % every == 0 and (self._verify_task is None or self._verify_task.done()):
            self._verify_task = self.create_task(self._verify(), log_msg="sei_book_verify")

    async def _verify(self) -> None:
        """Compare the tracked book with the contract's; on any difference publish a fresh snapshot."""
        answer = await self._sei.transport.query(self._book_query())
        if not self._tracker.synced or int(answer.get("height", -1)) != self._tracker.height or not (
            self._snapshot_task is None or self._snapshot_task.done()
        ):
            return  # a block landed in between, or a re-snapshot is under way: compare next time
        if any(self._top(side, self._tracker.levels(side), len(answer[key]))
               != self._top(side, _levels(answer[key]), len(answer[key]))
               for side, key in (("buy", "bids"), ("sell", "asks"))):
            self.book_mismatches += 1
            self._log.warning(f"tracked book differs from the contract's at height {self._tracker.height}; "
                              "re-snapshotting")
            self._load(answer)

    @staticmethod
    def _top(side: str, levels: dict[Decimal, Decimal], n: int) -> list[tuple[Decimal, Decimal]]:
        """The best `n` levels: the contract answers to the query's depth, the tracker may hold more."""
        return sorted(levels.items(), reverse=side == "buy")[:n]

    async def _watch_staleness(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.stale_after_secs / 4)
            last = self._sei.last_received_ns
            if last and self._clock.timestamp_ns() - last > self._cfg.stale_after_secs * 1e9 and not self.stale:
                self.stale = True
                self.stale_events += 1
                self._log.warning(f"no block for {self._cfg.stale_after_secs}s: feed is stale")


def _levels(rows: list[dict]) -> dict[Decimal, Decimal]:
    return {Decimal(lv["price"]): Decimal(lv["quantity"]) for lv in rows}
