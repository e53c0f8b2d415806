"""The market-making summary printed at the end of a backtest."""

from __future__ import annotations

from backtests.sweep import rank


def _fmt(value, spec: str = ",.4f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


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
            ("sharpe / sortino (ann.)", f"{_fmt(m['sharpe'], ',.2f')} / {_fmt(m['sortino'], ',.2f')}"),
            (f"max drawdown ({quote})", _fmt(m["max_drawdown"])),
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
    ("sharpe", ",.2f"), ("max_drawdown", ",.4f"), ("fill_count", ","), ("maker_volume", ",.1f"),
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
        cells = []
        for label in labels:
            m = runs[label]
            value = m["markout_bps"][key.split(".", 1)[1]] if key.startswith("markout_bps.") else m.get(key)
            cells.append(_fmt(value, spec))
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


def sweep_summary(result, metric: str, top: int) -> str:
    """The sweep's top points by `metric`, per window when it walked forward, then the walk-forward table."""
    shown = ["window"] * ("window" in result.results) + result.params + list(dict.fromkeys(
        [metric, "pnl_total", "max_drawdown", "sharpe", "fill_count", "run_dir"]))
    groups = result.results.groupby("window") if "window" in result.results else [(None, result.results)]
    lines = [f"{len(result.results)} points: {result.ran} run, {result.skipped} already finished (skipped), "
             f"{len(result.failures)} failed"]
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


def _g(value: float) -> str:
    return format(value, ",.4g")
