"""The market-making summary printed at the end of a backtest."""

from __future__ import annotations

from backtests.metrics import ANNUALISE_MIN_SAMPLES, HORIZONS_PER_HOUR, MIN_RISK_SAMPLES
from backtests.sweep import rank

UNDEFINED = {"sharpe": "the PnL never varied", "sortino": "no period lost money"}


def _fmt(value, spec: str = ",.4f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def ratio_text(ratio, name: str = "sharpe") -> str:
    """A risk ratio as a quant can check it: per-horizon value, 90% interval and sample count, and
    the annualised value only when the run was long enough to annualise."""
    if isinstance(ratio, (int, float)):  # a run written before ratios carried their sample size
        return f"{ratio:,.2f} annualised (older run: no sample count or interval recorded)"
    if not isinstance(ratio, dict):
        return "n/a"
    n, horizon = ratio["n"], ratio["horizon"]
    if ratio["status"] == "too_short":
        return f"n/a (too short: {n:,} {horizon} changes, needs {MIN_RISK_SAMPLES})"
    if ratio["status"] == "undefined":
        return f"n/a (undefined over {n:,} {horizon} changes: {UNDEFINED.get(name, 'no spread')})"
    text = (f"{ratio['per_period']:+.3f} per {horizon} [{ratio['ci_low']:+.3f}, {ratio['ci_high']:+.3f}] "
            f"({ratio['ci_level']:.0%} CI), n={n:,}")
    if ratio["annualised"] is None:
        return text + f"; not annualised (fewer than {ANNUALISE_MIN_SAMPLES:,} changes, a day)"
    return text + (f"; annualised {ratio['annualised']:+,.1f} [{ratio['annualised_ci_low']:+,.1f}, "
                   f"{ratio['annualised_ci_high']:+,.1f}]")


def rate_unit(rate: dict) -> tuple[str, float]:
    """Per day for a run of a day or more, else per hour (the stored rate is per hour)."""
    return ("day", 24.0) if rate["n"] >= 24 * HORIZONS_PER_HOUR else ("hour", 1.0)


def rate_text(rate) -> str:
    """PnL per hour (per day for runs of a day or more) with its 90% interval and sample count."""
    if not isinstance(rate, dict) or rate.get("mean") is None:
        return "n/a (no complete minute)"
    unit, k = rate_unit(rate)
    text = f"{rate['mean'] * k:+,.4f} per {unit}"
    if rate["se"] is None:
        return text + f" (no interval: {rate['n']:,} {rate['horizon']} changes, needs {MIN_RISK_SAMPLES})"
    return text + (f" ± {(rate['ci_high'] - rate['mean']) * k:,.4f} ({rate['ci_level']:.0%} CI), "
                   f"n={rate['n']:,} {rate['horizon']} changes")


def _signal(sig: dict | None) -> str:
    if not sig:
        return "off"
    return (f"{sig['model_id']}: {sig['model_blocks']:,} model / {sig['fallback_blocks']:,} fallback blocks, "
            f"trips {sig['trips']}, inference p50/p99 {_fmt(sig['inference_us_p50'], ',.1f')}/"
            f"{_fmt(sig['inference_us_p99'], ',.1f')} us")


def _fill_model(m: dict) -> str:
    if m["fill_model"] == "cross":
        return "cross (NautilusTrader L2 matching: fills only when the book crosses us)"
    power = f" n={m['queue_power']:g}" if m.get("queue_power") is not None else ""
    return f"queue ({m.get('queue_model')}{power}: queue position, prints and book crosses fill us)"


def summary(metrics: dict, run_dir=None) -> str:
    """The report `flashmm backtest` prints, in the run's own currencies (metrics' instrument)."""
    m = metrics
    inst = m["instrument"]
    quote, base = inst["quote"], inst["base"]
    size = f",.{inst['size_precision']}f"  # sizes as precise as the instrument's lot
    venue = m.get("venue") or {}
    rows = [
        ("PnL", [
            (f"total ({quote}, marked at mid)", _fmt(m["pnl_total"])),
            ("  spread capture", _fmt(m["pnl_spread_capture"])),
            ("  inventory", _fmt(m["pnl_inventory"])),
            ("  fees paid", _fmt(m["fees_paid"])),
            (f"  action costs ({m.get('actions_sent', 0):,} x {_fmt(venue.get('action_cost'), 'g')})",
             _fmt(m.get("costs_paid"))),
            (f"PnL rate ({quote})", rate_text(m.get("pnl_rate"))),
            (f"max drawdown ({quote})", _fmt(m["max_drawdown"])),
            ("PnL / max drawdown", _fmt(m.get("pnl_per_drawdown"), ",.2f")),
            ("sharpe", ratio_text(m["sharpe"], "sharpe")),
            ("sortino", ratio_text(m["sortino"], "sortino")),
        ]),
        ("Execution", [
            (f"fills / maker volume ({base})", f"{m['fill_count']:,} / {_fmt(m['maker_volume'], size)}"),
            ("orders submitted", f"{m.get('orders_submitted', 0):,}"),
            ("fill ratio", _fmt(m["fill_ratio"], ".2%")),
            ("cancel-to-fill", _fmt(m["cancel_to_fill"], ",.1f")),
            (f"turnover ({quote})", _fmt(m["turnover"], ",.2f")),
            ("quote uptime (two-sided)", _fmt(m["quote_uptime"], ".1%")),
            ("spread improvement", f"{_fmt(m['spread_improvement_pct'], '.2f')} %"),
            (f"markout bps {'/'.join(m['markout_bps'])}",
             " / ".join(_fmt(v, "+.2f") for v in m["markout_bps"].values())),
        ]),
        (f"Inventory ({base})", [
            ("mean / std", f"{_fmt(m['inventory_mean'], size)} / {_fmt(m['inventory_std'], size)}"),
            ("max |inventory|", _fmt(m["inventory_max_abs"], size)),
            ("time at limit", f"{_fmt(m['time_at_limit_pct'], '.2f')} %"),
        ]),
        ("Run", [
            ("instrument / venue", f"{inst['id']} / {venue.get('profile') or 'n/a'}"),
            ("fill model", _fill_model(m)),
            ("latency", f"{_fmt(m.get('latency_ms'), ',.0f')} ms"),
            ("window", f"{m['window']['start']} .. {m['window']['end']}"),
            ("events / wall", f"{m['events_processed']:,} in {m['wall_seconds']:.2f} s "
             f"({m['events_processed'] / max(m['wall_seconds'], 1e-9):,.0f} ev/s)"),
            ("halted", f"yes: {m['halt_reason']}" if m.get("halted") else "no"),
            ("signal", _signal(m.get("signal"))),
            ("data", "SYNTHETIC sample" if m.get("synthetic_data") else "recorded"),
        ]),
    ]
    width = max(len(k) for _, items in rows for k, _ in items) + 2
    lines = []
    for title, items in rows:
        lines.append(f"== {title} ==")
        lines.extend(f"  {k:<{width}}{v}" for k, v in items)
    if run_dir is not None:
        lines.append(f"\nRun written to {run_dir}")
    return "\n".join(lines)


ABLATION_ROWS = [
    ("pnl_total", ",.4f"), ("pnl_spread_capture", ",.4f"), ("pnl_inventory", ",.4f"), ("fees_paid", ",.4f"),
    ("costs_paid", ",.4f"), ("orders_submitted", ","),
    ("pnl_rate.mean", "+,.4f"), ("pnl_rate.se", ",.4f"), ("max_drawdown", ",.4f"), ("pnl_per_drawdown", ",.2f"),
    ("sharpe.per_period", "+.3f"), ("sharpe.ci_low", "+.3f"), ("sharpe.ci_high", "+.3f"), ("sharpe.n", ","),
    ("fill_count", ","), ("maker_volume", ",.1f"),
    ("fills_at_touch", ","), ("cancel_to_fill", ",.1f"), ("quote_uptime", ".1%"),
    ("spread_improvement_pct", ".2f"), ("inventory_std", ",.1f"), ("inventory_max_abs", ",.1f"),
]


def side_by_side(runs: dict[str, dict]) -> str:
    """Metrics of several runs of one window in columns (e.g. the signal ablation)."""
    labels = list(runs)
    width = max(len(label) for label in labels) + 2
    lines = [f"{'metric':<26}" + "".join(f"{label:>{max(width, 14)}}" for label in labels)]
    horizons = next(iter(runs.values()))["markout_bps"]
    rows = list(ABLATION_ROWS) + [(f"markout_bps.{h}", "+.2f") for h in horizons]
    for key, spec in rows:
        cells = [_fmt(_field(runs[label], key), spec) for label in labels]
        lines.append(f"{key:<26}" + "".join(f"{c:>{max(width, 14)}}" for c in cells))
    for label in labels:
        sig = runs[label].get("signal")
        if sig:
            lines.append(f"{label}: model {sig['model_id']}, model blocks {sig['model_blocks']:,}, fallback blocks "
                         f"{sig['fallback_blocks']:,}, trips {sig['trips']}, inference p50/p99 "
                         f"{_fmt(sig['inference_us_p50'], ',.1f')}/{_fmt(sig['inference_us_p99'], ',.1f')} us")
    window = next(iter(runs.values()))["window"]
    lines.append(f"window {window['start']} .. {window['end']}")
    return "\n".join(lines)


def _field(metrics: dict, key: str):
    """metrics["a"]["b"] for "a.b"; None when any part is missing or not an object."""
    value = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# Shown next to the ranking metric; a column that is null for every point is left out and said so.
SWEEP_COLUMNS = ["pnl_total", "max_drawdown", "pnl_per_drawdown", "pnl_rate.mean", "sharpe.per_period", "sharpe.n",
                 "fill_count"]


def sweep_summary(result, metric: str, top: int) -> str:
    """The sweep's top points by `metric`, per window when it walked forward, then the walk-forward table."""
    results = result.results
    extra = [c for c in dict.fromkeys([metric, *SWEEP_COLUMNS]) if c in results]
    empty = [c for c in extra if c != metric and results[c].isna().all()]
    shown = ["window"] * ("window" in results) + result.params + [c for c in extra if c not in empty] + ["run_dir"]
    groups = results.groupby("window") if "window" in results else [(None, results)]
    lines = [f"{len(results)} points: {result.ran} run, {result.skipped} already finished (skipped), "
             f"{len(result.failures)} failed"]
    if results[metric].isna().all():
        lines.append(f"{metric} is n/a for every point{_too_short(results, [metric])}, so the tables below are in "
                     f"no order: rank by pnl_per_drawdown, or run longer windows")
    if empty:
        lines.append(f"n/a for every point, so not shown: {', '.join(empty)}{_too_short(results, empty)}")
    for window, table in groups:
        title = f"top {top} by {metric}" + (f", window {table['run.start'].iloc[0]} .. {table['run.end'].iloc[0]}"
                                             if window is not None else "")
        lines += ["", f"== {title} ==", rank(table, metric, top)[shown].to_string(index=False, float_format=_g)]
    if result.walk_forward is not None and not result.walk_forward.empty:
        lines += ["", "== walk-forward: tuned on one window, reported on the next ==",
                  result.walk_forward.to_string(index=False, float_format=_g)]
    for point_id, error in result.failures.items():
        lines += ["", f"point {point_id} failed:", error.rstrip()]
    lines += ["", f"results: {result.out / 'results.parquet'}", f"open it in the app: flashmm app --runs {result.out}"]
    return "\n".join(lines)


def _too_short(results, columns: list[str]) -> str:
    """Why risk-ratio columns are n/a everywhere, when that is the reason: the runs are too short."""
    if "sharpe.n" not in results or results["sharpe.n"].isna().all() or any(
            c.split(".")[0] not in ("sharpe", "sortino", "pnl_rate") for c in columns):
        return ""
    longest = int(results["sharpe.n"].max())
    return (f" (risk ratios need {MIN_RISK_SAMPLES} 1-minute changes; these runs have at most {longest})"
            if longest < MIN_RISK_SAMPLES else "")


def _g(value: float) -> str:
    return format(value, ",.4g")
