"""Queue-position rules on `QueueBook` alone (ticks and lots), and their invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.fills.queue_book import QueueBook
from backtests.fills.queue_models import ProbPowerQueue, RiskAverseQueue, make_queue_model

BUY, SELL = True, False  # resting side; a print's aggressor is the opposite


def book(model="prob_power"):
    return QueueBook(make_queue_model(model, 2.0))


def test_join_behind_100_then_prints_of_60_and_60_fill_20():
    q = book()
    q.add("a", BUY, 4000, 50, market_size=100)
    assert q.on_trade(False, 4000, 60) == []
    assert q.on_trade(False, 4000, 60) == [("a", 20)]
    assert q.orders["a"].leaves == 30


@pytest.mark.parametrize("model, expected", [("prob_power", 50), ("risk_averse", 20)])
def test_cancellations_ahead_depend_on_the_queue_model(model, expected):
    q = book(model)
    q.add("a", BUY, 4000, 50, market_size=100)
    q.on_depth(BUY, 4000, 200)  # 100 joins behind us
    q.on_depth(BUY, 4000, 140)  # 60 cancelled: prob_power puts half of it ahead (front 100, back 100)
    expected_front = {"prob_power": 70.0, "risk_averse": 100.0}[model]
    assert q.orders["a"].front == pytest.approx(expected_front)
    assert q.on_trade(False, 4000, 120) == [("a", expected)]


def test_prob_power_matches_hftbacktest_formula():
    # front 30, back 70, 20 cancelled, n=2: prob behind = 70^2/(70^2+30^2)
    p = 70**2 / (70**2 + 30**2)
    assert ProbPowerQueue(2).after_cancel(30, 100, 80, 20) == pytest.approx(30 - (1 - p) * 20)
    assert RiskAverseQueue().after_cancel(30, 100, 80, 20) == 30


def test_level_shrink_explained_by_prints_is_not_a_cancellation():
    q = book()
    q.add("a", BUY, 4000, 50, market_size=100)
    q.on_trade(False, 4000, 60)  # front 40
    q.on_depth(BUY, 4000, 40)  # the print's own footprint in the book
    assert q.orders["a"].front == pytest.approx(40)


def test_level_deleted_puts_us_first():
    q = book("risk_averse")
    q.add("a", BUY, 4000, 50, market_size=100)
    q.on_depth(BUY, 4000, 0)
    q.on_depth(BUY, 4000, 30)  # new size joins behind us
    assert q.on_trade(False, 4000, 10) == [("a", 10)]


def test_print_through_our_price_fills_us_up_to_its_size():
    q = book()
    q.add("a", BUY, 4000, 50, market_size=100)
    assert q.on_trade(False, 3999, 30) == [("a", 30)]
    assert q.on_trade(False, 3999, 30) == [("a", 20)]


def test_sweep_fills_better_prices_first_and_each_print_once():
    q = book()
    q.add("hi", BUY, 4000, 50, market_size=100)
    q.add("lo", BUY, 3998, 50, market_size=100)
    fills = []
    for price, size in [(4000, 100), (3999, 100), (3998, 130)]:
        fills += q.on_trade(False, price, size)
    assert fills == [("hi", 50), ("lo", 30)]


def test_two_orders_at_one_price_share_a_print_in_time_priority():
    q = book()
    q.add("first", SELL, 4005, 30, market_size=10)
    q.add("second", SELL, 4005, 30, market_size=10)  # 10 market ahead of each, `first` is ahead too
    assert q.on_trade(True, 4005, 50) == [("first", 30), ("second", 10)]


def test_opposite_side_crossing_us_fills_once_per_unit_of_liquidity():
    q = book()
    q.add("a", BUY, 4000, 50, market_size=100)
    assert q.on_cross(True, [(3999, 30)]) == [("a", 30)]
    assert q.on_cross(True, [(3999, 30)]) == []  # the same resting size again
    assert q.on_cross(True, [(3999, 45)]) == [("a", 15)]  # only the replenished part
    assert q.orders["a"].leaves == 5


@st.composite
def tapes(draw):
    events = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["trade", "depth", "add", "remove"]))
        price = draw(st.integers(3995, 4005))
        if kind == "trade":
            events.append(("trade", draw(st.booleans()), price, draw(st.integers(1, 300))))
        elif kind == "depth":
            events.append(("depth", draw(st.booleans()), price, draw(st.integers(0, 500))))
        elif kind == "add":
            events.append(("add", draw(st.booleans()), price, draw(st.integers(1, 200)), draw(st.integers(0, 500))))
        else:
            events.append(("remove", draw(st.integers(0, 10))))
    return events


@settings(max_examples=400, deadline=None)
@given(tape=tapes(), model=st.sampled_from(["prob_power", "risk_averse"]))
def test_fills_never_exceed_prints_at_or_through_nor_the_order(tape, model):
    q = book(model)
    filled: dict[str, int] = {}
    eligible: dict[str, int] = {}  # print size at or through the order's price since it went live
    size: dict[str, int] = {}
    n = 0
    for event in tape:
        if event[0] == "add":
            _, is_buy, price, lots, market = event
            key = f"o{n}"
            n += 1
            q.add(key, is_buy, price, lots, market)
            filled[key], eligible[key], size[key] = 0, 0, lots
        elif event[0] == "remove":
            keys = sorted(q.orders)
            if keys:
                q.remove(keys[event[1] % len(keys)])
        elif event[0] == "depth":
            q.on_depth(*event[1:])
        else:
            _, aggressor_buy, price, lots = event
            for order in q.orders.values():
                reaches = order.price <= price if aggressor_buy else order.price >= price
                if order.is_buy != aggressor_buy and reaches:
                    eligible[order.key] += lots
            fills = q.on_trade(aggressor_buy, price, lots)
            assert sum(f for _, f in fills) <= lots  # each print consumed once
            for key, lots_filled in fills:
                assert lots_filled > 0
                filled[key] += lots_filled
            for key in [k for k, o in q.orders.items() if o.leaves == 0]:
                q.remove(key)
    for key in filled:
        assert filled[key] <= eligible[key]
        assert filled[key] <= size[key]
