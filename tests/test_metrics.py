"""Market-making metrics on hand-built records, computed by hand; and the PnL identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.metrics import FILL_COLUMNS, QUOTE_COLUMNS, TOB_COLUMNS, Costs, Limits, compute

S = 1_000_000_000
NO_COSTS = Costs(quote_currency="USDC")


def frames():
    tob = pd.DataFrame([
        (0 * S, 1.00, 1.02, 5, 5), (1 * S, 1.01, 1.03, 5, 5), (3 * S, 0.99, 1.01, 5, 5), (10 * S, 1.03, 1.05, 5, 5),
    ], columns=TOB_COLUMNS)
    fills = pd.DataFrame([
        # at t=1 the fill ties with a book update: it happened against the book before it
        (1 * S, "a", "v1", "t1", 1, 1.00, 10.0, "MAKER", 0.01, "USDC"),
        (2 * S, "b", "v2", "t2", -1, 1.03, 4.0, "MAKER", 0.0, "USDC"),
    ], columns=FILL_COLUMNS)
    quotes = pd.DataFrame([
        (0 * S, 1.01, 1, 1.015, 1, 1, 1), (3 * S, 0.995, 1, 1.005, 1, 1, 1), (5 * S, None, 0, 1.005, 1, 0, 1),
        (10 * S, None, 0, None, 0, 0, 0), (15 * S, 1.035, 1, 1.045, 1, 1, 1),
    ], columns=QUOTE_COLUMNS).astype({"bid": float, "ask": float})
    orders = pd.DataFrame({"filled_qty": [10.0, 4.0, 0.0], "status": ["FILLED", "CANCELED", "CANCELED"]})
    return tob, fills, quotes, orders


def test_hand_computed_metrics():
    tob, fills, quotes, orders = frames()
    a = compute(tob, fills, quotes, orders, Limits(5.0, 14.0, 1000.0), 0, 20 * S, costs=NO_COSTS)
    m = a.metrics
    assert m["pnl_spread_capture"] == pytest.approx(0.10 + 0.04)  # (1.01-1.00)*10 + (1.03-1.02)*4
    assert m["pnl_inventory"] == pytest.approx(10 * 0.01 + 6 * -0.02 + 6 * 0.04)
    assert m["fees_paid"] == pytest.approx(0.01)
    assert m["pnl_total"] == pytest.approx(-10.01 + 4.12 + 6 * 1.04)
    assert m["fill_count"] == 2 and m["maker_volume"] == 14.0
    assert m["turnover"] == pytest.approx(14.12)
    assert m["fill_ratio"] == pytest.approx(2 / 3) and m["cancel_to_fill"] == 1.0
    assert m["markout_bps"]["1s"] == pytest.approx((10 * 200 + 4 * (0.03 / 1.03 * 1e4)) / 14)
    assert m["markout_bps"]["5s"] == pytest.approx((10 * 0 + 4 * (0.03 / 1.03 * 1e4)) / 14)
    assert m["markout_bps"]["30s"] is None and m["markout_bps"]["60s"] is None  # beyond the data
    assert m["inventory_mean"] == pytest.approx(5.9)
    assert m["inventory_std"] == pytest.approx(np.sqrt(37.4 - 5.9**2))
    assert m["inventory_max_abs"] == 10.0
    assert m["time_at_limit_pct"] == pytest.approx(5.0)  # inventory 10 of 14 leaves < 5 room for 1 s of 20
    assert m["quote_uptime"] == pytest.approx(0.5)
    # per segment improvement: .75 (1 s), .75 (2 s), .5 (2 s), .25 (5 s), 0 (5 s), .5 (5 s)
    assert m["spread_improvement_pct"] == pytest.approx(35.0)
    assert m["max_drawdown"] == pytest.approx(0.12)  # equity peak 0.23 at t=2, 0.11 at t=3
    assert list(a.fills["mid_at_fill"]) == pytest.approx([1.01, 1.02])
    eq = a.equity.set_index("ts")
    assert eq.loc[2 * S, "inventory"] == 6 and eq.loc[20 * S, "equity"] == pytest.approx(m["pnl_total"])


@settings(max_examples=100, deadline=None)
@given(
    mids=st.lists(st.integers(3000, 5000), min_size=2, max_size=40),
    fills=st.lists(
        st.tuples(st.integers(0, 60), st.sampled_from([1, -1]), st.integers(-5, 5), st.integers(1, 5000),
                  st.floats(-0.01, 0.05)),
        max_size=30,
    ),
    actions=st.lists(st.integers(0, 120), max_size=30),
    action_cost=st.sampled_from([0.0, 0.0005, 0.25]),
)
def test_pnl_identity_holds(mids, fills, actions, action_cost):
    """spread capture + inventory PnL - fees - action costs == total PnL, marking at mid, for any
    tape, fills and actions."""
    tob = pd.DataFrame([(i * S, m / 1e4 - 0.0001, m / 1e4 + 0.0001, 1, 1) for i, m in enumerate(mids)],
                       columns=TOB_COLUMNS)
    rows = []
    for k, (t, side, off, qty, fee) in enumerate(fills):
        i = min(t, len(mids) - 1)
        rows.append((i * S + 1 + (k % 2) * S // 2, f"o{k}", f"v{k}", f"t{k}", side, (mids[i] + off) / 1e4, qty / 10,
                     "MAKER", fee, "USDC"))
    fills_df = pd.DataFrame(rows, columns=FILL_COLUMNS)
    quotes = pd.DataFrame([], columns=QUOTE_COLUMNS)
    orders = pd.DataFrame({"filled_qty": [1.0] * len(rows), "status": ["FILLED"] * len(rows)})
    m = compute(tob, fills_df, quotes, orders, Limits(1, 1e9, 1e12), 0, len(mids) * S,
                costs=Costs("USDC", action_cost, tuple(a * S // 3 for a in actions))).metrics
    assert m["costs_paid"] == pytest.approx(action_cost * len(actions))
    assert m["pnl_spread_capture"] + m["pnl_inventory"] - m["fees_paid"] - m["costs_paid"] == pytest.approx(
        m["pnl_total"], abs=1e-9)


def test_no_book_is_a_clear_error():
    _, fills, quotes, orders = frames()
    with pytest.raises(ValueError, match="no top-of-book"):
        compute(pd.DataFrame([], columns=TOB_COLUMNS), fills, quotes, orders, Limits(1, 1, 1), 0, S, costs=NO_COSTS)


def test_action_costs_lower_pnl_when_each_action_is_sent():
    """Each place / cancel costs the venue's action_cost when sent: 3 actions by t=3 s, a 4th after."""
    tob, fills, quotes, orders = frames()
    base = compute(tob, fills, quotes, orders, Limits(5.0, 14.0, 1000.0), 0, 20 * S, costs=NO_COSTS)
    costs = Costs("USDC", 0.01, (0, S // 2, 2 * S, 12 * S))
    a = compute(tob, fills, quotes, orders, Limits(5.0, 14.0, 1000.0), 0, 20 * S, costs=costs)
    assert a.metrics["costs_paid"] == pytest.approx(0.04) and a.metrics["actions_sent"] == 4
    assert a.metrics["pnl_total"] == pytest.approx(base.metrics["pnl_total"] - 0.04)
    eq = a.equity.set_index("ts")
    assert eq.loc[3 * S, "costs_paid"] == pytest.approx(0.03) and eq.loc[20 * S, "costs_paid"] == pytest.approx(0.04)
    # the spread capture and inventory PnL are the market's; only equity pays
    assert a.metrics["pnl_spread_capture"] == base.metrics["pnl_spread_capture"]


def test_commission_in_the_base_currency_is_valued_at_the_fill_price():
    tob, fills, quotes, orders = frames()
    fills["commission"] = [0.5, 0.02]
    fills["commission_currency"] = ["ETH", "USDT"]  # the instrument is ETH/USDT: one in base, one in quote
    m = compute(tob, fills, quotes, orders, Limits(5.0, 14.0, 1000.0), 0, 20 * S, costs=Costs("USDT")).metrics
    assert m["fees_paid"] == pytest.approx(0.5 * 1.00 + 0.02)
