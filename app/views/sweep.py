"""Sweep: the results table, a heatmap of any metric over two parameters, PnL against drawdown,
the walk-forward table, and a way into any point's run."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app import analysis, charts, runs, ui
from backtests.metrics import MIN_RISK_SAMPLES
from backtests.sweep import LOWER_IS_BETTER, METRIC_COLUMNS

st.title("Sweep")
root = ui.runs_root()
sweeps = runs.find_sweeps(root)
if not sweeps:
    st.info(f"No sweep found under {root} (a sweep dir holds results.parquet). Run "
            f"`flashmm sweep --config backtests/configs/sweep_sample.toml`.")
    st.stop()
sweep_dir = Path(st.selectbox("Sweep", [str(s) for s in sweeps], format_func=lambda p: ui.label(Path(p), root)))
try:
    results, manifest, walk = ui.sweep(sweep_dir)
except runs.RunDirError as exc:
    st.error(str(exc))
    st.stop()

params = list(manifest.get("params", []))
axes = params + (["window"] if "window" in results else [])
results = results.assign(run_path=[str(sweep_dir / d) for d in results["run_dir"]])
labels = results[axes].astype(str).apply(lambda r: ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r.items()), axis=1)
failed = int((results["status"] != "ok").sum())
st.caption(f"{manifest.get('mode')} sweep `{manifest.get('name')}`: {len(results)} points over "
           f"{', '.join(params)}; {failed} failed; ranked by {manifest.get('metric')} in the CLI")

metrics = [m for m in METRIC_COLUMNS if m in results]
st.dataframe(ui.with_links(results.drop(columns="run_path"), [ui.label(Path(p), root) for p in results["run_path"]]),
             hide_index=True, column_config=ui.LINK_COLUMN)

left, right = st.columns(2)
with left:
    st.subheader("Heatmap")
    metric = st.selectbox("Metric", metrics, index=metrics.index(manifest.get("metric", "pnl_total"))
                          if manifest.get("metric") in metrics else 0)
    if len(axes) < 2:
        st.info("The heatmap needs two swept parameters (or one and walk-forward windows); this sweep varies "
                f"only {', '.join(axes) or 'nothing'}.")
    elif results[metric].isna().all():
        longest = results["sharpe.n"].max() if "sharpe.n" in results else None
        st.info(f"{metric} is n/a for every point of this sweep" + (
            f": its runs have at most {longest:.0f} one-minute changes, and a risk ratio needs {MIN_RISK_SAMPLES}"
            if metric.split(".")[0] in ("sharpe", "sortino", "pnl_rate") and pd.notna(longest) else "") + ".")
    else:
        x = st.selectbox("x", axes, index=0)
        y = st.selectbox("y", [a for a in axes if a != x], index=0)
        ok = results[results["status"] == "ok"]
        st.plotly_chart(charts.heatmap_figure(analysis.heatmap_table(ok, metric, x, y), metric, x, y))
        others = [a for a in axes if a not in (x, y) and ok[a].nunique() > 1]
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        st.caption(f"{better} is better" + (f"; each cell is the mean over {', '.join(others)}" if others else ""))
with right:
    st.subheader("PnL vs max drawdown")
    ok = results[results["status"] == "ok"].reset_index(drop=True)
    quote_ccy = runs.units(ui.metrics(Path(ok["run_path"].iloc[0])))[1] if len(ok) else "quote"
    event = st.plotly_chart(
        charts.pareto_figure(ok, labels[results["status"] == "ok"].reset_index(drop=True), quote_ccy),
        on_select="rerun", selection_mode="points", key="pareto")
    st.caption("Click a point to open its run.")
    picked = [p.get("customdata") for p in (event.selection.points if event else []) if p.get("customdata")]
    if picked:
        ui.open_run(sweep_dir / picked[0])

if walk is not None and not walk.empty:
    st.subheader("Walk-forward: tuned on one window, reported on the next")
    st.dataframe(walk, hide_index=True)

st.subheader("Open a point")
point = st.selectbox("Point", results.index, format_func=lambda i: f"{results['point_id'][i]}: {labels[i]}")
if st.button("Open run detail"):
    ui.open_run(results["run_path"][point])
