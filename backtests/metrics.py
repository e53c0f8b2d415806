"""Market-making analytics for a run, computed from what the recorder saw.

Definitions (all money in the instrument's quote currency; inventory in its base currency):

- Marking is at mid. ``mid`` is the market's mid (excluding our quotes) from the recorded top of
  book. At equal timestamps a fill is ordered before the book update: the fill happened against
  the book that was showing, so ``mid_at_fill`` is the last mid strictly before the fill.
- ``pnl_total``: equity at the end minus at the start, equity = cash + inventory * mid, where cash
  and inventory count only what the strategy's fills changed (starting balances are funding).
- ``pnl_spread_capture``: sum over fills of side * (mid_at_fill - price) * qty.
- ``pnl_inventory``: sum over mid changes of inventory held * change in mid.
- ``fees_paid``: commissions paid (negative when rebates dominate).
- ``costs_paid``: what our order actions cost: (places + cancels + modifies) x the venue's
  ``action_cost`` (gas on a chain; nothing on an off-chain book), charged when each was sent.
  Identity: pnl_spread_capture + pnl_inventory - fees_paid - costs_paid == pnl_total.
- ``fill_count``: fill events; ``maker_volume``: base quantity filled as maker;
  ``fills_at_touch``: fills priced at the market's best bid (our buys) or best ask (our sells)
  just before the fill, i.e. passive fills at the touch rather than through a crossed book;
  ``turnover``: traded notional (quote currency).
- ``fill_ratio``: orders that received any fill / orders submitted.
- ``cancel_to_fill``: cancels confirmed by the venue / fill events (null without fills).
- ``quote_uptime``: share of the run's time with at least one live bid and one live ask.
- ``markout_bps``: for horizon h, qty-weighted mean of side * (mid(t+h) - price) / price * 1e4
  over fills whose t+h lies inside the data; positive means the fill was good for us.
- ``inventory_mean/std/max_abs``: time-weighted over the run window.
- ``time_at_limit_pct``: % of time the inventory leaves less than one ``order_size`` of room
  before max_position or max_notional on its side (the strategy cannot post a full first level).
- ``sharpe``/``sortino``: objects, from the equity changes over each complete minute of the run
  (``n`` of them). ``per_period`` is the ratio per minute (sortino divides by the root mean square
  of negative changes), with a 90% confidence interval from its delta-method standard error (for
  sharpe, Mertens (2002): sqrt((1 + SR^2 (kurt - 1) / 4 - SR * skew) / n), which is Lo's (2002)
  sqrt((1 + SR^2 / 2) / n) for normal changes). Null, with status "too_short", below
  MIN_RISK_SAMPLES changes; annualised by sqrt(525,600) (24/7) only from ANNUALISE_MIN_SAMPLES
  (one day) on. docs/metrics.md says why these thresholds.
- ``pnl_rate``: PnL per hour, the mean 1-minute change times 60, with its standard error and 90%
  interval (from MIN_RISK_SAMPLES changes on), so two runs' rates can be compared.
- ``max_drawdown``: largest fall of equity from a running peak (quote currency, positive).
- ``pnl_per_drawdown``: pnl_total / max_drawdown (null without a drawdown); needs no annualising.
- ``spread_improvement_pct``: time-weighted mean over the run of 100 * (S_mkt - S_comb) / S_mkt,
  where S_mkt = market ask - market bid and S_comb = min(market ask, our best ask) -
  max(market bid, our best bid); a side we are not quoting counts as the market's. 0 when we
  never improve the inside, 50 when we halve it on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

MARKOUT_HORIZONS = {"1s": 1.0, "5s": 5.0, "30s": 30.0, "60s": 60.0}
NS = 1_000_000_000
MINUTES_PER_YEAR = 525_600
# Risk ratios and the PnL rate are computed on the equity change over each complete minute.
RISK_HORIZON, RISK_HORIZON_NS, HORIZONS_PER_HOUR = "1min", 60 * NS, 60
# Fewer changes than this and a ratio's normal-approximation interval is not to be trusted (its
# coverage is checked at exactly this n in the tests): the ratio is reported as too short.
MIN_RISK_SAMPLES = 30
# Annualise only a run covering a whole day: a 24/7 market has a daily cycle of activity, and a
# shorter run would extrapolate part of that cycle to a year.
ANNUALISE_MIN_SAMPLES = 1_440
CI_LEVEL = 0.90
CI_Z = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2)

TOB_COLUMNS = ["ts", "bid", "ask"]  # the market's best prices each time one of them changes
FILL_COLUMNS = ["ts", "client_order_id", "venue_order_id", "trade_id", "side", "price", "qty",
                "liquidity", "commission", "commission_currency"]
QUOTE_COLUMNS = ["ts", "bid", "bid_qty", "ask", "ask_qty", "n_bids", "n_asks"]


@dataclass(frozen=True)
class Limits:
    order_size: float
    max_position: float
    max_notional: float


@dataclass(frozen=True)
class Costs:
    """What the venue charges beyond fills: `action_cost` (quote currency) for each action sent at
    the times in `actions`. `quote_currency` tells commissions in quote from those in base."""

    quote_currency: str
    action_cost: float = 0.0
    actions: tuple[int, ...] = ()


@dataclass
class Analytics:
    metrics: dict
    equity: pd.DataFrame
    fills: pd.DataFrame


def compute(
    tob: pd.DataFrame,
    fills: pd.DataFrame,
    quotes: pd.DataFrame,
    orders: pd.DataFrame,
    limits: Limits,
    start_ns: int,
    end_ns: int,
    sample_interval_ns: int = NS,
    *,
    costs: Costs,
) -> Analytics:
    if tob.empty:
        raise ValueError("no top-of-book was recorded: the tape window holds no book data")
    tob = tob.sort_values("ts", kind="stable").reset_index(drop=True)
    fills = fills.sort_values("ts", kind="stable").reset_index(drop=True).copy()
    tob_ts = tob["ts"].to_numpy(np.int64)
    mid = ((tob["bid"] + tob["ask"]) / 2).to_numpy(float)
    timeline = _timeline(tob_ts, mid, fills, costs)
    fills["mid_at_fill"] = timeline.loc[timeline.kind == FILL, "mid"].to_numpy()
    before = np.clip(np.searchsorted(tob_ts, fills["ts"].to_numpy(np.int64), side="left") - 1, 0, None)
    fills["bid_at_fill"] = tob["bid"].to_numpy(float)[before] if len(fills) else []
    fills["ask_at_fill"] = tob["ask"].to_numpy(float)[before] if len(fills) else []

    metrics: dict = {}
    last = timeline.iloc[-1]
    metrics["pnl_total"] = float(last.equity)
    metrics["pnl_spread_capture"] = float(last.spread)
    metrics["pnl_inventory"] = float(last.inv_pnl)
    metrics["fees_paid"] = float(last.fees)
    metrics["costs_paid"] = float(last.costs)
    metrics["actions_sent"] = len(costs.actions)
    metrics["fill_count"] = int(len(fills))
    maker = fills["liquidity"] == "MAKER"
    metrics["maker_volume"] = float(fills.loc[maker, "qty"].sum())
    touch = ((fills["side"] == 1) & np.isclose(fills["price"], fills["bid_at_fill"])) | (
        (fills["side"] == -1) & np.isclose(fills["price"], fills["ask_at_fill"]))
    metrics["fills_at_touch"] = int(touch.sum())
    submitted = len(orders)
    filled_orders = int((orders["filled_qty"] > 0).sum()) if submitted else 0
    metrics["fill_ratio"] = filled_orders / submitted if submitted else None
    cancels = int((orders["status"] == "CANCELED").sum()) if submitted else 0
    metrics["cancel_to_fill"] = cancels / len(fills) if len(fills) else None
    metrics["quote_uptime"] = _quote_uptime(quotes, start_ns, end_ns)
    metrics["markout_bps"] = _markouts(fills, tob_ts, mid, end_ns)
    inv_stats = _inventory_stats(timeline, limits, start_ns, end_ns)
    metrics.update(inv_stats)
    changes = horizon_changes(timeline, start_ns, end_ns)
    metrics["sharpe"], metrics["sortino"] = sharpe_ratio(changes), sortino_ratio(changes)
    metrics["pnl_rate"] = pnl_rate(changes)
    eq = timeline["equity"].to_numpy(float)
    metrics["max_drawdown"] = (float(np.max(np.maximum.accumulate(np.concatenate([[0.0], eq]))[1:] - eq))
                               if len(eq) else 0.0)
    metrics["pnl_per_drawdown"] = pnl_per_drawdown(metrics["pnl_total"], metrics["max_drawdown"])
    metrics["turnover"] = float((fills["price"] * fills["qty"]).sum())
    metrics["spread_improvement_pct"] = _spread_improvement(tob, quotes, start_ns, end_ns)

    for horizon, seconds in MARKOUT_HORIZONS.items():
        fills[f"markout_{horizon}_bps"] = _fill_markouts(fills, tob_ts, mid, end_ns, int(seconds * NS))
    equity = _sample(timeline, start_ns, end_ns, sample_interval_ns)
    return Analytics(metrics=_clean(metrics), equity=equity, fills=fills)


FILL, BOOK, ACTION = 0, 1, 2  # timeline row kinds; at equal times fills come first


def _timeline(tob_ts: np.ndarray, mid: np.ndarray, fills: pd.DataFrame, costs: Costs) -> pd.DataFrame:
    """Mid updates, fills and costed actions in one sequence, with the running PnL components."""
    n_t, n_f = len(tob_ts), len(fills)
    action_ts = np.asarray(costs.actions, np.int64) if costs.action_cost else np.zeros(0, np.int64)
    n_a = len(action_ts)
    pad_t, pad_a = np.zeros(n_t), np.zeros(n_a)
    ts = np.concatenate([tob_ts, fills["ts"].to_numpy(np.int64), action_ts])
    kind = np.concatenate([np.full(n_t, BOOK, np.int8), np.full(n_f, FILL, np.int8), np.full(n_a, ACTION, np.int8)])
    mid_col = np.concatenate([mid, np.full(n_f + n_a, np.nan)])
    side = np.concatenate([pad_t, fills["side"].to_numpy(float), pad_a])
    px = np.concatenate([pad_t, fills["price"].to_numpy(float), pad_a])
    qty = np.concatenate([pad_t, fills["qty"].to_numpy(float), pad_a])
    fee = np.concatenate([pad_t, _fees_in_quote(fills, costs.quote_currency), pad_a])
    cost = np.concatenate([pad_t, np.zeros(n_f), np.full(n_a, costs.action_cost)])
    order = np.lexsort((kind, ts))
    # One column at a time, each unsorted copy freed as its sorted one is made: a day's timeline is
    # built when the run's memory peaks.
    ts, kind, mid_col = ts[order], kind[order], mid_col[order]
    side, px, qty = side[order], px[order], qty[order]
    fee, cost = fee[order], cost[order]
    mid_ff = pd.Series(mid_col).ffill().to_numpy()
    if n_f and np.isnan(mid_ff[kind == FILL]).any():
        raise ValueError("a fill happened before any top of book was recorded")
    mid_ff = np.nan_to_num(mid_ff)
    inv = np.cumsum(side * qty)
    cash = np.cumsum(-side * px * qty - fee)
    spread = np.cumsum(np.where(kind == FILL, side * (mid_ff - px) * qty, 0.0))
    fees = np.cumsum(fee)
    paid = np.cumsum(cost)
    prev_mid = np.concatenate([[np.nan], pd.Series(mid_col).ffill().to_numpy()[:-1]])
    dmid = np.where((kind == BOOK) & ~np.isnan(prev_mid), mid_col - prev_mid, 0.0)
    inv_pnl = np.cumsum(inv * dmid)
    return pd.DataFrame({
        "ts": ts, "kind": kind, "mid": mid_ff, "inventory": inv, "cash": cash,
        "equity": cash + inv * mid_ff - paid, "spread": spread, "inv_pnl": inv_pnl, "fees": fees, "costs": paid,
    }, copy=False)


def _fees_in_quote(fills: pd.DataFrame, quote_currency: str) -> np.ndarray:
    """Commissions in the quote currency; one charged in the base currency is valued at the fill price."""
    if fills.empty:
        return np.zeros(0)
    fee = fills["commission"].to_numpy(float)
    in_base = (fills["commission_currency"] != quote_currency).to_numpy()
    return np.where(in_base, fee * fills["price"].to_numpy(float), fee)


def _sample(timeline: pd.DataFrame, start_ns: int, end_ns: int, step_ns: int) -> pd.DataFrame:
    grid = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64)
    if grid[-1] != end_ns:
        grid = np.append(grid, end_ns)
    idx = np.searchsorted(timeline["ts"].to_numpy(np.int64), grid, side="right") - 1
    before_first, at = idx < 0, np.clip(idx, 0, None)
    # Columns gathered first and framed once: a frame grown a column at a time copies its block as
    # it goes, ~3x the equity's size at the end of a day's run, when the run's memory peaks.
    names = {"mid": "mid", "inventory": "inventory", "cash": "cash", "equity": "equity",
             "spread": "pnl_spread_capture", "inv_pnl": "pnl_inventory", "fees": "fees_paid", "costs": "costs_paid"}
    out = {"ts": grid}
    for col, name in names.items():
        out[name] = np.where(before_first, np.nan if col == "mid" else 0.0, timeline[col].to_numpy(float)[at])
    out["pnl_total"] = out["equity"].copy()  # its own column, not a view of the equity
    return pd.DataFrame(out, copy=False)


def _durations(ts: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    """Time each step-function row holds, clipped to the run window."""
    ts = np.clip(ts, start_ns, end_ns)
    nxt = np.append(ts[1:], end_ns)
    return np.maximum(nxt - ts, 0).astype(float)


def _quote_uptime(quotes: pd.DataFrame, start_ns: int, end_ns: int) -> float:
    if quotes.empty or end_ns <= start_ns:
        return 0.0
    ts = quotes["ts"].to_numpy(np.int64)
    two_sided = ((quotes["n_bids"] > 0) & (quotes["n_asks"] > 0)).to_numpy()
    return float((_durations(ts, start_ns, end_ns) * two_sided).sum() / (end_ns - start_ns))


def _fill_markouts(fills: pd.DataFrame, tob_ts: np.ndarray, mid: np.ndarray, end_ns: int, h: int) -> np.ndarray:
    if fills.empty:
        return np.zeros(0)
    target = fills["ts"].to_numpy(np.int64) + h
    idx = np.searchsorted(tob_ts, target, side="right") - 1
    px = fills["price"].to_numpy(float)
    out = fills["side"].to_numpy(float) * (mid[np.clip(idx, 0, None)] - px) / px * 1e4
    return np.where(target <= end_ns, out, np.nan)


def _markouts(fills: pd.DataFrame, tob_ts: np.ndarray, mid: np.ndarray, end_ns: int) -> dict:
    result = {}
    for horizon, seconds in MARKOUT_HORIZONS.items():
        m = _fill_markouts(fills, tob_ts, mid, end_ns, int(seconds * NS))
        ok = ~np.isnan(m)
        w = fills["qty"].to_numpy(float)[ok] if len(fills) else np.zeros(0)
        result[horizon] = float(np.sum(m[ok] * w) / np.sum(w)) if w.sum() > 0 else None
    return result


def _inventory_stats(timeline: pd.DataFrame, limits: Limits, start_ns: int, end_ns: int) -> dict:
    ts = timeline["ts"].to_numpy(np.int64)
    inv = timeline["inventory"].to_numpy(float)
    mid = timeline["mid"].to_numpy(float)
    dur = _durations(ts, start_ns, end_ns)
    total = dur.sum()
    if total <= 0:
        return {"inventory_mean": 0.0, "inventory_std": 0.0, "inventory_max_abs": float(np.abs(inv).max(initial=0)),
                "time_at_limit_pct": 0.0}
    mean = float((inv * dur).sum() / total)
    std = float(math.sqrt(max(((inv - mean) ** 2 * dur).sum() / total, 0.0)))
    room = np.minimum(limits.max_position - np.abs(inv),
                      limits.max_notional / np.where(mid > 0, mid, np.inf) - np.abs(inv))
    at_limit = room < limits.order_size
    return {
        "inventory_mean": mean,
        "inventory_std": std,
        "inventory_max_abs": float(np.abs(inv).max(initial=0.0)),
        "time_at_limit_pct": float(100 * (dur * at_limit).sum() / total),
    }


def horizon_changes(timeline: pd.DataFrame, start_ns: int, end_ns: int, step_ns: int = RISK_HORIZON_NS) -> np.ndarray:
    """Equity change over each complete `step_ns` from the start of the run.

    A trailing partial step is left out: it would be a shorter return counted as a full one.
    """
    steps = max((end_ns - start_ns) // step_ns, 0)
    if steps == 0:
        return np.zeros(0)
    equity = _sample(timeline, start_ns, start_ns + steps * step_ns, step_ns)["equity"].to_numpy(float)
    return np.diff(equity)


def sharpe_ratio(changes: np.ndarray) -> dict:
    """Mean over standard deviation of the per-horizon PnL changes, with its uncertainty.

    The standard error is the delta method's on the sample's own moments (Mertens 2002), so fat
    tails and skew in a market maker's PnL widen the interval; for normal changes it is Lo's
    (2002) sqrt((1 + SR^2 / 2) / n). Changes are taken as serially independent.
    """
    x = np.asarray(changes, float)
    if len(x) < MIN_RISK_SAMPLES:
        return _ratio(len(x), None, None, "too_short")
    sd = x.std(ddof=1)
    if not sd > 0:
        return _ratio(len(x), None, None, "undefined")
    sr = x.mean() / sd
    dev = x - x.mean()
    m2 = np.mean(dev**2)
    skew, kurt = np.mean(dev**3) / m2**1.5, np.mean(dev**4) / m2**2
    variance = (1 + sr**2 * (kurt - 1) / 4 - sr * skew) / len(x)  # >= 0, as kurt >= 1 + skew^2
    return _ratio(len(x), sr, math.sqrt(max(variance, 0.0)), "ok")


def sortino_ratio(changes: np.ndarray) -> dict:
    """Mean change over the root mean square of the negative changes (target 0), with uncertainty.

    The standard error is the delta method's for mu / sqrt(D), D = mean(min(x, 0)^2), from the
    sample covariance of (x, min(x, 0)^2); "undefined" when no horizon lost money.
    """
    x = np.asarray(changes, float)
    if len(x) < MIN_RISK_SAMPLES:
        return _ratio(len(x), None, None, "too_short")
    d = np.minimum(x, 0.0) ** 2
    mu, down = x.mean(), d.mean()
    if not down > 0:
        return _ratio(len(x), None, None, "undefined")
    cov = np.cov(np.vstack([x, d]), ddof=0)
    variance = (cov[0, 0] / down - mu * cov[0, 1] / down**2 + mu**2 * cov[1, 1] / (4 * down**3)) / len(x)
    return _ratio(len(x), mu / math.sqrt(down), math.sqrt(max(variance, 0.0)), "ok")


def _ratio(n: int, per_period: float | None, se: float | None, status: str) -> dict:
    """A risk ratio as metrics.json holds it: the per-horizon value, its interval, and the
    annualised value only when the run is long enough (status "not_annualised" otherwise)."""
    out = {"horizon": RISK_HORIZON, "n": int(n), "per_period": None, "se": None, "ci_level": CI_LEVEL,
           "ci_low": None, "ci_high": None, "periods_per_year": MINUTES_PER_YEAR, "annualised": None,
           "annualised_ci_low": None, "annualised_ci_high": None, "status": status}
    if per_period is None:
        return out
    low, high = per_period - CI_Z * se, per_period + CI_Z * se
    out.update(per_period=float(per_period), se=float(se), ci_low=float(low), ci_high=float(high))
    if n < ANNUALISE_MIN_SAMPLES:
        out["status"] = "not_annualised"
        return out
    factor = math.sqrt(MINUTES_PER_YEAR)
    out.update(annualised=float(per_period * factor), annualised_ci_low=float(low * factor),
               annualised_ci_high=float(high * factor))
    return out


def pnl_rate(changes: np.ndarray) -> dict:
    """PnL per hour as the mean per-horizon change scaled to an hour, with its standard error
    (sd * 60 / sqrt(n), changes taken as independent) and interval from MIN_RISK_SAMPLES on.

    Unlike pnl_total, this compares runs of different lengths, and its interval says whether
    two runs differ by more than their noise.
    """
    x = np.asarray(changes, float)
    out = {"per": "hour", "horizon": RISK_HORIZON, "n": int(len(x)), "mean": None, "change_std": None, "se": None,
           "ci_level": CI_LEVEL, "ci_low": None, "ci_high": None}
    if len(x):
        out["mean"] = float(x.mean() * HORIZONS_PER_HOUR)
    if len(x) >= MIN_RISK_SAMPLES:
        sd = float(x.std(ddof=1))
        se = sd * HORIZONS_PER_HOUR / math.sqrt(len(x))
        out.update(change_std=sd, se=se, ci_low=out["mean"] - CI_Z * se, ci_high=out["mean"] + CI_Z * se)
    return out


def pnl_per_drawdown(pnl_total: float, max_drawdown: float) -> float | None:
    """PnL earned per unit of the worst fall from a peak: a risk-adjusted figure that claims
    nothing about a year, so it ranks runs of any length. Null without a drawdown."""
    return float(pnl_total / max_drawdown) if max_drawdown > 0 else None


def _spread_improvement(tob: pd.DataFrame, quotes: pd.DataFrame, start_ns: int, end_ns: int) -> float:
    if quotes.empty or end_ns <= start_ns:
        return 0.0
    ts = np.union1d(tob["ts"].to_numpy(np.int64), quotes["ts"].to_numpy(np.int64))
    ti = np.searchsorted(tob["ts"].to_numpy(np.int64), ts, side="right") - 1
    qi = np.searchsorted(quotes["ts"].to_numpy(np.int64), ts, side="right") - 1
    valid = ti >= 0
    mb = tob["bid"].to_numpy(float)[np.clip(ti, 0, None)]
    ma = tob["ask"].to_numpy(float)[np.clip(ti, 0, None)]
    ob = np.where(qi >= 0, quotes["bid"].to_numpy(float)[np.clip(qi, 0, None)], np.nan)
    oa = np.where(qi >= 0, quotes["ask"].to_numpy(float)[np.clip(qi, 0, None)], np.nan)
    best_bid = np.where(np.isnan(ob), mb, np.maximum(mb, np.nan_to_num(ob, nan=-np.inf)))
    best_ask = np.where(np.isnan(oa), ma, np.minimum(ma, np.nan_to_num(oa, nan=np.inf)))
    s_mkt = ma - mb
    s_comb = np.maximum(best_ask - best_bid, 0.0)
    improvement = np.where(valid & (s_mkt > 0), np.clip((s_mkt - s_comb) / np.where(s_mkt > 0, s_mkt, 1), 0, 1), 0.0)
    dur = _durations(ts, start_ns, end_ns)
    return float(100 * (improvement * dur).sum() / (end_ns - start_ns))


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
