"""Run detail: PnL and its decomposition, inventory, price with our quotes and fills, markouts,
order statistics, the signal against what followed, and the resolved config."""

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from app import analysis, charts, runs, ui
from backtests import report
from models import report as model_report

st.title("Run detail")
root = ui.runs_root()
known = [e.path for e in ui.find_runs(root)]
options = [str(p) for p in known]
requested = st.query_params.get("run")
if requested and requested != st.session_state.get("run_from_url"):
    # A link, a bookmark or the Runs/Sweep page asked for this run; later picks in the selectbox win.
    try:
        st.session_state["run_select"] = str(runs.resolve_run(root, requested, known))
    except runs.RunNotFound as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["run_from_url"] = requested
if st.session_state.get("run_select") and st.session_state["run_select"] not in options:
    options.insert(0, st.session_state["run_select"])  # a run outside the runs dir, opened by its path
if not options:
    st.info(f"No run directories found under {root}. Run `flashmm backtest --config backtests/configs/sample.toml`.")
    st.stop()
if st.session_state.get("run_select") not in options:
    st.session_state["run_select"] = options[0]
choice = st.selectbox("Run", options, key="run_select", format_func=lambda p: ui.label(Path(p), root))
st.query_params["run"] = st.session_state["run_from_url"] = ui.label(Path(choice), root)
run_dir = Path(choice)

try:
    metrics = ui.metrics(run_dir)
except runs.RunDirError as exc:
    st.error(str(exc))
    st.stop()


def shown(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


base_ccy, money = runs.units(metrics)
rate, sharpe = metrics.get("pnl_rate"), metrics.get("sharpe")
unit, per_unit = report.rate_unit(rate) if isinstance(rate, dict) else ("hour", 1.0)
cards = [
    (f"total PnL ({money})", shown(metrics.get("pnl_total"), ",.4f"), None),
    (f"PnL per {unit} ({money})", analysis.rate_card(rate, per_unit), report.rate_text(rate)),
    (f"max drawdown ({money})", shown(metrics.get("max_drawdown"), ",.4f"), None),
    ("PnL / max drawdown", shown(metrics.get("pnl_per_drawdown"), ",.2f"), None),
    (analysis.ratio_label(sharpe), analysis.ratio_card(sharpe), report.ratio_text(sharpe, "sharpe")),
    ("fills", shown(metrics.get("fill_count"), ","), None),
    ("fill ratio", shown(metrics.get("fill_ratio"), ".2%"), None),
    ("quote uptime", shown(metrics.get("quote_uptime"), ".1%"), None),
]
for col, (name, value, detail) in zip(st.columns(4) + st.columns(4), cards, strict=True):
    col.metric(name, value, help=detail)
st.caption(f"Sharpe: {report.ratio_text(sharpe, 'sharpe')}. Sortino: "
           f"{report.ratio_text(metrics.get('sortino'), 'sortino')}. PnL rate: {report.rate_text(rate)}.")
window = metrics.get("window") or {}
st.caption(f"{window.get('start')} .. {window.get('end')} | fill model {metrics.get('fill_model')} | "
           f"{'SYNTHETIC data' if metrics.get('synthetic_data') else 'recorded data'} | "
           f"{'halted: ' + str(metrics.get('halt_reason')) if metrics.get('halted') else 'not halted'}")
if (run_dir / "point.json").exists():
    try:
        params = json.loads((run_dir / "point.json").read_text())["params"]
        st.caption("sweep point: " + ", ".join(f"{k} = {v}" for k, v in params.items()))
    except (ValueError, KeyError, AttributeError) as exc:
        st.warning(f"{run_dir / 'point.json'} is not a readable sweep point record: {exc!r}")

try:
    equity = ui.frame(run_dir, "equity")
except runs.RunDirError as exc:
    st.error(str(exc))
    st.stop()
if equity.empty:
    st.warning(f"{run_dir / 'equity.parquet'} has no rows: there is no time series to show.")
    st.stop()

times = analysis.to_time(equity["ts"]).dt.tz_convert(None)  # the slider works in naive datetimes: UTC here
first, last = times.iloc[0].to_pydatetime(), times.iloc[-1].to_pydatetime()
if last > first:
    start, end = st.slider("Time window, UTC (zoom: charts show the full detail the window allows)",
                           min_value=first, max_value=last, value=(first, last), step=timedelta(seconds=1),
                           format="HH:mm:ss")
else:
    start, end = first, last
lo, hi = pd.Timestamp(start, tz="UTC").value, pd.Timestamp(end, tz="UTC").value


def in_window(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["ts"] >= lo) & (frame["ts"] <= hi)]


series = in_window(equity)
sampled = analysis.minmax_downsample(
    series, "ts", ["equity", "pnl_spread_capture", "pnl_inventory", "inventory"]
    + [c for c in ("fees_paid", "costs_paid") if c in series])
st.plotly_chart(charts.pnl_figure(sampled, money))
st.plotly_chart(charts.inventory_figure(sampled, base_ccy))

st.subheader("Price, quotes and fills")
try:
    quotes, fills = in_window(ui.frame(run_dir, "quotes")), in_window(ui.frame(run_dir, "fills"))
    mid = analysis.minmax_downsample(series, "ts", ["mid"])
    quote_points = analysis.minmax_downsample(quotes, "ts", ["bid", "ask"])
    fill_points = analysis.thin(fills)
    st.plotly_chart(charts.price_figure(mid, quote_points, fill_points, money))
    st.caption(f"drawn: {len(mid):,} of {len(series):,} mid samples and {len(quote_points):,} of {len(quotes):,} "
               f"quote changes (min and max per time bucket), {len(fill_points):,} of {len(fills):,} fills")
except runs.RunDirError as exc:
    st.error(str(exc))

left, right = st.columns(2)
with left:
    st.subheader("Markouts")
    try:
        all_fills = ui.frame(run_dir, "fills")
        if all_fills.empty:
            st.info("No fills in this run, so no markouts.")
        else:
            st.plotly_chart(charts.markout_figure(analysis.markout_curve(all_fills)))
    except runs.RunDirError as exc:
        st.error(str(exc))
with right:
    st.subheader("Fills, queue and latency")
    try:
        stats = analysis.order_stats(ui.frame(run_dir, "orders"), ui.frame(run_dir, "fills"), metrics)
        st.dataframe(stats, hide_index=True)
    except runs.RunDirError as exc:
        st.error(str(exc))

st.subheader("Signal vs realised move")
if not (run_dir / "signal.parquet").exists():
    st.info("No signal ran in this run (strategy.use_signal was false), so there is nothing to compare.")
else:
    try:
        signal = ui.frame(run_dir, "signal")
        horizon = analysis.signal_horizon(signal)
        pairs, binned = analysis.signal_vs_realised(in_window(signal), series, horizon_s=horizon)
        if binned.empty:
            st.info("Too few signal rows in this window to compare with realised moves.")
        else:
            st.plotly_chart(charts.signal_figure(binned, horizon))
            corr = pairs["expected_move_bps"].corr(pairs["realised_bps"])
            st.caption(f"{len(pairs):,} book updates, correlation {corr:+.3f}, fallback on "
                       f"{pairs['fallback'].mean():.1%} of them; model {(metrics.get('signal') or {}).get('model_id')}")
    except runs.RunDirError as exc:
        st.error(str(exc))
    st.subheader("The model's out-of-sample evaluation")
    evaluation = (metrics.get("signal") or {}).get("evaluation")
    if not evaluation:
        st.info("This run's signal recorded no evaluation: the rule-based fallback ran (no model loaded), or the "
                "model was trained before evaluations were recorded.")
    else:
        verdict = evaluation.get("verdict") or {}
        (st.success if verdict.get("ships") else st.warning)(verdict.get("text", "no verdict recorded"))
        selection = evaluation.get("selection") or {}
        windows = evaluation.get("windows") or {}
        st.caption(f"model {evaluation.get('model_id')} trained on {evaluation.get('catalog')} (train "
                   f"{' .. '.join(windows.get('train', []))}, valid {' .. '.join(windows.get('valid', []))}); "
                   f"scored on its test window {' .. '.join(windows.get('test', []))}. Selection: "
                   f"{selection.get('rule', 'n/a')}. * = shipped.")
        table = pd.DataFrame(model_report.model_summary_rows(evaluation))
        if not table.empty:
            main = f"{selection.get('main_horizon_s', 0):g}s"
            table["model"] = [m + (" *" if s and h == main else "")
                              for m, s, h in zip(table["model"], table["shipped"], table["horizon"], strict=True)]
            st.dataframe(table.drop(columns=["key", "shipped"]), hide_index=True)

st.subheader("Resolved config")
try:
    st.code(runs.load_config_text(run_dir)[0], language="toml")
except runs.RunDirError as exc:
    st.error(str(exc))
with st.expander("metrics.json"):
    st.json(metrics)
