"""An L2 book kept from its deltas as plain dicts: its top levels and any one level, at no copy.

NautilusTrader's `OrderBook.bids()` / `asks()` copy every level of a side on each call. On the real
ETHUSDT tape (3,000 levels a side) the signal's features paid ~2.5 ms a book batch for two such
copies, and the queue-fill module one copy per order it queued (30% of a backtest). `BookLevels`
keeps each side as a dict (raw price -> (price, size, raw size)) with its raw prices sorted best
first, updated delta by delta as NautilusTrader's L2_MBP book applies them: ADD and UPDATE set a
level's size (a delta's size is always positive), DELETE removes the level, CLEAR empties both
sides, a delta without a side changes nothing. tests/test_features.py checks it against
NautilusTrader's book on every batch of both bundled tapes and on random delta streams.

Reading the deltas themselves is the rest of the cost: a NautilusTrader delta's order, price and
size objects take ~2.5 us to read, several times what applying them to a dict does. A backtest
therefore hands its `BookLevels` the chunk's deltas as columns read from the catalog's Arrow files
(`DeltaColumns`, through a `ColumnFeed`); a batch without columns is read from its objects.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.enums import BookAction, OrderSide
from nautilus_trader.model.objects import FIXED_SCALAR

_CLEAR, _DELETE = int(BookAction.CLEAR), int(BookAction.DELETE)
_BUY, _SELL = int(OrderSide.BUY), int(OrderSide.SELL)

Level = tuple[float, float, int]  # price, size, raw size


class PackedColumns(NamedTuple):
    """Deltas as the arrays the catalog's Arrow files hold: the actions and sides, and each raw
    price and size as its two little-endian 64-bit words (NautilusTrader's 16-byte fixed point).
    A few arrays, not a Python object per value: a chunk's columns go to the signal worker this way
    (pickled ~10x faster than the lists), and both processes `unpack` them into the same lists."""

    actions: np.ndarray
    sides: np.ndarray
    price_words: np.ndarray  # shape (rows, 2): low, high
    size_words: np.ndarray

    def unpack(self) -> tuple[list, list, list, list, list, list]:
        """`DeltaColumns`' lists: actions, sides, raw prices, prices, sizes, raw sizes."""
        raws, prices = _values(self.price_words)
        size_raws, sizes = _values(self.size_words)
        return self.actions.tolist(), self.sides.tolist(), raws, prices, sizes, size_raws


def _values(words: np.ndarray) -> tuple[list[int], list[float]]:
    """Raw fixed-point values as Python ints, and the floats NautilusTrader's `as_double()` gives
    for them: the raw value rounded to a double, divided by FIXED_SCALAR (a float). Python's
    `raw / FIXED_SCALAR` rounds the int to the nearest double (ties to even) as numpy's uint64
    cast does, so for values within 64 bits the vectorised form is the same bits
    (tests/test_features.py checks both forms, and every level of both bundled tapes)."""
    low, high = words[:, 0], words[:, 1].view(np.int64)
    if not high.any():
        return low.tolist(), (low.astype(np.float64) / FIXED_SCALAR).tolist()
    raws = [(h << 64) + lo for lo, h in zip(low.tolist(), high.tolist(), strict=True)]
    return raws, [r / FIXED_SCALAR for r in raws]


class DeltaColumns:
    """Deltas as plain columns (Python lists: action, side, raw price, price, size, raw size), and
    where each book batch lies in them: a chunk's, read from the catalog by
    `Tape.parts(columns=True)` (with the arrays they came from, `packed`), or a batch's own,
    decoded from its objects (`of_batches`)."""

    def __init__(self, actions: list, sides: list, raws: list, prices: list, sizes: list, size_raws: list,
                 packed: PackedColumns | None = None) -> None:
        self.actions, self.sides, self.raws = actions, sides, raws
        self.prices, self.sizes, self.size_raws = prices, sizes, size_raws
        self.packed = packed  # these rows as arrays, while no row was added to the lists
        self._spans: dict[int, tuple[OrderBookDeltas, int, int]] = {}

    @classmethod
    def of_packed(cls, packed: PackedColumns) -> DeltaColumns:
        return cls(*packed.unpack(), packed=packed)

    @classmethod
    def of_batches(cls, batches: list[OrderBookDeltas]) -> DeltaColumns:
        """Decoded from NautilusTrader's objects."""
        cols = cls([], [], [], [], [], [])
        for batch in batches:
            start = len(cols.actions)
            for delta in batch.deltas:
                order = delta.order
                price, size = order.price, order.size
                cols.actions.append(int(delta.action))
                cols.sides.append(int(order.side))
                cols.raws.append(price.raw)
                cols.prices.append(price.as_double())
                cols.sizes.append(size.as_double())
                cols.size_raws.append(size.raw)
            cols.place(batch, start, len(cols.actions))
        return cols

    def place(self, batch: OrderBookDeltas, start: int, end: int) -> None:
        """Rows [start, end) are `batch`'s deltas."""
        self._spans[id(batch)] = (batch, start, end)

    def extend(self, other: DeltaColumns) -> None:
        """Append `other`'s rows and batches (a chunk's seed snapshot, decoded from its objects)."""
        base = len(self.actions)
        self.packed = None  # no longer these rows
        for mine, theirs in ((self.actions, other.actions), (self.sides, other.sides), (self.raws, other.raws),
                             (self.prices, other.prices), (self.sizes, other.sizes),
                             (self.size_raws, other.size_raws)):
            mine.extend(theirs)
        for batch, start, end in other._spans.values():
            self.place(batch, base + start, base + end)

    def span(self, batch: OrderBookDeltas) -> tuple[int, int] | None:
        hit = self._spans.get(id(batch))
        return (hit[1], hit[2]) if hit is not None and hit[0] is batch else None


class ColumnFeed:
    """The columns of the chunk in hand, shared by everything that replays it (see `DeltaColumns`)."""

    def __init__(self) -> None:
        self.columns: DeltaColumns | None = None


class LevelWatch:
    """Levels a caller watches as a batch is applied: (side, raw price) -> the caller's key, kept
    per side for the per-delta lookup and in the mapping's order for a CLEAR."""

    def __init__(self, levels: dict) -> None:
        self.keys = list(levels.values())
        self.by_side: dict = {_BUY: {}, _SELL: {}}
        for (side, raw), key in levels.items():
            self.by_side[side][raw] = key


class BookLevels:
    def __init__(self, feed: ColumnFeed | None = None) -> None:
        self._levels: dict = {_BUY: {}, _SELL: {}}  # side -> raw price -> Level
        self._keys: dict = {_BUY: [], _SELL: []}  # side -> sort keys, best first: -raw bids, raw asks
        self.feed = feed  # where a batch's columns may already be

    def apply_deltas(self, deltas: OrderBookDeltas, watch: LevelWatch | None = None) -> dict | None:
        """Apply a batch. With `watch`, also return the watched levels the batch touched, as the
        caller's key -> the level's raw size once the whole batch is applied (0 where it has no
        level then), in the order first touched (a CLEAR touches every watched level, in the
        watch's order, and starts the order afresh)."""
        cols = self.feed.columns if self.feed is not None else None
        span = cols.span(deltas) if cols is not None else None
        if span is None:
            cols = DeltaColumns.of_batches([deltas])
            span = (0, len(cols.actions))
        return self.apply_span(cols, *span, watch=watch)

    def apply_span(self, cols: DeltaColumns, start: int, end: int, watch: LevelWatch | None = None) -> dict | None:
        """Apply the deltas in rows [start, end) of `cols` (one batch), as `apply_deltas` does."""
        bids, asks = self._levels[_BUY], self._levels[_SELL]
        bid_keys, ask_keys = self._keys[_BUY], self._keys[_SELL]
        watched = None if watch is None else watch.by_side
        touched = None if watch is None else {}
        rows = zip(cols.actions[start:end], cols.sides[start:end], cols.raws[start:end], cols.prices[start:end],
                   cols.sizes[start:end], cols.size_raws[start:end], strict=True)
        for action, side, raw, price, size, size_raw in rows:
            if action == _CLEAR:
                bids.clear()
                asks.clear()
                bid_keys.clear()
                ask_keys.clear()
                if watch is not None:
                    touched = dict.fromkeys(watch.keys, 0)
                continue
            if side == _BUY:
                levels, keys, key = bids, bid_keys, -raw
            elif side == _SELL:
                levels, keys, key = asks, ask_keys, raw
            else:
                continue
            if watched is not None:
                mine = watched[side].get(raw)
                if mine is not None:
                    touched[mine] = 0 if action == _DELETE else size_raw  # its size so far in the batch
            if action == _DELETE:
                if levels.pop(raw, None) is not None:
                    del keys[bisect_left(keys, key)]
            else:
                if raw not in levels:
                    insort(keys, key)
                levels[raw] = (price, size, size_raw)
        return touched

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The top `n` levels of each side, best first."""
        bids, asks = self._levels[_BUY], self._levels[_SELL]
        return [bids[-k] for k in self._keys[_BUY][:n]], [asks[k] for k in self._keys[_SELL][:n]]

    def level(self, side: int, raw_price: int) -> Level | None:
        """The level at a raw price, or None where the side has none."""
        return self._levels[side].get(raw_price)

    def best(self, side: int) -> int | None:
        """The raw price of the side's best level, or None when it is empty."""
        keys = self._keys[side]
        if not keys:
            return None
        return -keys[0] if side == _BUY else keys[0]

    def walk(self, side: int) -> Iterator[tuple[int, Level]]:
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
