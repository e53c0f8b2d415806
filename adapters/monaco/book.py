"""Monaco's book stream as NautilusTrader data: a snapshot, then one `OrderBookDeltas` per update.

The WebSocket sends a snapshot when the orderbook channel is subscribed ([TS]: "receives an
orderbook snapshot"), then updates: the levels that changed, each with its new quantity (0 = gone),
numbered by `sequence` (update semantics and the sequence are UNCONFIRMED: see VENUE.md). Each
update becomes one `OrderBookDeltas` ending in F_LAST, the shape a backtest tape has; `ts_event` is
the venue's timestamp, `ts_init` the time the frame was read (the node's one clock).

An update whose sequence was already applied is stale (`StaleUpdate`: not applied); one that skips
a sequence means something was lost (`BookOutOfSync`). Either way the data client takes a new
snapshot: a repeat costs one, a venue whose numbering started over would otherwise freeze the book.
A venue that sends no sequence cannot be checked; its updates are applied as they come.

The tracker keeps the venue's book (`venue_levels`) and publishes the market without our own
resting orders, which the execution client registers (`own()`): a backtest tape is the market
without us, and the strategy's fair value must not feed on its own quotes. Our part of a level is
taken out whenever that level is published, and a change of our orders alone is published with the
next update (never as an extra event of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
from nautilus_trader.model.enums import BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price, Quantity

from adapters.monaco.wire import Book

F_LAST = int(RecordFlag.F_LAST)
F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}

OwnLevels = Callable[[], dict[tuple[str, Decimal], Decimal]]


class BookOutOfSync(Exception):
    """An update does not follow the last one applied; take a new snapshot."""


class StaleUpdate(Exception):
    """An update at or below the last sequence applied: already in the book."""


class BookTracker:
    def __init__(self, instrument_id: InstrumentId, price_precision: int, size_precision: int,
                 own: OwnLevels | None = None) -> None:
        self.instrument_id = instrument_id
        self._pp, self._sp = price_precision, size_precision
        self._own = own
        self.venue_levels: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
        self._published: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
        self._own_seen: dict[tuple[str, Decimal], Decimal] = {}
        self.sequence: int | None = None
        self.synced = False

    @property
    def excludes_own(self) -> bool:
        return self._own is not None

    def best(self, side: str) -> Decimal | None:
        levels = self.venue_levels[side]
        if not levels:
            return None
        return max(levels) if side == "buy" else min(levels)

    def load(self, book: Book, ts_event: int, ts_init: int) -> OrderBookDeltas:
        """Reset from a snapshot; returns the CLEAR + ADD batch to publish."""
        self.venue_levels = {"buy": {p: q for p, q in book.bids if q > 0},
                             "sell": {p: q for p, q in book.asks if q > 0}}
        self.sequence = book.sequence
        self.synced = True
        own = self._own() if self._own else {}
        self._own_seen = own
        self._published = {side: {} for side in ("buy", "sell")}
        deltas = [OrderBookDelta.clear(self.instrument_id, book.sequence or 0, ts_event, ts_init)]
        for side in ("buy", "sell"):
            for price, qty in sorted(self.venue_levels[side].items(), reverse=side == "buy"):
                shown = qty - own.get((side, price), Decimal(0))
                if shown > 0:
                    self._published[side][price] = shown
                    deltas.append(self._delta(BookAction.ADD, side, price, shown, book.sequence or 0, ts_event,
                                              ts_init))
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(self.instrument_id, last.action, last.order, F_SNAPSHOT | F_LAST, last.sequence,
                                    ts_event, ts_init)
        return OrderBookDeltas(self.instrument_id, deltas)

    def apply(self, book: Book, ts_event: int, ts_init: int) -> OrderBookDeltas | None:
        """Apply an update; None when nothing we publish changed."""
        if not self.synced:
            raise BookOutOfSync("no snapshot loaded")
        if book.sequence is not None and self.sequence is not None:
            if book.sequence <= self.sequence:
                raise StaleUpdate(f"sequence {book.sequence} <= {self.sequence}")
            if book.sequence != self.sequence + 1:
                self.synced = False
                raise BookOutOfSync(f"sequence {book.sequence} after {self.sequence}")
        self.sequence = book.sequence if book.sequence is not None else self.sequence
        touched: set[tuple[str, Decimal]] = set()
        for side, levels in (("buy", book.bids), ("sell", book.asks)):
            venue = self.venue_levels[side]
            for price, qty in levels:
                if qty == 0:
                    venue.pop(price, None)
                else:
                    venue[price] = qty
                touched.add((side, price))
        own = self._own() if self._own else {}
        if own != self._own_seen:
            touched |= set(own) | set(self._own_seen)
            self._own_seen = own
        deltas = []
        seq = book.sequence or 0
        for side, price in sorted(touched, key=lambda k: (k[0], k[1])):
            shown = self.venue_levels[side].get(price, Decimal(0)) - own.get((side, price), Decimal(0))
            shown = max(shown, Decimal(0))
            before = self._published[side].get(price, Decimal(0))
            if shown == before:
                continue
            if shown == 0:
                del self._published[side][price]
                action = BookAction.DELETE
            else:
                self._published[side][price] = shown
                action = BookAction.ADD if before == 0 else BookAction.UPDATE
            deltas.append(self._delta(action, side, price, shown, seq, ts_event, ts_init))
        if not deltas:
            return None
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(self.instrument_id, last.action, last.order, F_LAST, seq, ts_event, ts_init)
        return OrderBookDeltas(self.instrument_id, deltas)

    def _delta(self, action, side: str, price: Decimal, qty: Decimal, seq: int, ts_event: int,
               ts_init: int) -> OrderBookDelta:
        order = BookOrder(_SIDES[side], Price(price, self._pp), Quantity(qty, self._sp), 0)
        return OrderBookDelta(self.instrument_id, action, order, 0, seq, ts_event, ts_init)
