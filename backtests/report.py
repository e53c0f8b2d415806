"""The market-making summary printed at the end of a backtest."""

from __future__ import annotations


def _fmt(value, spec: str = ",.4f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def _fill_model(m: dict) -> str:
    if m["fill_model"] == "cross":
        return "cross (NautilusTrader L2 matching: fills only when the book crosses us)"
    power = f" n={m['queue_power']:g}" if m.get("queue_power") is not None else ""
    return f"queue ({m.get('queue_model')}{power}: queue position, prints and book crosses fill us)"


def summary(metrics: dict, run_dir=None) -> str:
    m = metrics
    rows = [
        ("PnL", [
            ("total (USDC, marked at mid)", _fmt(m["pnl_total"])),
            ("  spread capture", _fmt(m["pnl_spread_capture"])),
            ("  inventory", _fmt(m["pnl_inventory"])),
            ("  fees paid", _fmt(m["fees_paid"])),
            ("sharpe / sortino (ann.)", f"{_fmt(m['sharpe'], ',.2f')} / {_fmt(m['sortino'], ',.2f')}"),
            ("max drawdown (USDC)", _fmt(m["max_drawdown"])),
        ]),
        ("Execution", [
            ("fills / maker volume (SEI)", f"{m['fill_count']:,} / {_fmt(m['maker_volume'], ',.1f')}"),
            ("orders submitted", f"{m.get('orders_submitted', 0):,}"),
            ("fill ratio", _fmt(m["fill_ratio"], ".2%")),
            ("cancel-to-fill", _fmt(m["cancel_to_fill"], ",.1f")),
            ("turnover (USDC)", _fmt(m["turnover"], ",.2f")),
            ("quote uptime (two-sided)", _fmt(m["quote_uptime"], ".1%")),
            ("spread improvement", f"{_fmt(m['spread_improvement_pct'], '.2f')} %"),
            ("markout bps 0.4s/2s/10s/60s", " / ".join(_fmt(v, "+.2f") for v in m["markout_bps"].values())),
        ]),
        ("Inventory (SEI)", [
            ("mean / std", f"{_fmt(m['inventory_mean'], ',.1f')} / {_fmt(m['inventory_std'], ',.1f')}"),
            ("max |inventory|", _fmt(m["inventory_max_abs"], ",.1f")),
            ("time at limit", f"{_fmt(m['time_at_limit_pct'], '.2f')} %"),
        ]),
        ("Run", [
            ("fill model", _fill_model(m)),
            ("latency", f"{_fmt(m.get('latency_ms'), ',.0f')} ms"),
            ("window", f"{m['window']['start']} .. {m['window']['end']}"),
            ("events / wall", f"{m['events_processed']:,} in {m['wall_seconds']:.2f} s "
             f"({m['events_processed'] / max(m['wall_seconds'], 1e-9):,.0f} ev/s)"),
            ("halted", f"yes: {m['halt_reason']}" if m.get("halted") else "no"),
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
