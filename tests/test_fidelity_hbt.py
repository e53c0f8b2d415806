"""The hftbacktest side of the fidelity comparison: the tape it sees, and the quoting rule's fills."""

from __future__ import annotations

from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import BookType
from tapebuilder import Block, ladder, steady, write_tape

from backtests.fidelity_hbt import WAIT_FEED, WAIT_TIMEOUT_NS, build_backtest, run_hftbacktest, tape_to_hbt_events
from data.catalog import open_tape

SAMPLE = Path(__file__).resolve().parent.parent / "data/sample"
MIN = 60 * 1_000_000_000
LEVELS = 5  # compared on each side, from the best


@pytest.fixture(scope="module")
def sample():
    return open_tape(SAMPLE)


def _levels(book: OrderBook) -> tuple[list, list]:
    return ([(lv.price.as_double(), lv.size()) for lv in book.bids()[:LEVELS]],
            [(lv.price.as_double(), lv.size()) for lv in book.asks()[:LEVELS]])


@pytest.mark.parametrize("from_min, to_min", [(0, 10), (60, 65)], ids=["tape-start", "mid-tape"])
def test_replayed_depth_matches_nautilus_l2_book(sample, from_min, to_min):
    start, end = sample.start_ns + from_min * MIN, sample.start_ns + to_min * MIN
    book = OrderBook(sample.instrument.id, BookType.L2_MBP)
    for batches, _ in sample.parts(sample.start_ns, start - 1):  # a mid-tape window starts from the tape's book
        for batch in batches:
            book.apply_deltas(batch)
    expected = []  # (ts, levels) after each block of the window
    for batches, _ in sample.parts(start, end):
        for batch in batches:
            book.apply_deltas(batch)
            expected.append((batch.ts_init, _levels(book)))

    events = tape_to_hbt_events(sample, start, end)  # held: hftbacktest reads it in place
    hbt = build_backtest(sample, events, latency_ns=0)
    tick = float(sample.instrument.price_increment)
    i, steps = -1, 0
    while hbt.wait_next_feed(False, WAIT_TIMEOUT_NS) == WAIT_FEED:
        ts = hbt.current_timestamp
        while i + 1 < len(expected) and expected[i + 1][0] <= ts:
            i += 1
        bids, asks = expected[i][1]
        depth = hbt.depth(0)
        assert (depth.best_bid, depth.best_bid_qty) == pytest.approx(bids[0], abs=1e-9), ts
        assert (depth.best_ask, depth.best_ask_qty) == pytest.approx(asks[0], abs=1e-9), ts
        assert [depth.bid_qty_at_tick(round(px / tick)) for px, _ in bids] == pytest.approx([q for _, q in bids])
        assert [depth.ask_qty_at_tick(round(px / tick)) for px, _ in asks] == pytest.approx([q for _, q in asks])
        steps += 1
    hbt.close()
    # wait_next_feed reports the last timestamp as the end of data, not as a feed.
    assert steps == len({ts for ts, _ in expected}) - 1


def test_quoting_on_the_sample_fills_as_maker(sample):
    result = run_hftbacktest(sample, order_qty=100.0, latency_ns=400_000_000, end_ns=sample.start_ns + 20 * MIN)
    assert result["fills"] > 0
    assert result["maker_volume"] > 0
    assert result["maker_volume"] * 10 == pytest.approx(round(result["maker_volume"] * 10), abs=1e-6)
    assert result["orders"] >= result["fills"]
    assert result["maker_volume"] <= 100.0 * result["orders"]


@pytest.mark.parametrize("prints, left_at_4002, fills, merged, volume", [
    ([("buy", "0.4001", 1030.0)], 1000.0, 1, 0, 30.0),
    ([("buy", "0.4001", 1030.0), ("buy", "0.4002", 10.0)], 990.0, 1, 1, 100.0),
], ids=["partial", "partial-then-through"])
def test_fill_counting_on_a_hand_built_sweep(tmp_path, prints, left_at_4002, fills, merged, volume):
    """Our 100 sell joins behind the 1000 at 0.4001; a block prints 1030 there (30 of it ours) and
    maybe 10 at 0.4002 (through our price: the rest of ours). Fills of one order at one timestamp
    count once. Either way the order is gone or stale at 0.4001, so a third order goes to 0.4002."""
    bids, asks = ladder("0.3999", "0.4001")
    swept = {p: s for p, s in asks.items() if p != "0.4001"} | {"0.4002": left_at_4002}
    blocks = [
        *steady("0.3999", "0.4001", 0, 800),
        Block(800, bids, swept, trades=prints),
        *steady("0.3999", "0.4002", 1200, 2400),
    ]
    tape = open_tape(write_tape(tmp_path / "tape", blocks))
    for queue_model in ("prob_power", "risk_averse"):
        result = run_hftbacktest(tape, order_qty=100.0, latency_ns=400_000_000, queue_model=queue_model)
        assert (result["fills"], result["merged_fill_steps"], result["maker_volume"], result["orders"]) == (
            fills, merged, volume, 3), queue_model
