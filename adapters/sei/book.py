"""The contract's aggregated book, kept current from its wasm events, as NautilusTrader data.

The CLOB contract has no book stream: a reader queries `book` once, then replays every block's
`wasm-*` events on top of it (CONTRACT.md guarantees each event names the side and price it
touches). Per block this yields exactly one `OrderBookDeltas` batch whose last delta carries
F_LAST, the shape a backtest tape has, so the strategy sees the same data live and in backtests.

The tracker refuses to guess: a level that would go negative, a taker fill for an order it never
saw placed, or an undecodable attribute marks it out of sync, and the data client re-snapshots.
Levels beyond the depth of the snapshot are unknown, so events there are ignored rather than
turned into partial levels.

Expiry is lazy on chain (`wasm-expired` comes only when something touches the order) but the
`book` query drops an order the block after its `expiry_height`. The tracker does the same for
the orders it saw placed; an order that was already resting at the snapshot has an expiry the
tracker cannot know, which is why the data client also re-checks the book against the contract
every so often.

Given `exclude_owner` (a live node's own account), the tracker keeps the market without that
owner's orders, from a `book` query with the same `exclude_owner` and by skipping every event of
theirs that touches the book; trades are still all published. A backtest tape is the market
without us, and the strategy's fair value and the signal's features must not feed on our own
quotes, so the live book means the same thing; a recording of it backtests without counting our
liquidity twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import Price, Quantity

from adapters.sei.events import Event

F_LAST = int(RecordFlag.F_LAST)
F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}


class BookOutOfSync(Exception):
    """Events no longer fit the tracked book; re-snapshot."""


@dataclass(frozen=True, slots=True)
class BlockData:
    deltas: OrderBookDeltas | None
    trades: list[TradeTick]


@dataclass(slots=True)
class _Known:
    side: str
    price: Decimal
    remaining: Decimal


class BookTracker:
    def __init__(
        self, instrument_id: InstrumentId, price_precision: int, size_precision: int, exclude_owner: str | None = None
    ) -> None:
        self.instrument_id = instrument_id
        self.exclude_owner = exclude_owner
        self._pp = price_precision
        self._sp = size_precision
        self._levels: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
        # Worst price each side's snapshot reached when it was truncated at the query depth.
        self._horizon: dict[str, Decimal | None] = {"buy": None, "sell": None}
        self._orders: dict[str, _Known] = {}  # orders placed since the snapshot
        self._expiring: dict[int, list[str]] = {}  # expiry height -> order ids
        self._gone: set[str] = set()  # expired here already, the lazy wasm-expired still to come
        self.height = self.snapshot_height = 0
        self.synced = False
        self.bad_trades = 0  # unreadable prints in blocks the snapshot already covered

    def load_snapshot(self, book: dict, depth: int, ts_event: int, ts_init: int) -> OrderBookDeltas:
        """Reset from a `book` query answer; returns the CLEAR + ADD batch to publish."""
        try:
            height = int(book["height"])
            levels = {
                side: {Decimal(lv["price"]): Decimal(lv["quantity"]) for lv in book[key]}
                for side, key in (("buy", "bids"), ("sell", "asks"))
            }
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise BookOutOfSync(f"book query answer is malformed: {exc!r:.200}") from None
        self._levels = levels
        for side, key in (("buy", "bids"), ("sell", "asks")):
            truncated = len(book[key]) >= depth
            prices = levels[side]
            self._horizon[side] = (min(prices) if side == "buy" else max(prices)) if truncated and prices else None
        self._orders.clear()
        self._expiring.clear()
        self._gone.clear()
        self.height = self.snapshot_height = height
        self.synced = True
        deltas = [OrderBookDelta.clear(self.instrument_id, 0, ts_event, ts_init)]
        for side in ("buy", "sell"):
            for price, qty in sorted(levels[side].items(), reverse=side == "buy"):
                deltas.append(self._delta(BookAction.ADD, side, price, qty, 0, ts_event, ts_init))
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(
            self.instrument_id, last.action, last.order, F_SNAPSHOT | F_LAST, 0, ts_event, ts_init
        )
        return OrderBookDeltas(self.instrument_id, deltas)

    def apply_block(self, height: int, events: Iterable[Event], ts_event: int, ts_init: int) -> BlockData:
        """Apply one block's events (all of this contract's, in order). A block at or below the
        snapshot's height (held while the snapshot was taken) is already in the book, but its
        trades are not in any snapshot: they are still returned."""
        if not self.synced:
            raise BookOutOfSync("no snapshot loaded")
        if height <= self.height:
            return BlockData(None, self._trades_only(events, ts_event, ts_init))
        before: dict[tuple[str, Decimal], Decimal] = {}
        trades: list[TradeTick] = []
        try:
            self._expire_until(height, before)
            for event in events:
                self._apply(event, before, trades, ts_event, ts_init)
            deltas = self._changes(before, height, ts_event, ts_init)
        except (KeyError, ValueError, InvalidOperation) as exc:
            # Includes values NautilusTrader's Price/Quantity refuse (1e30, Infinity).
            self.synced = False
            raise BookOutOfSync(f"block {height}: {exc}") from None
        self.height = height
        return BlockData(deltas, trades)

    def _trades_only(self, events: Iterable[Event], ts_event: int, ts_init: int) -> list[TradeTick]:
        trades = []
        for event in events:
            if event.type != "wasm-trade":
                continue
            try:
                trades.append(self._trade(event, ts_event, ts_init))
            except (KeyError, ValueError, InvalidOperation):
                self.bad_trades += 1  # the book is not at stake here: drop the print, not the sync
        return trades

    def levels(self, side: str) -> dict[Decimal, Decimal]:
        return dict(self._levels[side])

    # -- internals ------------------------------------------------------------------------------

    def _apply(self, event: Event, before: dict, trades: list[TradeTick], ts_event: int, ts_init: int) -> None:
        kind = event.type
        if self.exclude_owner is not None and kind != "wasm-trade" and event.get("owner") == self.exclude_owner:
            return  # our own order: not part of the market we publish
        if kind == "wasm-placed":
            side, price, qty = _side(event), Decimal(_req(event, "price")), Decimal(_req(event, "quantity"))
            order_id = _req(event, "order_id")
            expiry = event.get("expiry_height")
            self._orders[order_id] = _Known(side, price, qty)
            if expiry:
                self._expiring.setdefault(int(expiry), []).append(order_id)
            self._add(side, price, qty, before)
        elif kind == "wasm-filled":
            qty = Decimal(_req(event, "quantity"))
            order_id = _req(event, "order_id")
            remaining = Decimal(_req(event, "remaining_quantity"))
            known = self._orders.get(order_id)
            if _req(event, "liquidity") == "maker":
                side, price = _side(event), Decimal(_req(event, "price"))
            elif known is None:
                raise ValueError(f"taker fill of order {order_id} that was never placed")
            else:
                side, price = known.side, known.price
            self._add(side, price, -qty, before)
            if known is not None:
                known.remaining = remaining
            if remaining == 0:
                self._orders.pop(order_id, None)
        elif kind == "wasm-reduced":
            self._add(_side(event), Decimal(_req(event, "price")), -Decimal(_req(event, "quantity")), before)
            known = self._orders.get(_req(event, "order_id"))
            if known is not None:
                known.remaining = Decimal(_req(event, "remaining_quantity"))
        elif kind in ("wasm-cancelled", "wasm-expired"):
            order_id = _req(event, "order_id")
            self._orders.pop(order_id, None)
            if order_id in self._gone:
                self._gone.discard(order_id)  # already taken off the book when it expired
            elif kind == "wasm-expired" and int(_req(event, "expiry_height")) < self.snapshot_height:
                pass  # expired before the snapshot, which therefore never held it
            else:
                self._add(_side(event), Decimal(_req(event, "price")), -Decimal(_req(event, "remaining_quantity")),
                          before)
        elif kind == "wasm-trade":
            trades.append(self._trade(event, ts_event, ts_init))

    def _trade(self, event: Event, ts_event: int, ts_init: int) -> TradeTick:
        return TradeTick(
            self.instrument_id,
            Price(Decimal(_req(event, "price")), self._pp),
            Quantity(Decimal(_req(event, "quantity")), self._sp),
            AggressorSide.BUYER if _req(event, "taker_side") == "buy" else AggressorSide.SELLER,
            TradeId(_req(event, "trade_id")),
            ts_event,
            ts_init,
        )

    def _expire_until(self, height: int, before: dict) -> None:
        """Drop the known orders whose `expiry_height` is below `height`, as the contract's book does."""
        for expiry in [h for h in self._expiring if h < height]:
            for order_id in self._expiring.pop(expiry):
                known = self._orders.pop(order_id, None)
                if known is not None and known.remaining > 0:
                    self._add(known.side, known.price, -known.remaining, before)
                    self._gone.add(order_id)

    def _add(self, side: str, price: Decimal, qty: Decimal, before: dict) -> None:
        horizon = self._horizon[side]
        if horizon is not None and (price < horizon if side == "buy" else price > horizon):
            return  # beyond the snapshot's depth: unknown level
        levels = self._levels[side]
        key = (side, price)
        if key not in before:
            before[key] = levels.get(price, Decimal(0))
        new = levels.get(price, Decimal(0)) + qty
        if new < 0:
            raise ValueError(f"{side} level {price} would go negative ({new})")
        if new == 0:
            levels.pop(price, None)
        else:
            levels[price] = new

    def _changes(self, before: dict, height: int, ts_event: int, ts_init: int) -> OrderBookDeltas | None:
        deltas = []
        for (side, price), old in sorted(before.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            new = self._levels[side].get(price, Decimal(0))
            if new == old:
                continue
            action = BookAction.DELETE if new == 0 else BookAction.ADD if old == 0 else BookAction.UPDATE
            deltas.append(self._delta(action, side, price, new, height, ts_event, ts_init))
        if not deltas:
            return None
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(self.instrument_id, last.action, last.order, F_LAST, height, ts_event, ts_init)
        return OrderBookDeltas(self.instrument_id, deltas)

    def _delta(self, action, side: str, price: Decimal, qty: Decimal, seq: int, ts_event: int, ts_init: int):
        order = BookOrder(_SIDES[side], Price(price, self._pp), Quantity(qty, self._sp), 0)
        return OrderBookDelta(self.instrument_id, action, order, 0, seq, ts_event, ts_init)


def _req(event: Event, key: str) -> str:
    value = event.get(key)
    if value is None:
        raise KeyError(f"{event.type} has no {key!r}")
    return value


def _side(event: Event) -> str:
    side = _req(event, "side")
    if side not in _SIDES:
        raise ValueError(f"{event.type} side {side!r:.20}")
    return side
