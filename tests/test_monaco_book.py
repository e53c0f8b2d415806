"""Monaco's book stream into NautilusTrader data: sequences checked, our own orders left out, and the
published deltas always rebuilding exactly the venue's book less our resting size."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.enums import BookAction, OrderSide, RecordFlag

from adapters.monaco.book import BookOutOfSync, BookTracker, StaleUpdate
from adapters.monaco.wire import Book
from data.instrument import currency_pair

INSTRUMENT = currency_pair("SEI/USDC.MONACO", 4, 1)


def tracker(own: dict | None = None) -> BookTracker:
    return BookTracker(INSTRUMENT.id, 4, 1, (lambda: dict(own)) if own is not None else None)


def book(kind, seq, bids=(), asks=()) -> Book:
    return Book(kind, "p", tuple((D(p), D(q)) for p, q in bids), tuple((D(p), D(q)) for p, q in asks), seq, 1)


def rebuild(levels: dict, deltas) -> dict:
    for d in deltas.deltas:
        if d.action == BookAction.CLEAR:
            levels.clear()
            continue
        key = ("buy" if d.order.side == OrderSide.BUY else "sell", d.order.price.as_decimal())
        if d.action == BookAction.DELETE:
            levels.pop(key)
        else:
            levels[key] = d.order.size.as_decimal()
    return levels


def test_snapshot_then_updates_in_sequence_and_our_orders_left_out():
    own = {("buy", D("0.4")): D("50")}
    t = tracker(own)
    snap = t.load(book("snapshot", 7, [("0.4", "150"), ("0.3999", "20")], [("0.4001", "30")]), 11, 22)
    assert snap.deltas[0].action == BookAction.CLEAR
    assert snap.deltas[-1].flags == int(RecordFlag.F_SNAPSHOT) | int(RecordFlag.F_LAST)
    assert (snap.deltas[-1].ts_event, snap.deltas[-1].ts_init) == (11, 22)  # the venue's time; ours
    published = rebuild({}, snap)
    assert published == {("buy", D("0.4")): D("100"), ("buy", D("0.3999")): D("20"), ("sell", D("0.4001")): D("30")}
    assert (t.best("buy"), t.best("sell")) == (D("0.4"), D("0.4001"))  # the venue's own, ours included
    # Our order filled away: published with the next update, which also carries the venue's change.
    own.clear()
    deltas = t.apply(book("update", 8, asks=[("0.4001", "0")]), 12, 23)
    assert deltas.deltas[-1].flags == int(RecordFlag.F_LAST)
    assert rebuild(published, deltas) == {("buy", D("0.4")): D("150"), ("buy", D("0.3999")): D("20")}
    with pytest.raises(StaleUpdate):
        t.apply(book("update", 8, asks=[("0.4002", "5")]), 13, 24)
    assert t.venue_levels["sell"] == {}  # the stale update was not applied
    with pytest.raises(BookOutOfSync, match="sequence 10 after 8"):
        t.apply(book("update", 10, asks=[("0.4002", "5")]), 13, 24)
    assert not t.synced
    with pytest.raises(BookOutOfSync, match="no snapshot"):
        t.apply(book("update", 11), 1, 1)


def test_a_venue_without_sequences_is_applied_as_it_comes():
    t = tracker()
    t.load(book("snapshot", None, [("0.4", "1")]), 1, 1)
    assert t.apply(book("update", None, [("0.4", "2")]), 2, 2) is not None
    assert t.apply(book("update", None, [("0.4", "2")]), 3, 3) is None  # nothing changed: nothing published


LEVELS = st.sampled_from([D("0.3998"), D("0.3999"), D("0.4"), D("0.4001"), D("0.4002")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), LEVELS,
                                             st.integers(0, 30).map(D)), max_size=4),
                          st.dictionaries(st.tuples(st.sampled_from(["buy", "sell"]), LEVELS),
                                          st.integers(1, 40).map(D), max_size=2)),
                min_size=1, max_size=25))
def test_published_book_is_always_the_venues_less_our_resting_size(steps):
    own: dict = {}
    t = tracker(own)
    published = rebuild({}, t.load(book("snapshot", 0), 0, 0))
    venue: dict = {}
    for seq, (changes, ours) in enumerate(steps, start=1):
        own.clear()
        own.update(ours)
        for side, price, qty in changes:
            venue.pop((side, price), None) if qty == 0 else venue.__setitem__((side, price), qty)
        deltas = t.apply(Book("update", "p", tuple((p, q) for s, p, q in changes if s == "buy"),
                              tuple((p, q) for s, p, q in changes if s == "sell"), seq, seq), seq, seq)
        if deltas is not None:
            rebuild(published, deltas)
        expected = {k: q - own.get(k, D(0)) for k, q in venue.items() if q - own.get(k, D(0)) > 0}
        assert published == expected
