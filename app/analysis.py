"""What the app derives from a run's frames: downsampled series, markout curve, order statistics,
signal calibration and the Pareto front. Plain pandas, so each is tested without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.metrics import CI_LEVEL, CI_Z, MARKOUT_HORIZONS, MIN_RISK_SAMPLES
from backtests.report import rate_unit

# A plotly line with more points than a screen has pixels only slows the browser; 24 h of 1 s
# equity is 86,400 points, and a day of quote changes several times that.
MAX_POINTS = 4_000
MAX_MARKERS = 3_000
SIGNAL_HORIZON_S = 2.0  # the shortest move the 1 s equity sample resolves honestly


def minmax_downsample(frame: pd.DataFrame, x: str, columns: list[str], max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Keep, per time bucket, the rows holding each column's min and max (plus the first and last row).

    Unlike striding, this keeps every spike and gap a person would want to see; the result has
    at most about `max_points` rows and stays in time order.
    """
    if len(frame) <= max_points:
        return frame
    frame = frame.reset_index(drop=True)
    n_buckets = max(1, max_points // (2 * max(len(columns), 1)))
    xs = frame[x].to_numpy(np.int64)
    span = max(int(xs[-1] - xs[0]), 1)
    bucket = pd.Series(((xs - xs[0]).astype(np.float64) * n_buckets / (span + 1)).astype(np.int64))
    keep = {0, len(frame) - 1}
    for column in columns:
        values = frame[column]
        valid = values.notna()
        if valid.any():
            grouped = values[valid].groupby(bucket[valid])
            keep.update(grouped.idxmin().tolist())
            keep.update(grouped.idxmax().tolist())
    return frame.loc[sorted(keep)]


def thin(frame: pd.DataFrame, max_rows: int = MAX_MARKERS) -> pd.DataFrame:
    """Every k-th row, so markers (fills) stay readable and fast; the caption says when this happened."""
    if len(frame) <= max_rows:
        return frame
    return frame.iloc[:: int(np.ceil(len(frame) / max_rows))]


def to_time(ns: pd.Series) -> pd.Series:
    return pd.to_datetime(ns.astype("int64"), unit="ns", utc=True)


def markout_curve(fills: pd.DataFrame) -> pd.DataFrame:
    """Quantity-weighted markout (bps) at each horizon, for all fills, buys and sells."""
    rows = []
    for horizon, seconds in MARKOUT_HORIZONS.items():
        column = f"markout_{horizon}_bps"
        row = {"horizon": horizon, "seconds": seconds}
        sides = (("all", fills), ("buys", fills[fills["side"] == 1]), ("sells", fills[fills["side"] == -1]))
        for label, subset in sides:
            valid = subset[subset[column].notna()] if column in subset else subset.iloc[0:0]
            row[label] = float(np.average(valid[column], weights=valid["qty"])) if len(valid) else None
        rows.append(row)
    return pd.DataFrame(rows)


def order_stats(orders: pd.DataFrame, fills: pd.DataFrame, metrics: dict) -> pd.DataFrame:
    """Fill ratio, queue and latency figures as one table of (statistic, value)."""
    lifetime_s = (orders["ts_last"] - orders["ts_init"]) / 1e9
    first_fill = fills.groupby("client_order_id")["ts"].min()
    filled = orders.set_index("client_order_id").join(first_fill.rename("first_fill_ts"), how="inner")
    to_fill_s = (filled["first_fill_ts"] - filled["ts_init"]) / 1e9
    queue = metrics.get("queue_fills") or {}
    rows = [
        ("orders submitted", len(orders)),
        ("orders with a fill", int((orders["filled_qty"] > 0).sum())),
        ("fill ratio (filled / submitted)", _number(metrics.get("fill_ratio"), ".2%")),
        ("fills / fills at the touch", f"{metrics.get('fill_count')} / {metrics.get('fills_at_touch')}"),
        ("cancel-to-fill", _number(metrics.get("cancel_to_fill"), ",.1f")),
        ("queue fills from prints / book crosses",
         f"{queue.get('trade_fills', 'n/a')} / {queue.get('cross_fills', 'n/a')}"),
        ("fill model", f"{metrics.get('fill_model')} ({metrics.get('queue_model') or 'no queue model'})"),
        ("order latency (ms)", metrics.get("latency_ms")),
        ("time to first fill p50 / p90 (s)", _quantiles(to_fill_s)),
        ("order lifetime p50 / p90 (s)", _quantiles(lifetime_s)),
        ("cancelled order lifetime p50 (s)", _quantiles(lifetime_s[orders["status"] == "CANCELED"], (0.5,))),
    ]
    stats = metrics.get("strategy_stats") or {}
    rows += [(f"strategy: {key.replace('_', ' ')}", value) for key, value in stats.items()]
    rows += [(f"orders {status.lower()}", int(n)) for status, n in orders["status"].value_counts().items()]
    return pd.DataFrame(rows, columns=["statistic", "value"]).astype({"value": str})


def signal_horizon(signal: pd.DataFrame) -> float:
    """The horizon to compare a run's signal over: the model's own (signal.parquet's horizon_s), but
    never under SIGNAL_HORIZON_S, the shortest the 1 s equity sample resolves."""
    if "horizon_s" in signal:
        h = pd.to_numeric(signal["horizon_s"], errors="coerce").dropna()
        if len(h):
            return max(float(h.iloc[-1]), SIGNAL_HORIZON_S)
    return SIGNAL_HORIZON_S


def signal_vs_realised(signal: pd.DataFrame, equity: pd.DataFrame, bins: int = 10,
                       horizon_s: float = SIGNAL_HORIZON_S) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each row's expected move against the mid's realised move over the next `horizon_s`.

    Returns (per-row pairs, mean realised move per quantile bin of the expected move). The
    realised move is read from the 1 s equity sample, the finest mid the run dir keeps.
    """
    mids = equity[["ts", "mid"]].dropna().sort_values("ts")
    blocks = signal[["ts", "expected_move_bps", "confidence", "fallback"]].sort_values("ts")
    now = pd.merge_asof(blocks, mids, on="ts", direction="backward")
    later = pd.merge_asof(blocks.assign(ts=blocks["ts"] + int(horizon_s * 1e9))[["ts"]], mids, on="ts",
                          direction="backward")
    pairs = now.assign(realised_bps=(later["mid"].to_numpy() - now["mid"].to_numpy()) / now["mid"].to_numpy() * 1e4)
    horizon_end = blocks["ts"].to_numpy() + int(horizon_s * 1e9)
    known = (horizon_end <= mids["ts"].iloc[-1]) if len(mids) else False
    pairs = pairs[known & pairs["realised_bps"].notna()]
    if pairs["expected_move_bps"].nunique() < 2:
        return pairs, pd.DataFrame(columns=["expected_bps", "realised_bps", "blocks"])
    quantile = pd.qcut(pairs["expected_move_bps"], q=bins, duplicates="drop")
    binned = pairs.groupby(quantile, observed=True).agg(
        expected_bps=("expected_move_bps", "mean"), realised_bps=("realised_bps", "mean"),
        blocks=("realised_bps", "size")).reset_index(drop=True)
    return pairs, binned


def heatmap_table(results: pd.DataFrame, metric: str, x: str, y: str, max_levels: int = 8) -> pd.DataFrame:
    """Mean `metric` per (y, x) cell. A numeric axis with more than `max_levels` distinct values (a
    random search) is cut into `max_levels` quantile bins, or nearly every cell would be empty."""
    frame = results[[x, y, metric]].copy()
    for axis in (x, y):
        values = frame[axis]
        if values.nunique() > max_levels and pd.api.types.is_numeric_dtype(values):
            frame[axis] = pd.qcut(values, q=max_levels, duplicates="drop")  # ordered intervals
    table = frame.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", observed=True)

    def label(value):
        return f"{value.left:.4g} .. {value.right:.4g}" if isinstance(value, pd.Interval) else value

    return table.rename(index=label, columns=label)


def pareto_front(frame: pd.DataFrame, gain: str = "pnl_total", risk: str = "max_drawdown") -> pd.Series:
    """True for points no other point beats on both: more `gain` and no more `risk`, or vice versa."""
    values = frame[[gain, risk]].astype(float)
    ok = values.notna().all(axis=1)
    g, r = values[gain].to_numpy(), values[risk].to_numpy()
    front = []
    for i in range(len(frame)):
        if not ok.iloc[i]:
            front.append(False)
            continue
        dominated = ok.to_numpy() & (g >= g[i]) & (r <= r[i]) & ((g > g[i]) | (r < r[i]))
        front.append(not dominated.any())
    return pd.Series(front, index=frame.index)


def ratio_label(ratio) -> str:
    """The run page's Sharpe card title: annualised only when metrics.json annualised it."""
    if isinstance(ratio, dict) and ratio.get("annualised") is not None:
        return f"Sharpe, annualised ({ratio['ci_level']:.0%} CI)"
    if isinstance(ratio, dict) and ratio.get("per_period") is not None:
        return f"Sharpe per {ratio['horizon']} ({ratio['ci_level']:.0%} CI)"
    return "Sharpe"


def ratio_card(ratio) -> str:
    """The Sharpe card's value: the estimate ± half its (symmetric) interval, or why there is none.
    Short enough for a card; the caption under the cards has the interval's ends and n."""
    if not isinstance(ratio, dict):
        return "n/a" if ratio is None else f"{ratio:,.2f} (older run)"
    if ratio.get("annualised") is not None:
        return f"{ratio['annualised']:+,.1f} ± {ratio['annualised_ci_high'] - ratio['annualised']:,.1f}"
    if ratio.get("per_period") is not None:
        return f"{ratio['per_period']:+.3f} ± {ratio['ci_high'] - ratio['per_period']:.3f}"
    return "n/a (too short)" if ratio.get("status") == "too_short" else "n/a (undefined)"


def rate_card(rate, per_unit: float = 1.0) -> str:
    """The PnL-rate card's value, scaled from per hour by `per_unit`: mean ± half its 90% interval."""
    if not isinstance(rate, dict) or rate.get("mean") is None:
        return "n/a"
    if rate.get("se") is None:
        return f"{_short(rate['mean'] * per_unit, '+')} (no CI)"
    return f"{_short(rate['mean'] * per_unit, '+')} ± {_short((rate['ci_high'] - rate['mean']) * per_unit)}"


def _short(value: float, sign: str = "") -> str:
    """Three significant digits, without an exponent for the sizes money comes in."""
    return format(value, f"{sign},.0f") if abs(value) >= 100 else format(value, f"{sign}.3g")


def compare_rates(rates: dict[str, dict | None], money: str) -> tuple[str, pd.DataFrame]:
    """Whether two runs' PnL per hour differ by more than their noise, in words, and the rates.

    Welch's difference of two means: (m_a - m_b) with standard error sqrt(se_a^2 + se_b^2), called
    larger than its noise when outside the two-sided CI_LEVEL band. It treats the runs as
    independent; two runs on the same window share the market's moves, so for them this errs
    toward "within its noise".
    """
    (name_a, a), (name_b, b) = rates.items()
    missing = [n for n, r in rates.items() if not isinstance(r, dict) or r.get("mean") is None]
    if missing:
        return (f"No PnL rate for {', '.join(missing)} (a run with no complete minute, or from before rates were "
                "recorded), so the rates cannot be compared."), pd.DataFrame()
    units = {rate_unit(r) for r in (a, b)}
    unit, k = units.pop() if len(units) == 1 else ("hour", 1.0)  # per day only when both ran a day or more
    table = pd.DataFrame([{"run": n, f"PnL per {unit} ({money})": r["mean"] * k,
                           f"± ({CI_LEVEL:.0%} CI)": (r["ci_high"] - r["mean"]) * k if r["se"] is not None else None,
                           "1-minute changes": r["n"]} for n, r in rates.items()])
    short = [f"{n} has {r['n']}" for n, r in rates.items() if r.get("se") is None]
    if short:
        return (f"Too short to tell whether the PnL rates differ: {' and '.join(short)} 1-minute changes; the noise "
                f"of a rate is estimated from {MIN_RISK_SAMPLES} on."), table
    diff, se = a["mean"] - b["mean"], float(np.hypot(a["se"], b["se"]))
    if se == 0:
        return (f"Neither run's PnL changed from minute to minute; the rates differ by {diff * k:+,.4f} {money} "
                f"per {unit}."), table
    z = diff / se
    what = (f"{name_a} minus {name_b}: {diff * k:+,.4f} {money} per {unit}, ± {CI_Z * se * k:,.4f} at "
            f"{CI_LEVEL:.0%} (z = {z:+.2f})")
    if abs(z) > CI_Z:
        return f"{what}. The difference is larger than its noise: {name_a if diff > 0 else name_b} earns more.", table
    return f"{what}. The difference is within its noise: these runs cannot be told apart on PnL rate.", table


def _number(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _quantiles(values: pd.Series, qs: tuple[float, ...] = (0.5, 0.9)) -> str:
    values = values.dropna()
    return " / ".join(f"{values.quantile(q):,.2f}" for q in qs) if len(values) else "n/a"
