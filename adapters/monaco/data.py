"""Market data from Monaco: the book (a snapshot, then one `OrderBookDeltas` per update) and trades.

The WebSocket's orderbook snapshot starts the book; its updates keep it (`book.BookTracker`). A
gap, a stale sequence (one already applied: a repeat, or a venue whose numbering started over) or
an update the tracker cannot use takes a new snapshot from REST, holding the updates that arrive
meanwhile and applying those that follow it; the stale update itself is never applied. Trades
are published as `TradeTick`s (aggressor = the side opposite the maker's). `ts_event` is the
venue's time, `ts_init` when the frame was read.
"""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.data.messages import SubscribeOrderBook, SubscribeTradeTicks, UnsubscribeOrderBook
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import ClientId, TradeId
from nautilus_trader.model.objects import Price, Quantity

from adapters.monaco.book import BookOutOfSync, BookTracker, StaleUpdate
from adapters.monaco.config import MonacoDataClientConfig
from adapters.monaco.errors import VenueError
from adapters.monaco.providers import MonacoInstrumentProvider
from adapters.monaco.venue import MonacoVenue
from adapters.monaco.wire import Book, Trade, WireError


class MonacoDataClient(LiveMarketDataClient):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, venue: MonacoVenue, msgbus: MessageBus, cache: Cache,
        clock: LiveClock, instrument_provider: MonacoInstrumentProvider, config: MonacoDataClientConfig,
    ) -> None:
        super().__init__(loop=loop, client_id=ClientId(config.venue), venue=instrument_provider.venue, msgbus=msgbus,
                         cache=cache, clock=clock, instrument_provider=instrument_provider, config=config)
        self._cfg = config
        self._monaco = venue
        self._provider = instrument_provider
        self._tracker: BookTracker | None = None
        self._book_wanted = False
        self._held: list[tuple[Book, int]] | None = None  # updates arriving while a REST snapshot is taken
        self._snapshot_task: asyncio.Task | None = None
        self._stale_task: asyncio.Task | None = None
        self.stale = False
        self.resnapshots = 0
        self.stale_updates = 0
        self.stale_events = 0
        self.bad_updates = 0

    async def _connect(self) -> None:
        self._monaco.book_listeners.append(self._on_book)
        self._monaco.trade_listeners.append(self._on_trade)
        await self._monaco.start()
        instrument = self._provider.find(self._provider.instrument_id)
        if instrument is None:
            raise VenueError(f"instrument {self._provider.instrument_id} was not loaded from Monaco")
        self._handle_data(instrument)
        self._stale_task = self.create_task(self._watch_staleness(), log_msg="monaco_stale_watch")

    async def _disconnect(self) -> None:
        for listeners, listener in ((self._monaco.book_listeners, self._on_book),
                                    (self._monaco.trade_listeners, self._on_trade)):
            if listener in listeners:
                listeners.remove(listener)
        for task in (self._stale_task, self._snapshot_task):
            if task is not None:
                task.cancel()
        await self._monaco.stop()

    @property
    def excluded_owner(self) -> str | None:
        """The wallet whose orders the published book leaves out (this node's, when it trades)."""
        return self._monaco.owner if self._tracker is not None and self._tracker.excludes_own else None

    def _make_tracker(self) -> BookTracker:
        instrument = self._provider.find(self._provider.instrument_id)
        own = self._monaco.own_levels if self._cfg.exclude_own_orders and self._monaco.owner else None
        return BookTracker(instrument.id, instrument.price_precision, instrument.size_precision, own)

    async def _subscribe_order_book_deltas(self, command: SubscribeOrderBook) -> None:
        self._require(command.instrument_id)
        self._book_wanted = True
        tracker = self._tracker
        if tracker is not None and tracker.synced:  # the stream's snapshot came before anyone asked
            now = self._clock.timestamp_ns()
            levels = tracker.venue_levels
            self._load(Book("snapshot", self._provider.pair.id, tuple(levels["buy"].items()),
                            tuple(levels["sell"].items()), tracker.sequence, now), now)

    async def _subscribe_order_book_snapshots(self, command: SubscribeOrderBook) -> None:
        await self._subscribe_order_book_deltas(command)

    async def _subscribe_trade_ticks(self, command: SubscribeTradeTicks) -> None:
        self._require(command.instrument_id)  # trades are always published (paper fills from them)

    async def _unsubscribe_order_book_deltas(self, command: UnsubscribeOrderBook) -> None:
        self._book_wanted = False

    def _require(self, instrument_id) -> None:
        if instrument_id != self._provider.instrument_id:
            raise VenueError(f"this node trades {self._provider.instrument_id} on Monaco, not {instrument_id}")

    # -- book -------------------------------------------------------------------------------------

    def _on_book(self, book: Book, received_ns: int) -> None:
        self.stale = False
        if self._tracker is None:
            self._tracker = self._make_tracker()
        if book.kind == "snapshot":
            self._load(book, received_ns)
            return
        if self._held is not None:
            self._held.append((book, received_ns))
            return
        self._apply(book, received_ns)

    def _load(self, book: Book, received_ns: int) -> None:
        try:
            deltas = self._tracker.load(book, book.ts_ns or received_ns, received_ns)
        except (ValueError, OverflowError, ArithmeticError) as exc:
            self.bad_updates += 1
            self._log.warning(f"unusable book snapshot ({exc!r:.200}); asking again")
            self._resnapshot()
            return
        self._publish_top()
        if self._book_wanted:
            self._handle_data(deltas)

    def _apply(self, book: Book, received_ns: int) -> None:
        try:
            deltas = self._tracker.apply(book, book.ts_ns or received_ns, received_ns)
        except StaleUpdate as exc:
            self.stale_updates += 1
            self._log.warning(f"stale book update ({exc}); taking a new snapshot")
            self._resnapshot()
            return
        except (BookOutOfSync, ValueError, OverflowError, ArithmeticError) as exc:
            self._tracker.synced = False
            self.resnapshots += 1
            self._log.warning(f"book out of sync ({exc!r:.200}); taking a new snapshot")
            self._resnapshot()
            return
        self._publish_top()
        if deltas is not None and self._book_wanted:
            self._handle_data(deltas)

    def _publish_top(self) -> None:
        self._monaco.best_bid = self._tracker.best("buy")
        self._monaco.best_ask = self._tracker.best("sell")

    def _resnapshot(self) -> None:
        if self._snapshot_task is None or self._snapshot_task.done():
            self._held = []
            self._snapshot_task = self.create_task(self._snapshot(), log_msg="monaco_book_snapshot")

    async def _snapshot(self) -> None:
        """REST snapshot; the updates held meanwhile that follow it are applied on top."""
        pair = self._provider.pair
        for attempt in range(5):
            try:
                answer = await self._monaco.rest.call(
                    "orderbook", params={"pair_id": pair.id}, auth=False,
                    query={"depth": str(self._monaco.codec.wire.book_depth), "tradingMode":
                           self._monaco.codec.wire.trading_mode})
                book = self._monaco.codec.read_book_snapshot(answer, pair.id)
                break
            except (VenueError, WireError) as exc:
                self._log.warning(f"book snapshot failed ({exc}); retrying")
                await asyncio.sleep(0.2 * 2**attempt)
        else:
            self._held = None
            return  # the stream's next snapshot (after a reconnect) or the next gap tries again
        received = self._clock.timestamp_ns()
        held, self._held = self._held or [], None
        self._load(book, received)
        for update, received_ns in held:
            if book.sequence is None or update.sequence is None or update.sequence > book.sequence:
                self._apply(update, received_ns)
        self._log.info(f"book snapshot at sequence {book.sequence}")

    # -- trades -----------------------------------------------------------------------------------

    def _on_trade(self, trade: Trade, received_ns: int) -> None:
        instrument = self._cache.instrument(self._provider.instrument_id)
        if instrument is None:
            return
        try:
            tick = TradeTick(
                instrument.id, Price(trade.price, instrument.price_precision),
                Quantity(trade.quantity, instrument.size_precision),
                AggressorSide.SELLER if trade.maker_side == "buy" else AggressorSide.BUYER,
                TradeId(trade.trade_id[:36]), trade.ts_ns or received_ns, received_ns,
            )
        except (ValueError, OverflowError, ArithmeticError) as exc:
            self.bad_updates += 1
            self._log.warning(f"dropped an unusable trade ({exc!r:.200})")
            return
        self._handle_data(tick)

    async def _watch_staleness(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.stale_after_secs / 4)
            last = self._monaco.last_received_ns
            if last and self._clock.timestamp_ns() - last > self._cfg.stale_after_secs * 1e9 and not self.stale:
                self.stale = True
                self.stale_events += 1
                self._log.warning(f"nothing from Monaco for {self._cfg.stale_after_secs}s: feed is stale")

