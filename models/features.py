"""Features of the L2 book and trades for short-horizon mid-move models.

Training and trading must see the same numbers, so there is one definition with two evaluators.
`_Observer` turns each book batch (its trades, then its book) into per-row observations; both paths
run it unchanged on a NautilusTrader book. Window features over the last k seconds are then
computed vectorised offline (`offline_features`) and from running windows online
(`OnlineFeatures`).

Every window is a time on the one clock, the receive time (`ts_init`) of the book batch: the
window of k seconds at a row stamped t holds the rows stamped in (t - k, t]. A venue's `ts_event`
is data and never used. So the same feature means the same thing on a tape of 400 ms blocks and on
a 100 ms exchange stream: a return over 5 s, a trade rate per second, volatility in bps per
sqrt(second). Nothing counts updates.

Window sums are taken over values rounded to a 2^-24 grid and held as integers: integer sums are
exact in any order, so the online running totals never drift and both paths agree bit for bit
over any tape length, at a cost of < 1e-5 (in the feature's units) per window. Early rows use the
past available: sums treat the missing past as zero, returns reach back to the first row.
Features at a row use nothing after that row.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import accumulate

import numpy as np
import pandas as pd
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import InstrumentId

from data.catalog import Tape, merge_stream
from data.levels import BookLevels, ColumnFeed

WINDOWS_S = (1.0, 5.0, 30.0)  # seconds, the markout horizons the report uses
IMBALANCE_LEVELS = (1, 3, 5, 10)
DEPTH_LEVELS = 5
TRADE_GAP_CAP_S = 60.0  # longer than any window or horizon: a quiet minute and a quiet hour look alike
FIXED_SCALE = float(2**24)  # window sums are of round(value * FIXED_SCALE)
NS = 1_000_000_000


def window_name(kind: str, seconds: float) -> str:
    """The column of a window feature, e.g. ("ret", 5.0) -> "ret_5s"."""
    return f"{kind}_{seconds:g}s"


STATE_NAMES = [
    "micro_bps",  # microprice minus mid, bps of mid
    "spread_bps",
    *(f"imb_{k}" for k in IMBALANCE_LEVELS),  # (bid - ask) / (bid + ask) depth over the top k levels
    "depth5_log",  # log of bid + ask size over the top 5 levels
    "since_trade_s",  # seconds since the last trade, capped
]
WINDOW_KINDS = (
    "ret",  # log return of the mid over the window, bps
    "rv",  # realised volatility: sqrt(sum of squared row-to-row returns / window), bps per sqrt(second)
    "ofi",  # Cont's L1 order-flow imbalance summed over the window, in units of the mean touch size
    "tfi",  # (buy - sell) / (buy + sell) aggressor volume over the window; 0 without trades
    "trades",  # trades per second over the window
)
WINDOW_NAMES = [window_name(kind, k) for k in WINDOWS_S for kind in WINDOW_KINDS]
FEATURE_NAMES: list[str] = STATE_NAMES + WINDOW_NAMES

# Features whose sign flips when the book is mirrored (bids and asks swapped, prices reflected about
# the mid): a mirrored market's "up" is the original's "down". The rest (spread, depth, activity,
# volatility) are unchanged. Training can use this to learn a model with no built-in drift.
DIRECTIONAL = [name for name in FEATURE_NAMES if name.split("_")[0] in ("micro", "imb", "ret", "ofi", "tfi")]

_MAX_LEVELS = max(*IMBALANCE_LEVELS, DEPTH_LEVELS)
_N_STATE = len(STATE_NAMES)
_WINDOWS_NS = tuple(round(k * NS) for k in WINDOWS_S)
_BUYER, _SELLER = int(AggressorSide.BUYER), int(AggressorSide.SELLER)


class _Observer:
    """Per-row observations: the book now, the trades since the last row, and the last row's top.

    A batch whose book is one-sided or crossed yields no row; its trades carry over to the next
    usable one, which is then compared with the last usable top of book. A print without an
    aggressor counts as a trade but not as flow: its direction is unknown.
    """

    def __init__(self) -> None:
        self.prev: tuple[float, float, float, float, float] | None = None  # bid, ask, sizes, log mid
        self.buy = 0.0
        self.sell = 0.0
        self.count = 0
        self.last_trade_ns: int | None = None

    def on_trade(self, trade: TradeTick) -> None:
        self.on_print(trade.ts_init, trade.size.as_double(), int(trade.aggressor_side))

    def on_print(self, ts_ns: int, size: float, aggressor: int) -> None:
        """A trade as plain values: its time, size and `AggressorSide` as an int."""
        if aggressor == _BUYER:
            self.buy += size
        elif aggressor == _SELLER:
            self.sell += size
        self.count += 1
        self.last_trade_ns = ts_ns

    def observe(self, ts_ns: int, book: OrderBook | BookLevels) -> tuple[float, float, tuple, list[float]] | None:
        """(mid, log mid, increments, state features) of the row, or None without a usable book.

        The increments are what window sums add up: (squared return since the last row in bps^2,
        OFI in touch units, buy volume, sell volume, trade count)."""
        bids, asks = book.top(_MAX_LEVELS) if isinstance(book, BookLevels) else _top_levels(book)
        if not bids or not asks:
            return None
        bid, ask = bids[0][0], asks[0][0]
        if bid >= ask:
            return None
        bid_depth, ask_depth = _depths(bids), _depths(asks)
        bid_size, ask_size = bid_depth[0], ask_depth[0]
        mid = 0.5 * (bid + ask)
        log_mid = math.log(mid)
        micro = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
        imbalances = [
            (bid_depth[k - 1] - ask_depth[k - 1]) / (bid_depth[k - 1] + ask_depth[k - 1]) for k in IMBALANCE_LEVELS
        ]
        depth = bid_depth[DEPTH_LEVELS - 1] + ask_depth[DEPTH_LEVELS - 1]

        if self.prev is None:
            ret, ofi, touch = 0.0, 0.0, 0.5 * (bid_size + ask_size)
        else:
            p_bid, p_ask, p_bid_size, p_ask_size, p_log_mid = self.prev
            ret = (log_mid - p_log_mid) * 1e4
            # Cont, Kukanov & Stoikov (2014): size arriving at or improving the touch counts for
            # its side, size leaving or a touch that retreats counts against it.
            ofi = (
                (bid_size if bid >= p_bid else 0.0)
                - (p_bid_size if bid <= p_bid else 0.0)
                - (ask_size if ask <= p_ask else 0.0)
                + (p_ask_size if ask >= p_ask else 0.0)
            )
            touch = 0.5 * (p_bid_size + p_ask_size)
        since = TRADE_GAP_CAP_S
        if self.last_trade_ns is not None:
            since = min((ts_ns - self.last_trade_ns) * 1e-9, TRADE_GAP_CAP_S)
        state = [
            (micro - mid) / mid * 1e4,
            (ask - bid) / mid * 1e4,
            *imbalances,
            math.log(depth),
            since,
        ]
        out = (mid, log_mid, (ret * ret, ofi / touch, self.buy, self.sell, self.count), state)
        self.prev = (bid, ask, bid_size, ask_size, log_mid)
        self.buy = self.sell = 0.0
        self.count = 0
        return out


def _depths(levels: list[tuple]) -> list[float]:
    """Cumulative size over the top levels ((price, size, ...) each); a thinner book counts all it
    has at every depth."""
    depth = list(accumulate([level[1] for level in levels]))
    return depth + [depth[-1]] * (_MAX_LEVELS - len(depth))


def _top_levels(book: OrderBook) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(price, size) of a NautilusTrader book's top levels, best first. `bids()` copies every level
    of the side: on a deep book keep a `data.levels.BookLevels` instead."""
    return ([(level.price.as_double(), level.size()) for level in book.bids()[:_MAX_LEVELS]],
            [(level.price.as_double(), level.size()) for level in book.asks()[:_MAX_LEVELS]])


def _quantise(increments: tuple) -> tuple[int, int, int, int, int]:
    """A row's window increments on the integer grid (the count is already an integer)."""
    ret_sq, ofi, buy, sell, count = increments
    return (round(ret_sq * FIXED_SCALE), round(ofi * FIXED_SCALE), round(buy * FIXED_SCALE),
            round(sell * FIXED_SCALE), count)


def _window_values(log_mid: float, anchor: float, totals: tuple, seconds: float) -> tuple[float, ...]:
    """ret, rv, ofi, tfi, trades of one window from its integer totals and the anchor's log mid."""
    ret_sq, ofi, buy, sell, count = totals
    flow = float(buy + sell)
    return (
        (log_mid - anchor) * 1e4,
        math.sqrt(float(ret_sq) / FIXED_SCALE / seconds),
        float(ofi) / FIXED_SCALE,
        float(buy - sell) / flow if flow > 0.0 else 0.0,
        count / seconds,
    )


class OnlineFeatures:
    """The features row by row inside an actor, equal to `offline_features` on the same stream.

    Feed a batch's trades with `on_trade`, then call `on_book` once its deltas are applied. Each
    window keeps the rows stamped inside it and their integer totals; a row leaving a window
    becomes its anchor, the mid the window's return is measured from.
    """

    def __init__(self) -> None:
        self._observer = _Observer()
        self._rows: list[deque] = [deque() for _ in WINDOWS_S]  # (ts, quantised increments, log mid)
        self._totals = [(0, 0, 0, 0, 0)] * len(WINDOWS_S)
        self._anchor: list[float | None] = [None] * len(WINDOWS_S)  # log mid as of (t - k)
        self._first_log_mid: float | None = None
        self.mid = math.nan  # of the last row with a usable book

    def on_trade(self, trade: TradeTick) -> None:
        self._observer.on_trade(trade)

    def on_print(self, ts_ns: int, size: float, aggressor: int) -> None:
        """`on_trade` from plain values (see `_Observer.on_print`)."""
        self._observer.on_print(ts_ns, size, aggressor)

    def on_book(self, ts_ns: int, book: OrderBook | BookLevels) -> np.ndarray | None:
        row = self._observer.observe(ts_ns, book)
        if row is None:
            return None
        mid, log_mid, increments, state = row
        self.mid = mid
        if self._first_log_mid is None:
            self._first_log_mid = log_mid
        q = _quantise(increments)
        q0, q1, q2, q3, q4 = q
        out = state
        for w, k_ns in enumerate(_WINDOWS_NS):
            rows = self._rows[w]
            t0, t1, t2, t3, t4 = self._totals[w]
            t0, t1, t2, t3, t4 = t0 + q0, t1 + q1, t2 + q2, t3 + q3, t4 + q4  # unrolled: this runs every batch
            rows.append((ts_ns, q, log_mid))
            cutoff = ts_ns - k_ns
            while rows[0][0] <= cutoff:
                _, (o0, o1, o2, o3, o4), self._anchor[w] = rows.popleft()
                t0, t1, t2, t3, t4 = t0 - o0, t1 - o1, t2 - o2, t3 - o3, t4 - o4
            totals = self._totals[w] = (t0, t1, t2, t3, t4)
            anchor = self._anchor[w]
            out += _window_values(log_mid, self._first_log_mid if anchor is None else anchor, totals, WINDOWS_S[w])
        return np.array(out, dtype=np.float64)


def offline_features(tape: Tape, start_ns: int | None = None, end_ns: int | None = None) -> pd.DataFrame:
    """One row per book batch of the tape window with a usable book: ts, mid, then FEATURE_NAMES.

    A window starting inside the tape opens with the book snapshot the tape seeds it with (a row
    stamped `start_ns - 1`), and its windows warm up afresh from there.
    """
    feed = ColumnFeed()  # the book reads each chunk's deltas as columns from the catalog

    def chunks() -> Iterator[list[OrderBookDeltas | TradeTick]]:
        for batches, trades, columns in tape.parts(start_ns, end_ns, columns=True):
            feed.columns = columns
            yield merge_stream(batches, trades)

    return stream_features(tape.instrument.id, chunks(), feed)


def stream_features(
    instrument_id: InstrumentId, chunks: Iterable[list[OrderBookDeltas | TradeTick]], feed: ColumnFeed | None = None
) -> pd.DataFrame:
    """`offline_features` over any replay stream (chunks as `Tape.chunks` yields them).

    The stream is replayed through a `BookLevels`, which holds the top levels NautilusTrader's
    book would, delta by delta; only the window features differ in method, computed here over
    whole columns at once: each window's first row by a binary search on the receive times, its
    sums as differences of integer cumulative sums (exact even where an int64 cumulative sum wraps
    around, since each window's own sum fits).
    """
    book = BookLevels(feed)
    observer = _Observer()
    ts: list[int] = []
    rows: list[tuple[float, float, tuple, list[float]]] = []
    for chunk in chunks:
        for item in chunk:
            if isinstance(item, TradeTick):
                observer.on_trade(item)
                continue
            book.apply_deltas(item)
            row = observer.observe(item.ts_init, book)
            if row is not None:
                ts.append(item.ts_init)
                rows.append(row)

    n = len(rows)
    t = np.array(ts, dtype=np.int64)
    mid = np.array([r[0] for r in rows], dtype=np.float64)
    log_mid = np.array([r[1] for r in rows], dtype=np.float64)
    inc = np.array([r[2] for r in rows], dtype=np.float64).reshape(n, 5)
    state = np.array([r[3] for r in rows], dtype=np.float64).reshape(n, _N_STATE)
    fixed = [_fixed(inc[:, j]) for j in range(4)] + [inc[:, 4].astype(np.int64)]
    with np.errstate(over="ignore"):
        cums = [np.concatenate([np.zeros(1, np.int64), np.cumsum(x, dtype=np.int64)]) for x in fixed]
    columns = {name: state[:, j] for j, name in enumerate(STATE_NAMES)}
    end = np.arange(1, n + 1)
    for k, k_ns in zip(WINDOWS_S, _WINDOWS_NS, strict=True):
        first = np.searchsorted(t, t - k_ns, side="right")  # the first row stamped after t - k
        with np.errstate(over="ignore"):
            ret_sq, ofi, buy, sell, count = (c[end] - c[first] for c in cums)
        anchor = log_mid[np.maximum(first - 1, 0)]
        columns[window_name("ret", k)] = (log_mid - anchor) * 1e4
        columns[window_name("rv", k)] = np.sqrt(ret_sq.astype(np.float64) / FIXED_SCALE / k)
        columns[window_name("ofi", k)] = ofi.astype(np.float64) / FIXED_SCALE
        flow = (buy + sell).astype(np.float64)
        columns[window_name("tfi", k)] = np.divide((buy - sell).astype(np.float64), flow, out=np.zeros(n),
                                                   where=flow > 0.0)
        columns[window_name("trades", k)] = count / k
    frame = pd.DataFrame({"ts": t, "mid": mid})
    return pd.concat([frame, pd.DataFrame({name: columns[name] for name in FEATURE_NAMES})], axis=1)


def _fixed(x: np.ndarray) -> np.ndarray:
    """The values on the fixed-point grid, rounded half to even as Python's `round` does online."""
    return np.rint(x * FIXED_SCALE).astype(np.int64)
