"""The model's features must be the same numbers in training and in trading, and use no future data.

Parity replays the bundled sample as an actor would (trades, then each block's deltas applied to a
NautilusTrader L2 book, then `on_book`) and compares with the vectorised offline path. Over the
whole 3 h sample the two agreed bit for bit (max |diff| 0.0); the tests allow 1e-9. On the sample,
imb_1 correlated +0.097 with the next block's mid move and +0.198 with the 5-block move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType
from nautilus_trader.model.objects import Quantity

from data.catalog import Tape, open_tape
from models.features import FEATURE_NAMES, WINDOWS, OnlineFeatures, offline_features, stream_features
from models.labels import CLASSES, make_labels

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
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
    assert 20 <= len(FEATURE_NAMES) <= 30
    for k in WINDOWS:
        assert {f"ret_{k}", f"rv_{k}", f"ofi_{k}", f"tfi_{k}"} <= set(FEATURE_NAMES)


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
    assert (values[WINDOWS[-1]:].std(axis=0) > 0).all()  # no feature is constant after warm-up
    move, cls = make_labels(full["mid"].to_numpy(), horizon_blocks=1)
    known = cls >= 0
    assert np.corrcoef(full["imb_1"].to_numpy()[known], move[known])[0, 1] > 0.05


def test_labels_on_a_hand_built_mid_series():
    mid = np.array([1.0, 1.0002, 1.0002, 0.9999, 1.00015, 1.00015])
    move, cls = make_labels(mid, horizon_blocks=1, threshold_bps=1.0)
    np.testing.assert_allclose(move[:-1], [2.0, 0.0, -2.99940012, 2.50025003, 0.0], atol=1e-6)
    assert cls.tolist() == [2, 1, 0, 2, 1, -1]
    assert np.isnan(move[-1])
    assert [CLASSES[c] for c in cls[:3]] == ["up", "flat", "down"]

    move, cls = make_labels(mid, horizon_blocks=2, threshold_bps=2.5)
    np.testing.assert_allclose(move[:-2], [2.0, -2.99940012, -0.49990002, 2.50025003], atol=1e-6)
    assert cls.tolist() == [1, 0, 1, 2, -1, -1]
    assert np.isnan(move[-2:]).all()

    move, cls = make_labels(mid[:2], horizon_blocks=3)
    assert np.isnan(move).all() and cls.tolist() == [-1, -1]
    with pytest.raises(ValueError):
        make_labels(mid, horizon_blocks=0)
