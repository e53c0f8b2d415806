"""Scenario tables: a hand-built tape and the orders and cancels the strategy must produce."""

from __future__ import annotations

import pytest
from scenario_runner import run_tape, submitted
from tapebuilder import T0, Block, ladder, steady

MS = 1_000_000


def moved(bid, ask, from_ms, to_ms):
    return steady(bid, ask, from_ms, to_ms)


SCENARIOS = [
    pytest.param(
        steady("0.4000", "0.4010", 0, 3000), {},
        # mid 0.4005, half spread 4.9 bps = 0.000196: bid floor(0.400304) ask ceil(0.400696)
        [("BUY", 0.4003, 100.0), ("SELL", 0.4007, 100.0)],
        id="quotes-inside-wide-spread",
    ),
    pytest.param(
        steady("0.4000", "0.4010", 0, 3000), {"levels": 3, "level_spacing_ticks": 2, "size_growth": 2.0},
        [("BUY", 0.4003, 100.0), ("BUY", 0.4001, 200.0), ("BUY", 0.3999, 400.0),
         ("SELL", 0.4007, 100.0), ("SELL", 0.4009, 200.0), ("SELL", 0.4011, 400.0)],
        id="ladder-levels-spacing-growth",
    ),
    pytest.param(
        steady("0.4000", "0.4001", 0, 3000), {"half_spread_bps": 0.1, "min_spread_bps": 0.0},
        # a one-tick market: post-only joins both touches, never crosses
        [("BUY", 0.4000, 100.0), ("SELL", 0.4001, 100.0)],
        id="post-only-joins-one-tick-market",
    ),
    pytest.param(
        steady("0.4000", "0.4010", 0, 2000) + steady("0.4005", "0.4015", 2000, 4000), {},
        [("BUY", 0.4003, 100.0), ("SELL", 0.4007, 100.0), ("BUY", 0.4008, 100.0), ("SELL", 0.4012, 100.0)],
        id="requote-when-fair-value-moves",
    ),
    pytest.param(
        steady("0.4000", "0.4010", 0, 5000), {"max_order_age_secs": 2.0},
        [("BUY", 0.4003, 100.0), ("SELL", 0.4007, 100.0)] * 3,
        id="max-order-age-refreshes-quotes",
    ),
    pytest.param(
        steady("0.4000", "0.4010", 0, 10_000), {"min_spread_bps": 19.9},
        # min spread 19.9 bps of 0.4005 -> half 0.000398: bid floor(0.4001015), ask ceil(0.4008985)
        [("BUY", 0.4001, 100.0), ("SELL", 0.4009, 100.0)],
        id="min-spread-floor",
    ),
    pytest.param(
        [Block(0, *ladder("0.4000", "0.4010")) for _ in range(1)]
        + [Block(t, {**ladder("0.4000", "0.4010", size=100.0)[0], "0.4000": 900.0},
                 ladder("0.4000", "0.4010", size=100.0)[1]) for t in (400,)]
        + steady("0.4000", "0.4010", 800, 2000, size=100.0),
        {"fair_value": "microprice", "half_spread_bps": 2.4},
        # equal sizes: microprice = mid 0.4005 +- 0.000096; at 400 ms bid 900 vs ask 100 moves the
        # microprice to 0.4009 (requoted on the timer); from 800 ms sizes are equal again
        [("BUY", 0.4004, 100.0), ("SELL", 0.4006, 100.0), ("BUY", 0.4008, 100.0), ("SELL", 0.4010, 100.0),
         ("BUY", 0.4004, 100.0), ("SELL", 0.4006, 100.0)],
        id="microprice-follows-imbalance",
    ),
]


@pytest.mark.parametrize("blocks, strategy, expected", SCENARIOS)
def test_scenario_orders(tmp_path, blocks, strategy, expected):
    result = run_tape(tmp_path, blocks, strategy)
    got = submitted(result)
    assert got == expected
    assert all(result.orders["post_only"])


def test_stable_market_does_not_churn(tmp_path):
    result = run_tape(tmp_path, steady("0.4000", "0.4010", 0, 20_000))
    assert submitted(result) == [("BUY", 0.4003, 100.0), ("SELL", 0.4007, 100.0)]
    assert result.metrics["cancel_to_fill"] is None  # no fills
    assert result.metrics["quote_uptime"] > 0.95


def test_cancel_replace_leaks_no_in_flight_orders(tmp_path):
    """With one-block latency, every requote races in-flight orders; none may be left behind."""
    blocks = []
    for k in range(10):  # market moves every second
        bid = 4000 + (k % 3) * 3
        blocks += steady(f"{bid / 1e4:.4f}", f"{(bid + 10) / 1e4:.4f}", k * 1000, (k + 1) * 1000)
    result = run_tape(tmp_path, blocks, venue={"latency_ms": 400.0})
    orders = result.orders
    # at most one live order per side at any time: submissions never outrun confirmed cancels
    events = []
    for r in orders.itertuples():
        events.append((r.ts_init, 1, r.side))
        if r.status in ("CANCELED", "FILLED"):
            events.append((r.ts_last, -1, r.side))
    live = {"BUY": 0, "SELL": 0}
    for _, delta, side in sorted(events):
        live[side] += delta
        assert live[side] <= 2  # the old one (cancel in flight) and its replacement
    assert len(orders) >= 10
    # The run ends as a session does: every order of ours is closed at the venue and in the cache,
    # including those whose cancel (or whose submit and then cancel) was in flight when the tape ended.
    assert set(orders.status) <= {"CANCELED", "FILLED"}, orders.status.value_counts()
    assert result.metrics["orders_left_open"] == 0 and result.strategy.orders == {}


def test_stale_book_pulls_quotes_and_resumes(tmp_path):
    blocks = steady("0.4000", "0.4010", 0, 2000) + steady("0.4000", "0.4010", 12_000, 14_000, size=1001.0)
    result = run_tape(tmp_path, blocks, {"stale_after_secs": 3.0})
    orders = result.orders.sort_values("ts_init")
    first = orders.iloc[:2]
    assert list(first.status) == ["CANCELED", "CANCELED"]
    cancel_ms = (first.ts_last - T0) / MS
    # last book at 1600 ms, stale after 3 s: pulled on the first timer tick after 4600 ms
    assert ((cancel_ms > 1600 + 3000) & (cancel_ms <= 1600 + 3000 + 400)).all()
    later = orders[(orders.ts_init - T0) / MS >= 12_000]
    assert len(later) == 2  # quoting resumes on fresh data
    assert result.strategy.stats["stale_pulls"] == 1


def fill_tape():
    """Quotes rest at 0.4003/0.4007; at 2 s the market's ask drops through our bid (we buy 100)."""
    return steady("0.4000", "0.4010", 0, 2000) + steady("0.3995", "0.4002", 2000, 6000)


def test_fill_skews_quotes_towards_selling(tmp_path):
    strategy = {"linear_skew_bps": 10.0, "size_skew": 0.5, "max_position": 200.0}
    result = run_tape(tmp_path, fill_tape(), strategy)
    fills = result.analytics.fills
    assert list(zip(fills.side, fills.price, fills.qty, strict=True)) == [(1, 0.4003, 100.0)]
    # hand-computed: mid 0.39985, half 4.9bps = 0.000196, skew 0.5*10bps*mid = 0.0002 -> r = 0.39965
    # bid floor(r - 0.000196) = 0.3994, ask ceil(r + 0.000196) = 0.3999; sizes 100*(1 -/+ 0.5*0.5)
    assert submitted(result)[2:] == [("BUY", 0.3994, 75.0), ("SELL", 0.3999, 125.0)]


def test_position_limit_caps_the_ladder(tmp_path):
    """After buying 100 with max_position 150, at most 50 more may be bid, whatever the ladder says."""
    result = run_tape(tmp_path, fill_tape(), {"max_position": 150.0, "levels": 2, "level_spacing_ticks": 1})
    later_bids = [q for s, p, q in submitted(result)[4:] if s == "BUY"]
    assert sum(later_bids) <= 50.0
    assert result.metrics["inventory_max_abs"] <= 150.0


def test_kill_switch_cancels_everything_and_halts_trading(tmp_path):
    result = run_tape(tmp_path, fill_tape(), {"max_loss": 0.01})
    # buy 100 @ 0.4003, mid 0.39985 -> pnl -0.045 < -0.01
    assert result.metrics["halted"] is True
    assert "max_loss" in result.metrics["halt_reason"]
    assert result.metrics["trading_state"] == "HALTED"
    fill_ts = result.analytics.fills.ts.iloc[0]
    assert (result.orders.ts_init <= fill_ts).all()  # nothing submitted after the halt
    assert set(result.orders.status) <= {"CANCELED", "FILLED"}


def test_order_rate_cap(tmp_path):
    blocks = []
    for k in range(8):  # a move every 500 ms forces requotes
        bid = 4000 + (k % 2) * 4
        blocks += steady(f"{bid / 1e4:.4f}", f"{(bid + 10) / 1e4:.4f}", k * 500, (k + 1) * 500)
    result = run_tape(tmp_path, blocks, {"max_orders_per_sec": 3.0, "levels": 2})
    submits = sorted(result.orders.ts_init)
    cancels = sorted(result.orders[result.orders.status == "CANCELED"].ts_last)
    # submits alone never exceed the cap within any 1 s window
    for i, t in enumerate(submits):
        assert sum(1 for u in submits[i:] if u < t + 1_000_000_000) <= 3
    assert result.strategy.stats["rate_limited"] > 0
    assert cancels


@pytest.mark.parametrize("maker_fee", [0.0002, -0.0001])
def test_accounting_matches_the_venue_account(tmp_path, maker_fee):
    """Our cash/inventory (strategy and analytics) equal NautilusTrader's account balance changes."""
    result = run_tape(tmp_path, fill_tape(), venue={"maker_fee": maker_fee})
    m = result.metrics
    assert m["fees_paid"] == pytest.approx(maker_fee * 100 * 0.4003)
    final = result.analytics.equity.iloc[-1]
    assert final["cash"] == pytest.approx(result.account_cash_change, abs=1e-9)
    assert final["inventory"] == pytest.approx(result.account_base_change, abs=1e-9)
    assert result.strategy.cash == pytest.approx(result.account_cash_change, abs=1e-9)
    assert result.strategy.inventory == pytest.approx(result.account_base_change, abs=1e-9)
    # The venue (the tape's sei-clob profile) charges gas per place and cancel: the strategy's kill
    # switch and the analytics count the same actions.
    assert m["costs_paid"] == pytest.approx(0.0005 * m["actions_sent"]) and m["actions_sent"] >= 2
    assert result.strategy.costs == pytest.approx(m["costs_paid"])
    assert result.strategy.pnl(final["mid"]) == pytest.approx(m["pnl_total"], abs=1e-9)
    # A live node rebooks after its stop (a fill can reach the cache after the strategy stopped):
    # from nothing, the cache's fills give the same inventory and cash, fees included.
    strategy = result.strategy
    booked = strategy.inventory, strategy.cash
    strategy.inventory, strategy.cash = 0.0, 0.0
    strategy.rebook()
    assert (strategy.inventory, strategy.cash) == pytest.approx(booked, abs=1e-12) and strategy.inventory != 0
    assert m["pnl_spread_capture"] + m["pnl_inventory"] - m["fees_paid"] - m["costs_paid"] == pytest.approx(
        m["pnl_total"], abs=1e-9)


def test_action_costs_alone_trip_the_kill_switch(tmp_path):
    """On a venue that charges per action, a market that keeps moving makes every requote cost
    money: with no fill at all, the costs reach max_loss and the strategy halts."""
    blocks = []
    for k in range(10):  # the market moves every second: a cancel and a place per side each time
        bid = 4000 + (k % 2) * 4
        blocks += steady(f"{bid / 1e4:.4f}", f"{(bid + 10) / 1e4:.4f}", k * 1000, (k + 1) * 1000)
    result = run_tape(tmp_path, blocks, {"max_loss": 0.05}, venue={"action_cost": 0.01})
    m = result.metrics
    assert m["fill_count"] == 0 and m["halted"] is True and "max_loss" in m["halt_reason"]
    # 2 places, then a cancel and a place per side at the first move (-0.06 at the next check),
    # then the halt's 2 cancels; without the cost the same tape sends 40 actions and never halts
    assert m["actions_sent"] == 8 and m["costs_paid"] == pytest.approx(0.08)
    assert m["pnl_total"] == pytest.approx(-m["costs_paid"])
