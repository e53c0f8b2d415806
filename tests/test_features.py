"""The model's features must be the same numbers in training and in trading, use no future data, and
mean the same on any tape cadence.

Parity replays a tape as an actor would (trades, then each batch's deltas applied to a
NautilusTrader L2 book, then `on_book`) and compares with the vectorised offline path. On the
bundled sample (400 ms blocks) and the real ETHUSDT tape (~50 ms batches) the two agree bit for bit
(max |diff| 0.0); the tests allow 1e-9. Windows and label horizons are seconds on the receive-time
clock: a market published every 100 ms gives, at the times both publish, exactly the features of
the same market published every 400 ms. On the sample, imb_1 correlated +0.14 with the mid's move
over the next second and +0.28 over the next 5 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType
from nautilus_trader.model.objects import Quantity

from data.catalog import F_LAST, Tape, batch_deltas, open_tape
from models.features import (
    DIRECTIONAL,
    FEATURE_NAMES,
    WINDOW_KINDS,
    WINDOWS_S,
    OnlineFeatures,
    offline_features,
    stream_features,
    window_name,
)
from models.labels import CLASSES, make_labels, past_moves

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
REAL = Path(__file__).resolve().parent.parent / "data" / "real" / "ethusdt-perp-20240808"
S = 1_000_000_000
MIN = 60 * 1_000_000_000
Stream = list[list[OrderBookDeltas | TradeTick]]


@pytest.fixture(scope="module")
def tape() -> Tape:
    return open_tape(SAMPLE)


@pytest.fixture(scope="module")
def full(tape: Tape) -> pd.DataFrame:
    return offline_features(tape)


def replay_online(tape: Tape, stream: Stream) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(ts, features, mid after each row) as an actor computes them block by block."""
    book = OrderBook(tape.instrument.id, BookType.L2_MBP)
    feats = OnlineFeatures()
    ts, rows, mids = [], [], []
    for chunk in stream:
        for item in chunk:
            if isinstance(item, TradeTick):
                feats.on_trade(item)
                continue
            book.apply_deltas(item)
            row = feats.on_book(item.ts_init, book)
            if row is not None:
                assert row.dtype == np.float64 and row.shape == (len(FEATURE_NAMES),)
                ts.append(item.ts_init)
                rows.append(row)
                mids.append(feats.mid)
    return np.array(ts, dtype=np.int64), np.array(rows), mids


def perturb_after(stream: Stream, cut_ns: int) -> Stream:
    """The stream with every record after `cut_ns` changed: book sizes tripled, trades reversed and
    five times larger."""
    out: Stream = []
    for chunk in stream:
        new: list[OrderBookDeltas | TradeTick] = []
        for item in chunk:
            if item.ts_init <= cut_ns:
                new.append(item)
            elif isinstance(item, TradeTick):
                side = AggressorSide.SELLER if item.aggressor_side == AggressorSide.BUYER else AggressorSide.BUYER
                size = Quantity(item.size.as_double() * 5, item.size.precision)
                new.append(TradeTick(item.instrument_id, item.price, size, side, item.trade_id, item.ts_event,
                                     item.ts_init))
            else:
                new.append(OrderBookDeltas(item.instrument_id, [_tripled(d) for d in item.deltas]))
        out.append(new)
    return out


def _tripled(d: OrderBookDelta) -> OrderBookDelta:
    if d.action not in (BookAction.ADD, BookAction.UPDATE):
        return d
    size = Quantity(d.order.size.as_double() * 3, d.order.size.precision)
    order = BookOrder(d.order.side, d.order.price, size, d.order.order_id)
    return OrderBookDelta(d.instrument_id, d.action, order, d.flags, d.sequence, d.ts_event, d.ts_init)


def test_feature_names_are_unique_and_cover_every_window():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert WINDOWS_S == (1.0, 5.0, 30.0)
    for k in WINDOWS_S:
        assert {window_name(kind, k) for kind in WINDOW_KINDS} <= set(FEATURE_NAMES)
    assert {"ret_1s", "rv_5s", "trades_30s"} <= set(FEATURE_NAMES)
    # nothing counts updates: every window is named by its seconds
    assert not any(name.endswith(("_1", "_5", "_25", "_150")) for name in FEATURE_NAMES if "imb" not in name)
    assert set(DIRECTIONAL) == {n for n in FEATURE_NAMES if n.split("_")[0] in ("micro", "imb", "ret", "ofi", "tfi")}


@pytest.mark.parametrize("start_min, end_min", [(0, 45), (90, 120)], ids=["tape-start", "mid-tape-seeded"])
def test_online_matches_offline(tape: Tape, start_min: int, end_min: int):
    start, end = tape.start_ns + start_min * MIN, tape.start_ns + end_min * MIN - 1
    off = offline_features(tape, start, end)
    ts, online, mids = replay_online(tape, list(tape.chunks(start, end)))

    assert list(off.columns) == ["ts", "mid", *FEATURE_NAMES]
    assert off["ts"].dtype == np.int64 and all(off[name].dtype == np.float64 for name in FEATURE_NAMES)
    assert len(off) == len(ts) > (end_min - start_min) * 140  # ~150 blocks a minute
    np.testing.assert_array_equal(off["ts"].to_numpy(), ts)
    np.testing.assert_array_equal(off["mid"].to_numpy(), mids)
    diff = np.abs(off[FEATURE_NAMES].to_numpy() - online).max(axis=0)
    worst = {name: d for name, d in zip(FEATURE_NAMES, diff, strict=True) if not d <= 1e-9}
    assert worst == {}


def test_offline_rows_do_not_change_when_the_window_ends_earlier(tape: Tape):
    start, end = tape.start_ns, tape.start_ns + 15 * MIN
    whole = offline_features(tape, start, end)
    cut = int(whole["ts"].iloc[1000])
    early = offline_features(tape, start, cut)
    assert early["ts"].iloc[-1] == cut
    pd.testing.assert_frame_equal(early, whole.iloc[: len(early)], check_exact=True)


def test_changing_later_data_leaves_earlier_features_alone(tape: Tape):
    stream = list(tape.chunks(tape.start_ns, tape.start_ns + 15 * MIN))
    base = stream_features(tape.instrument.id, stream)
    cut = int(base["ts"].iloc[1000])
    changed = perturb_after(stream, cut)

    off = stream_features(tape.instrument.id, changed)
    np.testing.assert_array_equal(off["ts"].to_numpy(), base["ts"].to_numpy())
    upto = base["ts"].to_numpy() <= cut
    pd.testing.assert_frame_equal(off[upto], base[upto], check_exact=True)
    assert not np.allclose(off.loc[~upto, FEATURE_NAMES], base.loc[~upto, FEATURE_NAMES])  # the change mattered

    ts, online, _ = replay_online(tape, stream)
    ts_changed, online_changed = replay_online(tape, changed)[:2]
    np.testing.assert_array_equal(ts, ts_changed)
    np.testing.assert_array_equal(online_changed[ts <= cut], online[ts <= cut])
    assert not np.allclose(online_changed[ts > cut], online[ts > cut])


def test_no_features_until_the_book_has_both_sides(tape: Tape):
    feats = OnlineFeatures()
    assert feats.on_book(0, OrderBook(tape.instrument.id, BookType.L2_MBP)) is None
    assert np.isnan(feats.mid)


def test_features_are_finite_and_book_imbalance_predicts_the_next_move(full: pd.DataFrame):
    assert len(full) > 26_000
    values = full[FEATURE_NAMES].to_numpy()
    assert np.isfinite(values).all()
    warm = full["ts"].to_numpy() > full["ts"].iloc[0] + WINDOWS_S[-1] * S
    assert (values[warm].std(axis=0) > 0).all()  # no feature is constant after warm-up
    for horizon, floor in ((1.0, 0.1), (5.0, 0.2)):
        move, cls = make_labels(full["ts"].to_numpy(), full["mid"].to_numpy(), horizon)
        known = cls >= 0
        assert np.corrcoef(full["imb_1"].to_numpy()[known], move[known])[0, 1] > floor


def test_labels_on_a_hand_built_mid_series():
    """Horizons are seconds on the receive-time clock: the label at t compares the mid then with
    the mid as of t + h (the last row at or before it), whatever the spacing of the rows."""
    ts = np.array([0, 300, 900, 1000, 1050, 2500], dtype=np.int64) * 1_000_000
    mid = np.array([1.0, 1.0002, 1.0002, 0.9999, 1.00015, 1.00015])
    move, cls = make_labels(ts, mid, horizon_s=1.0)
    # t=0 -> as of 1.0 s: row 3 (0.9999); t=0.3 -> as of 1.3 s: row 4; t=0.9 -> as of 1.9 s: row 4;
    # t=1.0 -> as of 2.0 s: row 4; t=1.05 -> as of 2.05 s: row 4; t=2.5 -> 3.5 s is past the data.
    expected = [(0.9999 / 1.0 - 1) * 1e4, (1.00015 / 1.0002 - 1) * 1e4, (1.00015 / 1.0002 - 1) * 1e4,
                (1.00015 / 0.9999 - 1) * 1e4, 0.0]
    np.testing.assert_allclose(move[:5], expected, rtol=0, atol=1e-9)
    assert cls.tolist() == [0, 0, 0, 2, 1, -1]  # the last row's horizon runs past the data
    assert np.isnan(move[5])
    assert [CLASSES[c] for c in cls[[0, 3, 4]]] == ["down", "up", "flat"]

    move, cls = make_labels(ts, mid, horizon_s=1.0, threshold_bps=0.75)
    assert cls.tolist() == [0, 1, 1, 2, 1, -1]  # the -0.5 bps moves are inside the band now

    # A horizon of exactly the gap to the next row reaches that row; a hair less does not.
    move, _ = make_labels(ts, mid, horizon_s=0.3)
    assert move[0] == pytest.approx((1.0002 - 1) * 1e4)
    move, _ = make_labels(ts, mid, horizon_s=0.2999)
    assert move[0] == 0.0

    move, cls = make_labels(ts[:2], mid[:2], horizon_s=3.0)
    assert np.isnan(move).all() and cls.tolist() == [-1, -1]
    for bad in ({"horizon_s": 0.0}, {"horizon_s": 1.0, "threshold_bps": -1.0}):
        with pytest.raises(ValueError):
            make_labels(ts, mid, **bad)
    with pytest.raises(ValueError, match="time order"):
        make_labels(ts[::-1], mid, horizon_s=1.0)


def test_a_label_uses_the_mid_at_its_horizon_and_nothing_after():
    rng = np.random.default_rng(4)
    ts = np.cumsum(rng.integers(50, 500, size=400)) * 1_000_000
    mid = 100 + np.cumsum(rng.normal(0, 0.01, size=400))
    move, _ = make_labels(ts, mid, horizon_s=2.0)
    i = 100
    j = np.searchsorted(ts, ts[i] + 2 * S, side="right") - 1  # the row as of t + 2 s
    later = mid.copy()
    later[j + 1:] += 5.0  # everything after the horizon changes
    assert make_labels(ts, later, horizon_s=2.0)[0][i] == move[i]
    at = mid.copy()
    at[j] += 5.0  # the mid at the horizon changes
    assert make_labels(ts, at, horizon_s=2.0)[0][i] != move[i]
    earlier = mid.copy()
    earlier[i + 1: j] += 5.0  # what happens in between does not matter to a point-to-point move
    assert make_labels(ts, earlier, horizon_s=2.0)[0][i] == move[i]
    # the persistence baseline's past move uses only rows at or before t
    past = past_moves(ts, mid, 2.0)
    np.testing.assert_array_equal(past_moves(ts, later, 2.0)[: j + 1], past[: j + 1])
    k = np.searchsorted(ts, ts[i] - 2 * S, side="right") - 1
    assert past[i] == pytest.approx((mid[i] / mid[k] - 1) * 1e4)
    assert np.isnan(past[0])


def _book_batch(iid, ts: int, bid: float, ask: float, sizes: list[float]) -> OrderBookDeltas:
    """A full snapshot: CLEAR, then five bid and five ask levels a cent apart."""
    from nautilus_trader.model.enums import OrderSide, RecordFlag
    from nautilus_trader.model.objects import Price

    deltas = [OrderBookDelta.clear(iid, 0, ts, ts)]
    levels = [(OrderSide.BUY, bid - 0.01 * i, sizes[i]) for i in range(5)]
    levels += [(OrderSide.SELL, ask + 0.01 * i, sizes[5 + i]) for i in range(5)]
    for n, (side, px, size) in enumerate(levels):
        flags = int(RecordFlag.F_LAST) if n == len(levels) - 1 else 0
        order = BookOrder(side, Price(round(px, 2), 2), Quantity(size, 1), 0)
        deltas.append(OrderBookDelta(iid, BookAction.ADD, order, flags, 0, ts, ts))
    return OrderBookDeltas(iid, deltas)


def _market(every_ms: int, seconds: float = 90.0) -> Stream:
    """One market: its book changes every 400 ms and trades print at those times; published every
    `every_ms` (a divisor of 400), repeating the book between changes, as a faster feed would."""
    from nautilus_trader.model.identifiers import InstrumentId, TradeId
    from nautilus_trader.model.objects import Price

    iid = InstrumentId.from_str("ETH/USDT.BINANCE")
    rng = np.random.default_rng(7)
    t0 = 1_767_571_200 * S
    bid_cents = 200_000
    chunk: list = []
    state = None
    for step in range(int(seconds * 1000 / every_ms)):
        t_ms = step * every_ms
        ts = t0 + t_ms * 1_000_000
        if t_ms % 400 == 0:  # the market moves
            bid_cents += int(rng.integers(-2, 3))
            ask_cents = bid_cents + int(rng.integers(1, 3))
            state = (bid_cents / 100, ask_cents / 100, list(rng.uniform(1, 50, size=10)))
            for k in range(rng.poisson(1.5)):
                side = AggressorSide.BUYER if rng.random() < 0.5 else AggressorSide.SELLER
                px = state[1] if side == AggressorSide.BUYER else state[0]
                chunk.append(TradeTick(iid, Price(px, 2), Quantity(round(rng.uniform(0.1, 5), 1), 1), side,
                                       TradeId(f"{step}-{k}"), ts, ts))
        chunk.append(_book_batch(iid, ts, *state))
    return [chunk]


def test_a_faster_feed_of_the_same_market_gives_the_same_features():
    """Seconds, not updates: the market above published every 100 ms has, at each 400 ms instant,
    exactly the features of the same market published every 400 ms (repeated books add nothing to
    any window), so a model means the same on a block tape and a 100 ms exchange stream."""
    from nautilus_trader.model.identifiers import InstrumentId

    iid = InstrumentId.from_str("ETH/USDT.BINANCE")
    slow = stream_features(iid, _market(400))
    fast = stream_features(iid, _market(100))
    assert len(fast) == 4 * len(slow) == 900
    common = fast[fast["ts"].isin(slow["ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(common, slow, check_exact=True)
    assert slow[FEATURE_NAMES].std().min() > 0  # every feature moved: the comparison means something
    # the actor's evaluator agrees on the fast feed too
    online = OnlineFeatures()
    book = OrderBook(iid, BookType.L2_MBP)
    rows = []
    for item in _market(100)[0]:
        if isinstance(item, TradeTick):
            online.on_trade(item)
        else:
            book.apply_deltas(item)
            rows.append(online.on_book(item.ts_init, book))
    np.testing.assert_array_equal(np.array(rows), fast[FEATURE_NAMES].to_numpy())


def test_windows_are_seconds_on_the_receive_clock():
    """Rows at irregular times: a window of k seconds at t holds the rows in (t - k, t]; its return
    is measured from the last row at or before t - k; trades count per second of window."""
    from nautilus_trader.model.identifiers import InstrumentId, TradeId
    from nautilus_trader.model.objects import Price

    iid = InstrumentId.from_str("ETH/USDT.BINANCE")
    t0 = 1_767_571_200 * S
    times_ms = [0, 300, 1000, 1700, 2000, 6000, 6500]
    bids = [100.0, 100.02, 100.01, 100.05, 100.03, 100.1, 99.9]
    stream: list = []
    for n, (t, bid) in enumerate(zip(times_ms, bids, strict=True)):
        ts = t0 + t * 1_000_000
        if t in (1000, 1700, 2000):  # one buy print just before each of these batches
            stream.append(TradeTick(iid, Price(round(bid + 0.01, 2), 2), Quantity(2.0, 1), AggressorSide.BUYER,
                                    TradeId(f"t{n}"), ts, ts))
        stream.append(_book_batch(iid, ts, bid, round(bid + 0.02, 2), [10.0] * 10))
    f = stream_features(iid, [stream]).set_index("ts")
    log_mid = np.log(np.array(bids) + 0.01)
    at = {t: t0 + t * 1_000_000 for t in times_ms}
    # t = 2.0 s: the 1 s window is (1.0, 2.0]: rows at 1.7 and 2.0; its anchor is the row at 1.0
    assert f.loc[at[2000], "ret_1s"] == pytest.approx((log_mid[4] - log_mid[2]) * 1e4, abs=1e-9)
    assert f.loc[at[2000], "trades_1s"] == 2.0  # prints at 1.7 and 2.0; the one at 1.0 is on the boundary
    assert f.loc[at[1000], "trades_1s"] == 1.0
    # t = 6.0 s: nothing in (5.0, 6.0] but itself; the anchor is the row at 2.0 s
    assert f.loc[at[6000], "ret_1s"] == pytest.approx((log_mid[5] - log_mid[4]) * 1e4, abs=1e-9)
    assert f.loc[at[6000], "trades_1s"] == 0.0 and f.loc[at[6000], "tfi_1s"] == 0.0
    # 5 s at 6.5 s: (1.5, 6.5] holds prints at 1.7 and 2.0, all buys; the anchor is the row at 1.0
    assert f.loc[at[6500], "trades_5s"] == pytest.approx(2 / 5)
    assert f.loc[at[6500], "tfi_5s"] == 1.0
    assert f.loc[at[6500], "ret_5s"] == pytest.approx((log_mid[6] - log_mid[2]) * 1e4, abs=1e-9)
    # before a window is full, returns reach back to the first row
    assert f.loc[at[2000], "ret_5s"] == pytest.approx((log_mid[4] - log_mid[0]) * 1e4, abs=1e-9)
    # realised volatility: squared row-to-row returns in the window, per second
    r = np.diff(log_mid) * 1e4
    assert f.loc[at[2000], "rv_1s"] == pytest.approx(np.sqrt((r[2] ** 2 + r[3] ** 2) / 1.0), abs=1e-5)


def test_online_matches_offline_on_the_real_tape():
    """The 100 ms exchange tape: deep books, two clocks, ~50 ms between batches."""
    tape = open_tape(REAL)
    end = tape.start_ns + 40 * S
    off = offline_features(tape, None, end)
    ts, online, mids = replay_online(tape, list(tape.chunks(None, end)))
    assert len(off) == len(ts) > 40 * 15
    np.testing.assert_array_equal(off["ts"].to_numpy(), ts)
    np.testing.assert_array_equal(off["mid"].to_numpy(), mids)
    assert np.abs(off[FEATURE_NAMES].to_numpy() - online).max() <= 1e-9


def nt_top(book: OrderBook, n: int) -> tuple[list, list]:
    """(price, size, raw size) of NautilusTrader's top levels (one order a level in an L2 book)."""
    def side(levels):
        return [(level.price.as_double(), level.size(), sum(o.size.raw for o in level.orders())) for level in levels]
    return side(book.bids()[:n]), side(book.asks()[:n])


@pytest.mark.parametrize("catalog, seconds", [(SAMPLE, 20 * 60), (REAL, 60)])
def test_book_levels_hold_nautilus_traders_top_levels_on_every_batch_of_a_real_book(catalog, seconds):
    """The features' own level book (so a deep book is not copied per batch) against
    NautilusTrader's L2 book, batch by batch, on the sample and on the deep real ETHUSDT book."""
    from data.levels import BookLevels

    tape = open_tape(catalog)
    book, levels = OrderBook(tape.instrument.id, BookType.L2_MBP), BookLevels()
    batches = 0
    for chunk in tape.chunks(None, tape.start_ns + seconds * S):
        for item in chunk:
            if isinstance(item, OrderBookDeltas):
                book.apply_deltas(item)
                levels.apply_deltas(item)
                assert (levels.top(10)) == nt_top(book, 10), item.ts_init
                batches += 1
    assert batches > 1000
    assert (levels.top(100_000)) == nt_top(book, 100_000)  # the whole book, to its last level
    assert len(levels.top(100_000)[0]) > (1000 if catalog == REAL else 10)


_PRICES = [f"{p / 100:.2f}" for p in range(100, 116)]


@st.composite
def delta_streams(draw):
    """Batches of random deltas over a few prices: adds and updates at new and existing levels,
    deletes of present and absent ones (with or without a size), clears, a side left empty or
    crossing the other."""
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price

    iid = InstrumentId.from_str("ETH/USDT.BINANCE")
    actions = [BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.CLEAR]
    batches = []
    for _ in range(draw(st.integers(1, 12))):
        deltas = []
        for _ in range(draw(st.integers(1, 8))):
            action = draw(st.sampled_from(actions))
            side = draw(st.sampled_from([OrderSide.BUY, OrderSide.SELL]))
            # A delete may carry the size the level had (some feeds send it): it deletes the level all the same.
            lowest = 0 if action == BookAction.DELETE else 1
            size = "0" if action == BookAction.CLEAR else str(draw(st.integers(lowest, 50)))
            order = BookOrder(side, Price.from_str(draw(st.sampled_from(_PRICES))), Quantity.from_str(size), 0)
            deltas.append(OrderBookDelta(iid, action, order, 0, 0, 0, 0))
        batches.append(OrderBookDeltas(iid, deltas))
    return iid, batches


@settings(max_examples=300, deadline=None)
@given(delta_streams(), st.sets(st.tuples(st.sampled_from([1, 2]), st.sampled_from(_PRICES)), max_size=6))
def test_a_watched_level_reports_its_size_once_the_whole_batch_is_applied(stream, watched):
    """What the queue module reads of a batch: each watched level the batch touched (a CLEAR
    touches them all), with its raw size after the whole batch (0 where it has no level), in the
    order first touched (from the last CLEAR on); levels it did not touch, not at all."""
    from nautilus_trader.model.objects import Price

    from data.levels import BookLevels, LevelWatch

    raws = {(side, Price.from_str(price).raw): (side, price) for side, price in sorted(watched)}
    watch = LevelWatch(raws)
    iid, batches = stream
    levels = BookLevels()
    for batch in batches:
        got = levels.apply_deltas(batch, watch)
        order: dict = {}
        for delta in batch.deltas:
            if delta.action == BookAction.CLEAR:
                order = dict.fromkeys(raws.values())
            elif (key := raws.get((int(delta.order.side), delta.order.price.raw))) is not None:
                order[key] = None
        after = {}
        for (side, raw), key in raws.items():
            level = levels.level(side, raw)
            after[key] = 0 if level is None else level[2]
        assert list(got) == list(order)
        assert got == {key: after[key] for key in order}


@settings(max_examples=300, deadline=None)
@given(delta_streams())
def test_book_levels_apply_deltas_as_nautilus_traders_l2_book_does(stream):
    from data.levels import BookLevels

    iid, batches = stream
    book, levels = OrderBook(iid, BookType.L2_MBP), BookLevels()
    for batch in batches:
        book.apply_deltas(batch)
        levels.apply_deltas(batch)
        assert (levels.top(3)) == nt_top(book, 3)
        assert (levels.top(100)) == nt_top(book, 100)


@pytest.mark.parametrize("catalog, start_s, seconds", [
    (SAMPLE, 0, 20 * 60),
    (SAMPLE, 30 * 60, 10 * 60),  # a window inside the tape: its seed snapshot comes first
    (REAL, 0, 120),
])
def test_a_chunks_delta_columns_read_from_arrow_are_its_batches_deltas(catalog, start_s, seconds):
    """What the backtest's BookLevels read instead of NautilusTrader's objects: every batch's rows,
    price and size values (raw / FIXED_SCALAR equals as_double()) included."""
    from data.levels import DeltaColumns

    tape = open_tape(catalog)
    lo = tape.start_ns + start_s * S
    chunks = batches_seen = 0
    for batches, _, cols in tape.parts(lo, lo + seconds * S, chunk_ns=5 * 60 * S if catalog == SAMPLE else 60 * S,
                                       columns=True):
        assert cols is not None
        for batch in batches:
            a, b = cols.span(batch)
            ref = DeltaColumns.of_batches([batch])
            for name in ("actions", "sides", "raws", "prices", "sizes", "size_raws"):
                assert getattr(cols, name)[a:b] == getattr(ref, name), (name, batch.ts_init)
            batches_seen += 1
        # The arrays a worker gets instead (`packed`) are these rows, unless a seed snapshot was
        # appended to the lists (a window's first chunk): then there are none to send.
        seeded = chunks == 0 and start_s > 0
        assert (cols.packed is None) == seeded
        if not seeded:
            assert cols.packed.unpack() == (cols.actions, cols.sides, cols.raws, cols.prices, cols.sizes,
                                            cols.size_raws)
        chunks += 1
    assert chunks >= 2 and batches_seen > 1000


_RAW = st.one_of(
    st.integers(0, 2**64 - 1),  # within the low word: the vectorised conversion
    st.integers(2**53 - 2**12, 2**53 + 2**12),  # where a double stops holding every integer
    st.integers(-(2**127), 2**127 - 1),  # any 16-byte value: the per-value fallback
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RAW, min_size=1, max_size=40), st.booleans())
def test_packed_raw_values_unpack_to_pythons_ints_and_their_as_double(raws, low_only):
    """`PackedColumns` turns each 16-byte raw value into its Python int and the float
    NautilusTrader's `as_double()` gives (`raw / FIXED_SCALAR`, as the objects decode it), the
    vectorised way where a column fits in 64 bits: the same ints and the same float bits."""
    from nautilus_trader.model.objects import FIXED_SCALAR

    from data.levels import PackedColumns

    if low_only:
        raws = [r % 2**64 for r in raws]
    buf = b"".join(r.to_bytes(16, "little", signed=True) for r in raws)
    words = np.frombuffer(buf, dtype="<u8").reshape(-1, 2)
    n = len(raws)
    packed = PackedColumns(np.zeros(n, np.uint8), np.ones(n, np.uint8), words, words[::-1].copy())
    actions, sides, got_raws, prices, sizes, size_raws = packed.unpack()
    assert got_raws == raws and size_raws == raws[::-1]
    assert [np.float64(p).tobytes() for p in prices] == [np.float64(r / FIXED_SCALAR).tobytes() for r in raws]
    assert sizes == [r / FIXED_SCALAR for r in raws[::-1]]
    if low_only:  # values a Quantity can hold: NautilusTrader's own decoding, the same bits
        assert [np.float64(p).tobytes() for p in prices] == [
            np.float64(Quantity.from_raw(r, 16).as_double()).tobytes() for r in raws]
    assert actions == [0] * n and sides == [1] * n and all(type(v) is int for v in got_raws + actions)


def test_a_chunk_whose_rows_do_not_match_its_batches_gets_no_columns():
    """The guard behind the columns: deltas that differ from the rows (one more, a batch fewer, or
    one batch's last delta replaced) mean no columns (the book then decodes the objects) and batches
    grouped from the objects themselves, never misaligned rows."""
    tape = open_tape(SAMPLE)
    lo, hi = tape.start_ns, tape.start_ns + 60 * S
    deltas = tape.catalog.query(OrderBookDelta, identifiers=[str(tape.instrument.id)], start=lo, end=hi)
    deltas.sort(key=lambda d: (d.ts_init, d.sequence))
    batches, cols = tape._columns(lo, hi, deltas)
    assert cols is not None and _batch_keys(batches) == _batch_keys(batch_deltas(deltas))
    extra = OrderBookDelta(deltas[-1].instrument_id, deltas[-1].action, deltas[-1].order, F_LAST,
                           deltas[-1].sequence + 1, deltas[-1].ts_event, deltas[-1].ts_init)
    assert tape._columns(lo, hi, [*deltas, extra])[1] is None
    assert tape._columns(lo, hi, deltas[:-len(batches[-1].deltas)])[1] is None  # a batch fewer
    # The first batch's last delta, stamped with a later sequence: every count still matches.
    end = len(batches[0].deltas) - 1
    moved = OrderBookDelta(deltas[end].instrument_id, deltas[end].action, deltas[end].order, deltas[end].flags,
                           deltas[end].sequence + 10**6, deltas[end].ts_event, deltas[end].ts_init)
    shifted, shifted_cols = tape._columns(lo, hi, [*deltas[:end], moved, *deltas[end + 1:]])
    assert shifted_cols is None and len(shifted) == len(batches)


def _batch_keys(batches) -> list[list[tuple]]:
    return [[(d.ts_init, d.sequence, d.flags, int(d.action)) for d in b.deltas] for b in batches]


def test_the_chunks_batches_are_the_same_with_or_without_columns():
    """Columns or not, `Tape.parts` groups the same deltas into the same book batches (with
    columns they are cut where the rows' F_LAST flags are, without where the objects' are)."""
    tape = open_tape(SAMPLE)
    lo = tape.start_ns + 30 * 60 * S  # a seed snapshot first, then the window's batches
    plain = list(tape.parts(lo, lo + 20 * 60 * S, chunk_ns=5 * 60 * S))
    with_cols = list(tape.parts(lo, lo + 20 * 60 * S, chunk_ns=5 * 60 * S, columns=True))
    assert len(plain) == len(with_cols) >= 4
    for (batches, trades), (col_batches, col_trades, cols) in zip(plain, with_cols, strict=True):
        assert cols is not None
        assert _batch_keys(batches) == _batch_keys(col_batches) and len(batches) > 100
        assert trades == col_trades


def test_a_short_first_chunk_changes_where_chunks_end_not_what_they_hold():
    """`first_chunk_ns`: the first chunk that long, then `chunk_ns` chunks; the same batches and
    prints, in the same order, as uniform chunks."""
    tape = open_tape(SAMPLE)
    lo, hi = tape.start_ns, tape.start_ns + 20 * 60 * S
    uniform = list(tape.parts(lo, hi, chunk_ns=5 * 60 * S, columns=True))
    short = list(tape.parts(lo, hi, chunk_ns=5 * 60 * S, columns=True, first_chunk_ns=60 * S))
    assert len(short) == len(uniform) + 1
    assert short[0][0][-1].ts_init < lo + 60 * S <= short[1][0][0].ts_init
    assert short[2][0][0].ts_init >= lo + 6 * 60 * S > short[1][0][-1].ts_init
    assert all(cols is not None for _, _, cols in short)
    assert _batch_keys([b for bs, _, _ in short for b in bs]) == _batch_keys([b for bs, _, _ in uniform for b in bs])
    assert [t for _, ts, _ in short for t in ts] == [t for _, ts, _ in uniform for t in ts]
