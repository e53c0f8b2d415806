"""Market-making metrics on hand-built records, computed by hand; the PnL identity; and risk
ratios with their sample size and interval, checked by hand and for coverage."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.metrics import (
    FILL_COLUMNS,
    QUOTE_COLUMNS,
    TOB_COLUMNS,
    Costs,
    Limits,
    compute,
    pnl_rate,
    sharpe_ratio,
    sortino_ratio,
)
from backtests.report import ratio_text, side_by_side, summary

S = 1_000_000_000
NO_COSTS = Costs(quote_currency="USDC")


def frames():
    tob = pd.DataFrame([
        (0 * S, 1.00, 1.02), (1 * S, 1.01, 1.03), (3 * S, 0.99, 1.01), (10 * S, 1.03, 1.05),
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
    assert m["pnl_per_drawdown"] == pytest.approx(m["pnl_total"] / 0.12)
    assert m["sharpe"]["n"] == 0 and m["sharpe"]["status"] == "too_short"  # 20 s: not one whole minute
    assert list(a.fills["mid_at_fill"]) == pytest.approx([1.01, 1.02])
    eq = a.equity.set_index("ts")
    assert eq.loc[2 * S, "inventory"] == 6 and eq.loc[20 * S, "equity"] == pytest.approx(m["pnl_total"])


def test_equity_before_the_first_book_has_no_mid_and_nothing_held():
    """The equity grid starts at the window's start: samples before the first book have no mid
    (NaN) and zero for every running total; the columns come out in the order the files keep."""
    tob, fills, quotes, orders = frames()
    tob["ts"] += 3 * S  # the first book at 3 s, the first fill at 4 s
    fills["ts"] += 3 * S
    eq = compute(tob, fills, quotes, orders, Limits(5.0, 14.0, 1000.0), 0, 20 * S, costs=NO_COSTS).equity
    assert list(eq.columns) == ["ts", "mid", "inventory", "cash", "equity", "pnl_spread_capture", "pnl_inventory",
                                "fees_paid", "costs_paid", "pnl_total"]
    early = eq[eq["ts"] < 3 * S]
    assert len(early) == 3 and early["mid"].isna().all()
    assert (early.drop(columns=["ts", "mid"]).to_numpy() == 0.0).all()
    assert eq.loc[eq["ts"] == 3 * S, "mid"].item() == pytest.approx(1.01)
    assert eq.loc[eq["ts"] == 5 * S, "fees_paid"].item() == pytest.approx(0.01)
    assert eq["pnl_total"].equals(eq["equity"])


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
    tob = pd.DataFrame([(i * S, m / 1e4 - 0.0001, m / 1e4 + 0.0001) for i, m in enumerate(mids)],
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


# -- risk ratios and the PnL rate ------------------------------------------------------------------

Z90 = NormalDist().inv_cdf(0.95)
MINUTE = 60 * S


def run_with_minute_changes(dmid: list[float], qty: float = 100.0, tail: list[tuple[int, float]] = ()) -> dict:
    """A run that buys `qty` at the mid just after it starts and holds it while the mid moves by
    dmid[k] over minute k, so its 1-minute equity changes are exactly qty * dmid. `tail` adds
    book updates (ns after the last whole minute, mid) that end the run inside a minute."""
    mids = 1.0 + np.concatenate([[0.0], np.cumsum(dmid)])
    book = [(k * MINUTE, mid - 0.0001, mid + 0.0001) for k, mid in enumerate(mids)]
    book += [(len(dmid) * MINUTE + t, mid - 0.0001, mid + 0.0001) for t, mid in tail]
    fills = pd.DataFrame([(1, "a", "v1", "t1", 1, mids[0], qty, "MAKER", 0.0, "USDC")], columns=FILL_COLUMNS)
    orders = pd.DataFrame({"filled_qty": [qty], "status": ["FILLED"]})
    end = len(dmid) * MINUTE + (tail[-1][0] + 1 if tail else 0)
    return compute(pd.DataFrame(book, columns=TOB_COLUMNS), fills, pd.DataFrame([], columns=QUOTE_COLUMNS), orders,
                   Limits(1, 1e9, 1e12), 0, end, costs=NO_COSTS).metrics


def test_a_day_long_run_has_the_hand_computed_sharpe_sortino_and_pnl_rate():
    """1,440 minutes alternating +0.3 and -0.1: mean 0.1, deviations +-0.2, a two-point distribution
    (skew 0, kurtosis 1), so every figure has a closed form."""
    m = run_with_minute_changes([0.003, -0.001] * 720)
    n = 1440
    sharpe = m["sharpe"]
    sr = 0.1 / (0.2 * math.sqrt(n / (n - 1)))  # sample std, ddof=1
    se = math.sqrt((1 + sr**2 * (1 - 1) / 4 - sr * 0) / n)  # Mertens with skew 0, kurtosis 1: 1/sqrt(n)
    assert sharpe["horizon"] == "1min" and sharpe["n"] == n and sharpe["status"] == "ok"
    assert sharpe["per_period"] == pytest.approx(sr, rel=1e-9) and sharpe["se"] == pytest.approx(se, rel=1e-6)
    assert [sharpe["ci_low"], sharpe["ci_high"]] == pytest.approx([sr - Z90 * se, sr + Z90 * se], rel=1e-6)
    assert sharpe["annualised"] == pytest.approx(sr * math.sqrt(525_600), rel=1e-9)
    assert sharpe["annualised"] == pytest.approx(362.365, abs=1e-3)  # 0.5 * sqrt(1439/1440) * sqrt(525,600)
    assert sharpe["annualised_ci_low"] == pytest.approx((sr - Z90 * se) * math.sqrt(525_600), rel=1e-6)

    # sortino: downside RMS sqrt(0.5 * 0.1^2); delta-method variance per sample, from the moments of
    # (x, min(x, 0)^2): Var x / D - mu Cov / D^2 + mu^2 Var d / (4 D^3) = 8 + 4 + 0.5
    sortino = m["sortino"]
    assert sortino["per_period"] == pytest.approx(math.sqrt(2), rel=1e-9)
    assert sortino["se"] == pytest.approx(math.sqrt(12.5 / n), rel=1e-6)
    assert sortino["annualised"] == pytest.approx(math.sqrt(2) * math.sqrt(525_600), rel=1e-9)

    rate = m["pnl_rate"]
    std = 0.2 * math.sqrt(n / (n - 1))
    assert rate["per"] == "hour" and rate["n"] == n and rate["mean"] == pytest.approx(6.0, rel=1e-9)
    assert rate["change_std"] == pytest.approx(std, rel=1e-9)
    assert rate["se"] == pytest.approx(std * 60 / math.sqrt(n), rel=1e-9)
    assert rate["ci_high"] - rate["mean"] == pytest.approx(Z90 * rate["se"], rel=1e-9)
    assert m["pnl_total"] == pytest.approx(144.0) and m["max_drawdown"] == pytest.approx(0.1)
    assert m["pnl_per_drawdown"] == pytest.approx(1440.0)


def test_annualising_starts_at_a_day_of_changes_and_ratios_at_thirty():
    changes = np.tile([0.3, -0.1], 720)
    day_less_one = sharpe_ratio(changes[:1439])
    assert day_less_one["status"] == "not_annualised" and day_less_one["annualised"] is None
    assert day_less_one["per_period"] is not None and day_less_one["annualised_ci_low"] is None
    day = sharpe_ratio(changes)
    assert day["annualised"] == pytest.approx(day["per_period"] * math.sqrt(525_600), rel=1e-12)
    for ratio in (sharpe_ratio, sortino_ratio):
        short = ratio(changes[:29])
        assert short["status"] == "too_short" and short["n"] == 29
        assert short["per_period"] is None and short["ci_low"] is None and short["annualised"] is None
        assert ratio(changes[:30])["status"] == "not_annualised"
    rate = pnl_rate(changes[:29])
    assert rate["mean"] == pytest.approx(np.mean(changes[:29]) * 60) and rate["se"] is None
    assert pnl_rate(changes[:30])["se"] is not None


def test_no_variation_or_no_loss_leaves_a_ratio_undefined():
    flat = np.zeros(60)
    assert sharpe_ratio(flat)["status"] == "undefined" and sharpe_ratio(flat)["per_period"] is None
    gains = np.tile([0.2, 0.1], 30)
    assert sortino_ratio(gains)["status"] == "undefined" and sharpe_ratio(gains)["status"] == "not_annualised"
    assert ratio_text(sortino_ratio(gains), "sortino") == "n/a (undefined over 60 1min changes: no period lost money)"


def test_a_short_run_shows_no_sharpe_and_its_report_says_too_short():
    """10 minutes and 30 s: ten whole minutes (the half minute is not a 1-minute return)."""
    rng = np.random.default_rng(4)
    m = run_with_minute_changes(list(rng.normal(0.0005, 0.001, 10)), tail=[(20 * S, 2.0), (29 * S, 2.0)])
    assert m["sharpe"]["n"] == 10 and m["sharpe"]["status"] == "too_short" and m["sharpe"]["per_period"] is None
    assert m["sortino"]["status"] == "too_short" and m["pnl_rate"]["n"] == 10 and m["pnl_rate"]["se"] is None
    text = summary({**m, "events_processed": 1, "wall_seconds": 1.0, "fill_model": "cross",
                    "window": {"start": "a", "end": "b"}, "signal": None,
                    "instrument": {"id": "SEI/USDC.SEI", "base": "SEI", "quote": "USDC", "size_precision": 1}})
    assert report_line(text, "sharpe") == "n/a (too short: 10 1min changes, needs 30)"
    assert report_line(text, "PnL rate (USDC)") == (f"{m['pnl_rate']['mean']:+,.4f} per hour (no interval: 10 1min "
                                                    "changes, needs 30)")
    assert "annualised" not in text


def test_a_trailing_partial_minute_is_left_out_of_the_returns():
    """31 whole minutes of +0.001 / -0.0005, then 30 s in which the mid jumps 1.0: counting that
    half minute as a return would put a huge outlier in the ratio."""
    dmid = [0.001, -0.0005] * 15 + [0.001]
    m = run_with_minute_changes(dmid, tail=[(10 * S, 2.5), (30 * S, 2.5)])
    changes = 100 * np.array(dmid)
    assert m["sharpe"]["n"] == 31
    assert m["sharpe"]["per_period"] == pytest.approx(changes.mean() / changes.std(ddof=1), rel=1e-9)
    assert m["pnl_rate"]["mean"] == pytest.approx(changes.mean() * 60, rel=1e-9)
    assert m["pnl_total"] == pytest.approx(100 * (2.5 - 1.0))  # the jump still counts in the total


def report_line(text: str, label: str) -> str:
    """The value printed next to `label` in a report."""
    return next(line.split(label, 1)[1].strip() for line in text.splitlines() if line.strip().startswith(label))


def normal_sortino(mu: float, sigma: float) -> float:
    """mu / sqrt(E[min(X, 0)^2]) for X ~ N(mu, sigma^2), where
    E[min(X, 0)^2] = (mu^2 + sigma^2) Phi(-mu/sigma) - mu sigma phi(mu/sigma)."""
    unit = NormalDist()
    return mu / math.sqrt((mu**2 + sigma**2) * unit.cdf(-mu / sigma) - mu * sigma * unit.pdf(mu / sigma))


@pytest.mark.parametrize("n", [30, 300])
def test_the_90pct_interval_covers_the_true_ratio_about_90pct_of_the_time(n):
    """400 seeded i.i.d. normal series with a known Sharpe (0.2) and Sortino: the interval must hold
    the true value in 85-95% of them, at the smallest n a ratio is reported for and at a larger one.
    A missing 1/sqrt(n) or a wrong variance formula lands far outside that band."""
    rng = np.random.default_rng(20020)
    mu, sigma = 0.2, 1.0
    series = rng.normal(mu, sigma, size=(400, n))
    for ratio, truth in ((sharpe_ratio, mu / sigma), (sortino_ratio, normal_sortino(mu, sigma))):
        results = [ratio(x) for x in series]
        covered = np.mean([r["ci_low"] <= truth <= r["ci_high"] for r in results])
        assert 0.85 <= covered <= 0.95, (ratio.__name__, covered)
        assert all(r["ci_low"] < r["per_period"] < r["ci_high"] for r in results)


def test_the_same_changes_give_the_same_bytes():
    changes = np.random.default_rng(9).normal(0.01, 1.0, 500)
    assert repr(sharpe_ratio(changes)) == repr(sharpe_ratio(changes.copy()))
    assert repr(sortino_ratio(changes)) == repr(sortino_ratio(changes.copy()))


def test_the_report_gives_the_interval_and_n_and_annualises_only_a_day():
    m = run_with_minute_changes([0.003, -0.001] * 720)
    assert ratio_text(m["sharpe"]) == (
        f"+0.500 per 1min [{m['sharpe']['ci_low']:+.3f}, {m['sharpe']['ci_high']:+.3f}] (90% CI), n=1,440; "
        f"annualised {m['sharpe']['annualised']:+,.1f} [{m['sharpe']['annualised_ci_low']:+,.1f}, "
        f"{m['sharpe']['annualised_ci_high']:+,.1f}]")
    hours = run_with_minute_changes([0.003, -0.001] * 60)
    assert ratio_text(hours["sharpe"]).endswith("n=120; not annualised (fewer than 1,440 changes, a day)")
    assert ratio_text(92.75) == "92.75 annualised (older run: no sample count or interval recorded)"
    base = {"events_processed": 1, "wall_seconds": 1.0, "fill_model": "cross", "window": {"start": "a", "end": "b"},
            "instrument": {"id": "SEI/USDC.SEI", "base": "SEI", "quote": "USDC", "size_precision": 1}}
    day = summary({**m, **base})
    rate = m["pnl_rate"]
    assert report_line(day, "PnL rate (USDC)") == (f"+144.0000 per day ± {(rate['ci_high'] - rate['mean']) * 24:,.4f} "
                                                   "(90% CI), n=1,440 1min changes")
    table = side_by_side({"a": {**m, **base}, "b": {**hours, **base}})
    assert [line.split()[1:] for line in table.splitlines() if line.startswith("sharpe.n ")] == [["1,440", "120"]]

