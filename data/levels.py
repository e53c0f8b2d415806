"""An L2 book kept from its deltas as plain dicts: its top levels and any one level, at no copy.

NautilusTrader's `OrderBook.bids()` / `asks()` copy every level of a side on each call. On the real
ETHUSDT tape (3,000 levels a side) the signal's features paid ~2.5 ms a book batch for two such
copies, and the queue-fill module one copy per order it queued (30% of a backtest). `BookLevels`
keeps each side as a dict (raw price -> (price, size, raw size)) with its raw prices sorted best
first, updated delta by delta as NautilusTrader's L2_MBP book applies them: ADD and UPDATE set a
level's size (a delta's size is always positive), DELETE removes the level, CLEAR empties both
sides, a delta without a side changes nothing. tests/test_features.py checks it against
NautilusTrader's book on every batch of both bundled tapes and on random delta streams.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.enums import BookAction, OrderSide

_CLEAR, _DELETE = BookAction.CLEAR, BookAction.DELETE
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL

Level = tuple[float, float, int]  # price, size, raw size


class BookLevels:
    def __init__(self) -> None:
        self._levels: dict = {_BUY: {}, _SELL: {}}  # side -> raw price -> Level
        self._keys: dict = {_BUY: [], _SELL: []}  # side -> sort keys, best first: -raw bids, raw asks

    def apply_deltas(self, deltas: OrderBookDeltas, watch: dict | None = None) -> dict | None:
        """Apply a batch. With `watch` ((side, raw price) -> a caller's key), also return the
        caller's keys of the watched levels the batch touched, in the order first touched (a CLEAR
        touches every watched level, in `watch`'s order, and starts the order afresh)."""
        all_levels, all_keys = self._levels, self._keys
        touched = None if watch is None else {}
        for delta in deltas.deltas:
            action = delta.action
            if action == _CLEAR:
                for side in (_BUY, _SELL):
                    all_levels[side].clear()
                    all_keys[side].clear()
                if watch is not None:
                    touched = dict.fromkeys(watch.values())
                continue
            order = delta.order
            side = order.side
            levels = all_levels.get(side)
            if levels is None:
                continue
            price = order.price
            raw = price.raw
            if watch is not None:
                mine = watch.get((side, raw))
                if mine is not None:
                    touched[mine] = None
            if action == _DELETE:
                if levels.pop(raw, None) is not None:
                    keys = all_keys[side]
                    del keys[bisect_left(keys, -raw if side == _BUY else raw)]
            else:
                if raw not in levels:
                    insort(all_keys[side], -raw if side == _BUY else raw)
                size = order.size
                levels[raw] = (price.as_double(), size.as_double(), size.raw)
        return touched

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The top `n` levels of each side, best first."""
        bids, asks = self._levels[_BUY], self._levels[_SELL]
        return [bids[-k] for k in self._keys[_BUY][:n]], [asks[k] for k in self._keys[_SELL][:n]]

    def level(self, side: OrderSide, raw_price: int) -> Level | None:
        """The level at a raw price, or None where the side has none."""
        return self._levels[side].get(raw_price)

    def best(self, side: OrderSide) -> int | None:
        """The raw price of the side's best level, or None when it is empty."""
        keys = self._keys[side]
        if not keys:
            return None
        return -keys[0] if side == _BUY else keys[0]

    def walk(self, side: OrderSide) -> Iterator[tuple[int, Level]]:
        """(raw price, level) from the side's best level outward; stop early to read only the top."""
        levels = self._levels[side]
        sign = -1 if side == _BUY else 1
        for key in self._keys[side]:
            raw = sign * key
            yield raw, levels[raw]

    def clear(self) -> None:
        for side in (_BUY, _SELL):
            self._levels[side].clear()
            self._keys[side].clear()
