"""The data client's book, rebuilt from contract events, against the contract's own `book` query.

The localnet's Clob is the reference: random multi-owner traffic (resting, crossing, partially
filling, cancelling, expiring orders) runs block by block, and after every block the tracker's
levels must equal what the contract itself reports, and its delta batch must be a valid tape batch.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType

from adapters.sei.book import F_LAST, BookOutOfSync, BookTracker
from adapters.sei.events import Event
from adapters.sei.localnet.clob import Clob, ContractError, Market
from data.instrument import SEI_USDC_ID

MARKET = Market(
    base_denom="usei", quote_denom="uusdc", base_decimals=6, quote_decimals=6,
    tick_size=Decimal("0.0001"), lot_size=Decimal("0.1"), min_quantity=Decimal("0.1"),
    maker_fee_rate=Decimal("0"), taker_fee_rate=Decimal("0.0005"),
)
OWNERS = ("alice", "bob", "carol")
BIG = 10**15


def fresh_clob() -> Clob:
    clob = Clob(MARKET)
    for owner in OWNERS:
        clob.execute(owner, {"deposit": {}}, 1, funds=(("usei", BIG), ("uusdc", BIG)))
    return clob


def book_query(depth: int, exclude_owner: str | None = None) -> dict:
    return {"book": {"depth": depth, **({"exclude_owner": exclude_owner} if exclude_owner else {})}}


def query_levels(clob: Clob, height: int, depth: int = 100,
                 exclude_owner: str | None = None) -> dict[str, dict[Decimal, Decimal]]:
    book = clob.query(book_query(depth, exclude_owner), height)
    return {side: {Decimal(lv["price"]): Decimal(lv["quantity"]) for lv in book[key]}
            for side, key in (("buy", "bids"), ("sell", "asks"))}


action = st.one_of(
    st.tuples(
        st.just("place"), st.sampled_from(OWNERS), st.sampled_from(["buy", "sell"]),
        st.integers(4200, 4230), st.integers(1, 50), st.booleans(), st.one_of(st.none(), st.integers(0, 6)),
    ),
    st.tuples(st.just("cancel"), st.sampled_from(OWNERS), st.integers(1, 60)),
    st.tuples(st.just("reduce"), st.sampled_from(OWNERS), st.integers(1, 60), st.integers(1, 30)),
    st.tuples(st.just("cancel_all"), st.sampled_from(OWNERS)),
)


def run_block(clob: Clob, height: int, actions, coids: list[int]) -> list[Event]:
    events: list[Event] = []
    for a in actions:
        if a[0] == "place":
            _, owner, side, ticks, lots, post_only, expiry = a
            coids[0] += 1
            body = {"client_order_id": f"c{coids[0]}", "side": side, "price": str(Decimal(ticks) / 10000),
                    "quantity": str(Decimal(lots) / 10), "post_only": post_only}
            if expiry is not None:
                body["expiry_height"] = height + expiry
            msg = {"place_order": body}
        elif a[0] == "cancel":
            msg = {"cancel_order": {"order_id": str(a[2])}}
        elif a[0] == "reduce":
            msg = {"reduce_order": {"order_id": str(a[2]), "quantity": str(Decimal(a[3]) / 10)}}
        else:
            msg = {"cancel_all": {}}
        try:
            events.extend(clob.execute(a[1], msg, height))
        except ContractError:
            pass  # a failed tx emits nothing
    return events


def no_expiry(actions):
    return [a[:-1] + (None,) if a[0] == "place" else a for a in actions]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(st.lists(action, max_size=6), max_size=4),
    expiring=st.lists(action, max_size=4),
    after=st.lists(st.lists(action, max_size=6), min_size=1, max_size=8),
    excluded=st.sampled_from([None, *OWNERS]),
)
def test_tracked_book_equals_the_contracts_after_every_block(before, expiring, after, excluded):
    """Orders resting at the snapshot never expire later (the tracker cannot know their expiry;
    the data client's periodic check covers that); orders that expired before it may still emit
    their lazy `wasm-expired` afterwards. With an excluded owner (a trading node's own account),
    the book is the contract's book without that owner's orders, however they trade."""
    clob, coids = fresh_clob(), [0]
    height = 2
    for actions in before:
        run_block(clob, height, no_expiry(actions), coids)
        height += 1
    run_block(clob, height, [a[:-1] + (0,) if a[0] == "place" else a for a in expiring], coids)
    height += 2  # everything placed with expiry 0 has expired by the snapshot
    tracker = BookTracker(SEI_USDC_ID, 4, 1, exclude_owner=excluded)
    snapshot = clob.query(book_query(100, excluded), height - 1)
    tracker.load_snapshot(snapshot, 100, ts_event=1, ts_init=1)
    nt_book = OrderBook(SEI_USDC_ID, BookType.L2_MBP)
    nt_book.apply_deltas(tracker.load_snapshot(snapshot, 100, ts_event=1, ts_init=1))
    for actions in after:
        events = run_block(clob, height, actions, coids)
        data = tracker.apply_block(height, events, ts_event=height, ts_init=height)
        expected = query_levels(clob, height, exclude_owner=excluded)
        assert {s: tracker.levels(s) for s in ("buy", "sell")} == expected
        trades = [e for e in events if e.type == "wasm-trade"]
        assert len(data.trades) == len(trades)  # every trade, ours included: they happened in the market
        for tick, event in zip(data.trades, trades, strict=True):
            assert tick.aggressor_side == (AggressorSide.BUYER if event.get("taker_side") == "buy"
                                           else AggressorSide.SELLER)
            assert tick.price.as_decimal() == Decimal(event.get("price"))
        if data.deltas is not None:
            flags = [d.flags for d in data.deltas.deltas]
            assert flags[-1] & F_LAST and not any(f & F_LAST for f in flags[:-1])
            nt_book.apply_deltas(data.deltas)
        # What NautilusTrader builds from the published deltas is the contract's book too.
        assert ({float(lv.price): lv.size() for lv in nt_book.bids()}
                == {float(p): float(q) for p, q in expected["buy"].items()})
        assert ({float(lv.price): lv.size() for lv in nt_book.asks()}
                == {float(p): float(q) for p, q in expected["sell"].items()})
        height += 1


def test_snapshot_batch_clears_then_adds_and_skips_blocks_it_already_holds():
    clob, coids = fresh_clob(), [0]
    run_block(clob, 2, [("place", "alice", "buy", 4210, 10, True, None), ("place", "bob", "sell", 4215, 5, True, None)],
              coids)
    tracker = BookTracker(SEI_USDC_ID, 4, 1)
    batch = tracker.load_snapshot(clob.query({"book": {"depth": 10}}, 2), 10, ts_event=5, ts_init=6)
    actions = [d.action for d in batch.deltas]
    assert actions == [BookAction.CLEAR, BookAction.ADD, BookAction.ADD]
    assert batch.deltas[-1].flags & F_LAST
    assert tracker.apply_block(2, [Event("wasm-placed", (("order_id", "9"),))], 7, 7).deltas is None


def test_events_beyond_a_truncated_snapshot_are_ignored():
    clob, coids = fresh_clob(), [0]
    run_block(clob, 2, [("place", "alice", "buy", p, 10, True, None) for p in (4210, 4209, 4208)], coids)
    tracker = BookTracker(SEI_USDC_ID, 4, 1)
    tracker.load_snapshot(clob.query({"book": {"depth": 2}}, 2), 2, ts_event=1, ts_init=1)
    events = run_block(clob, 3, [("cancel", "alice", 3), ("place", "bob", "buy", 4200, 5, True, None),
                                 ("place", "bob", "buy", 4211, 5, True, None)], coids)
    tracker.apply_block(3, events, 1, 1)
    assert tracker.levels("buy") == {Decimal("0.4211"): Decimal("0.5"), Decimal("0.421"): Decimal("1"),
                                     Decimal("0.4209"): Decimal("1")}


@pytest.mark.parametrize("event", [
    Event("wasm-cancelled", (("order_id", "1"), ("side", "buy"), ("price", "0.4210"), ("remaining_quantity", "99"))),
    Event("wasm-filled", (("order_id", "77"), ("liquidity", "taker"), ("quantity", "1"), ("remaining_quantity", "0"))),
    Event("wasm-placed", (("order_id", "5"), ("side", "up"), ("price", "0.4"), ("quantity", "1"))),
    Event("wasm-placed", (("order_id", "5"), ("side", "buy"), ("price", "zero"), ("quantity", "1"))),
    Event("wasm-trade", (("price", "0.4"),)),
    # Decimals NautilusTrader's Price/Quantity refuse: found only when the block's deltas are built.
    Event("wasm-placed", (("order_id", "5"), ("side", "buy"), ("price", "Infinity"), ("quantity", "1"))),
    Event("wasm-placed", (("order_id", "5"), ("side", "sell"), ("price", "0.4"), ("quantity", "1e30"))),
])
def test_events_that_do_not_fit_put_the_tracker_out_of_sync(event):
    clob, coids = fresh_clob(), [0]
    run_block(clob, 2, [("place", "alice", "buy", 4210, 10, True, None)], coids)
    tracker = BookTracker(SEI_USDC_ID, 4, 1)
    tracker.load_snapshot(clob.query({"book": {"depth": 10}}, 2), 10, ts_event=1, ts_init=1)
    with pytest.raises(BookOutOfSync):
        tracker.apply_block(3, [event], 1, 1)
    assert not tracker.synced
    with pytest.raises(BookOutOfSync):
        tracker.apply_block(4, [], 1, 1)


def test_a_block_the_snapshot_already_holds_still_gives_its_trades():
    """Blocks held while a snapshot is in flight are in the snapshot's book, but their prints are in
    no snapshot: dropping them would lose trades from paper fills and recordings."""
    clob, coids = fresh_clob(), [0]
    run_block(clob, 2, [("place", "alice", "sell", 4215, 10, True, None)], coids)
    events = run_block(clob, 3, [("place", "bob", "buy", 4215, 4, False, None)], coids)  # takes 0.4
    tracker = BookTracker(SEI_USDC_ID, 4, 1)
    tracker.load_snapshot(clob.query({"book": {"depth": 10}}, 3), 10, ts_event=1, ts_init=1)
    held = tracker.apply_block(3, events, 7, 8)
    assert held.deltas is None
    assert [(float(t.price), float(t.size), t.aggressor_side)
            for t in held.trades] == [(0.4215, 0.4, AggressorSide.BUYER)]
    assert tracker.levels("sell") == {Decimal("0.4215"): Decimal("0.6")}
    junk = Event("wasm-trade", (("price", "0.4"),))
    assert tracker.apply_block(3, [junk], 7, 8).trades == [] and tracker.synced and tracker.bad_trades == 1
