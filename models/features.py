"""Features of the L2 book and trades for a short-horizon mid-move model.

Training and trading must see the same numbers, so there is one definition with two evaluators.
`_Observer` turns each block (its trades, then its book) into per-block observations; both paths
run it unchanged on a NautilusTrader book. Window features over the last k blocks are then
computed vectorised offline (`offline_features`) and from ring buffers online (`OnlineFeatures`).
Windows count blocks, not seconds: the model predicts a move over blocks, and a block count needs
no timestamp arithmetic to agree between the two paths.

Window sums are taken over values rounded to a 2^-24 grid and held as integers: integer sums are
exact in any order, so the online running totals never drift and both paths agree bit for bit
over any tape length, at a cost of < 1e-5 (in the feature's units) per window. Early blocks use
the blocks available: sums treat the missing past as zero, returns reach back to the first block,
volatility averages over the blocks seen. Features at a block use nothing after that block.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import accumulate

import numpy as np
import pandas as pd
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookType
from nautilus_trader.model.identifiers import InstrumentId
from numpy.lib.stride_tricks import sliding_window_view

from data.catalog import Tape

WINDOWS = (5, 25, 150)  # blocks: ~2 s, 10 s, 60 s of 400 ms blocks
IMBALANCE_LEVELS = (1, 3, 5, 10)
DEPTH_LEVELS = 5
TRADE_GAP_CAP_S = 60.0  # a quiet minute and a quiet hour mean the same to a 400 ms horizon
FIXED_SCALE = float(2**24)  # window sums are of round(value * FIXED_SCALE)

OBSERVATION_NAMES = [
    "ret_1",  # 1-block log return of the mid, bps
    "micro_bps",  # microprice minus mid, bps of mid
    "spread_bps",
    *(f"imb_{k}" for k in IMBALANCE_LEVELS),  # (bid - ask) / (bid + ask) depth over the top k levels
    "depth5_log",  # log of bid + ask size over the top 5 levels
    "ofi_1",  # Cont's L1 order-flow imbalance increment, in units of the previous mean touch size
    "flow_1",  # buy minus sell aggressor volume of the block, same units
    "trades_1",  # trade count of the block
    "since_trade_s",  # seconds since the last trade, capped
]
WINDOW_NAMES = [f"{kind}_{k}" for k in WINDOWS for kind in ("ret", "rv", "ofi", "tfi")]
FEATURE_NAMES: list[str] = OBSERVATION_NAMES + WINDOW_NAMES

_MAX_LEVELS = max(*IMBALANCE_LEVELS, DEPTH_LEVELS)
_N_OBS = len(OBSERVATION_NAMES)
_RET, _OFI = OBSERVATION_NAMES.index("ret_1"), OBSERVATION_NAMES.index("ofi_1")
_RING = WINDOWS[-1] + 1  # the longest window needs the value that many blocks back


class _Observer:
    """Per-block observations: the book now, the block's trades, and the previous block's top.

    A block whose book is one-sided or crossed yields nothing; its trades carry over to the next
    usable block, which is then compared with the last usable top of book. A print without an
    aggressor counts as a trade but not as flow: its direction is unknown.
    """

    def __init__(self) -> None:
        self.prev: tuple[float, float, float, float, float] | None = None  # bid, ask, sizes, log mid
        self.buy = 0.0
        self.sell = 0.0
        self.count = 0
        self.last_trade_ns: int | None = None

    def on_trade(self, trade: TradeTick) -> None:
        size = trade.size.as_double()
        if trade.aggressor_side == AggressorSide.BUYER:
            self.buy += size
        elif trade.aggressor_side == AggressorSide.SELLER:
            self.sell += size
        self.count += 1
        self.last_trade_ns = trade.ts_init

    def observe(
        self, ts_ns: int, book: OrderBook
    ) -> tuple[float, float, float, float, list[float]] | None:
        """(mid, log mid, buy volume, sell volume, observations) of the block, or None."""
        bids, asks = book.bids(), book.asks()
        if not bids or not asks:
            return None
        bid, ask = bids[0].price.as_double(), asks[0].price.as_double()
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
        obs = [
            ret,
            (micro - mid) / mid * 1e4,
            (ask - bid) / mid * 1e4,
            *imbalances,
            math.log(depth),
            ofi / touch,
            (self.buy - self.sell) / touch,
            float(self.count),
            since,
        ]
        out = (mid, log_mid, self.buy, self.sell, obs)
        self.prev = (bid, ask, bid_size, ask_size, log_mid)
        self.buy = self.sell = 0.0
        self.count = 0
        return out


def _depths(levels: list) -> list[float]:
    """Cumulative size over the top levels; a thinner book counts all it has at every depth."""
    depth = list(accumulate([level.size() for level in levels[:_MAX_LEVELS]]))
    return depth + [depth[-1]] * (_MAX_LEVELS - len(depth))


class OnlineFeatures:
    """The features block by block inside an actor, equal to `offline_features` on the same stream.

    Feed a block's trades with `on_trade`, then call `on_book` once its deltas are applied.
    """

    def __init__(self) -> None:
        self._observer = _Observer()
        self._n = 0
        self._log_mid = [0.0] * _RING
        self._fixed = [(0, 0, 0, 0)] * _RING  # squared return, OFI, buy and sell volume, fixed point
        self._totals = [(0, 0, 0, 0)] * len(WINDOWS)
        self.mid = math.nan  # of the last block with a usable book

    def on_trade(self, trade: TradeTick) -> None:
        self._observer.on_trade(trade)

    def on_book(self, ts_ns: int, book: OrderBook) -> np.ndarray | None:
        row = self._observer.observe(ts_ns, book)
        if row is None:
            return None
        mid, log_mid, buy, sell, obs = row
        self.mid = mid
        t = self._n
        self._n = n = t + 1
        ret = obs[_RET]
        q_ret_sq, q_ofi = round(ret * ret * FIXED_SCALE), round(obs[_OFI] * FIXED_SCALE)
        q_buy, q_sell = round(buy * FIXED_SCALE), round(sell * FIXED_SCALE)
        fixed, log_mids, totals = self._fixed, self._log_mid, self._totals
        fixed[t % _RING] = (q_ret_sq, q_ofi, q_buy, q_sell)
        log_mids[t % _RING] = log_mid
        for w, k in enumerate(WINDOWS):
            old_ret_sq, old_ofi, old_buy, old_sell = fixed[(t - k) % _RING] if t >= k else (0, 0, 0, 0)
            ret_sq, ofi, buy_k, sell_k = totals[w]
            ret_sq += q_ret_sq - old_ret_sq
            ofi += q_ofi - old_ofi
            buy_k += q_buy - old_buy
            sell_k += q_sell - old_sell
            totals[w] = (ret_sq, ofi, buy_k, sell_k)
            flow = float(buy_k + sell_k)
            obs += (
                (log_mid - log_mids[(t - min(k, t)) % _RING]) * 1e4,
                math.sqrt(float(ret_sq) / FIXED_SCALE / min(k, n)),
                float(ofi) / FIXED_SCALE,
                float(buy_k - sell_k) / flow if flow > 0.0 else 0.0,
            )
        return np.array(obs, dtype=np.float64)


def offline_features(tape: Tape, start_ns: int | None = None, end_ns: int | None = None) -> pd.DataFrame:
    """One row per block of the tape window with a usable book: ts, mid, then FEATURE_NAMES.

    A window starting inside the tape opens with the book snapshot the tape seeds it with (a row
    stamped `start_ns - 1`), and its windows warm up afresh from there.
    """
    return stream_features(tape.instrument.id, tape.chunks(start_ns, end_ns))


def stream_features(
    instrument_id: InstrumentId, chunks: Iterable[list[OrderBookDeltas | TradeTick]]
) -> pd.DataFrame:
    """`offline_features` over any replay stream (chunks as `Tape.chunks` yields them).

    The stream is replayed through a NautilusTrader book exactly as an actor sees it; only the
    window features differ in method, computed here over whole columns at once.
    """
    book = OrderBook(instrument_id, BookType.L2_MBP)
    observer = _Observer()
    ts: list[int] = []
    rows: list[tuple[float, float, float, float, list[float]]] = []
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
    mid = np.array([r[0] for r in rows], dtype=np.float64)
    log_mid = np.array([r[1] for r in rows], dtype=np.float64)
    buy = _fixed(np.array([r[2] for r in rows], dtype=np.float64))
    sell = _fixed(np.array([r[3] for r in rows], dtype=np.float64))
    obs = np.array([r[4] for r in rows], dtype=np.float64).reshape(n, _N_OBS)
    ret_sq = _fixed(obs[:, _RET] * obs[:, _RET])
    ofi = _fixed(obs[:, _OFI])
    seen = np.arange(1, n + 1)
    columns = {name: obs[:, j] for j, name in enumerate(OBSERVATION_NAMES)}
    for k in WINDOWS:
        columns[f"ret_{k}"] = (log_mid - log_mid[np.maximum(seen - 1 - k, 0)]) * 1e4
        columns[f"rv_{k}"] = np.sqrt(_window_sum(ret_sq, k).astype(np.float64) / FIXED_SCALE / np.minimum(k, seen))
        columns[f"ofi_{k}"] = _window_sum(ofi, k).astype(np.float64) / FIXED_SCALE
        buy_k, sell_k = _window_sum(buy, k), _window_sum(sell, k)
        flow = (buy_k + sell_k).astype(np.float64)
        net = (buy_k - sell_k).astype(np.float64)
        columns[f"tfi_{k}"] = np.divide(net, flow, out=np.zeros(n), where=flow > 0.0)
    frame = pd.DataFrame({"ts": np.array(ts, dtype=np.int64), "mid": mid})
    return pd.concat([frame, pd.DataFrame({name: columns[name] for name in FEATURE_NAMES})], axis=1)


def _fixed(x: np.ndarray) -> np.ndarray:
    """The values on the fixed-point grid, rounded half to even as Python's `round` does online."""
    return np.rint(x * FIXED_SCALE).astype(np.int64)


def _window_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sum of each value and the k - 1 before it, the missing past counting as zero."""
    if len(x) == 0:
        return x
    padded = np.concatenate([np.zeros(k - 1, dtype=x.dtype), x])
    return sliding_window_view(padded, k).sum(axis=1)
