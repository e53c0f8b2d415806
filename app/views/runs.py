"""Runs: every run dir under the runs directory with its key metrics; filter, sort, compare two."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app import analysis, charts, runs, ui

st.title("Runs")
root = ui.runs_root()
entries = ui.find_runs(root)
broken = [e for e in entries if e.error]
table = runs.runs_table(entries, root)

if not root.is_dir():
    st.warning(f"The runs directory {root} does not exist. Run `flashmm backtest` or `flashmm sweep`, or set "
               f"another directory in the sidebar.")
elif table.empty and not broken:
    st.info(f"No run directories found under {root}. Run `flashmm backtest --config backtests/configs/sample.toml`.")
if broken:
    with st.expander(f"{len(broken)} run dir(s) could not be read", expanded=table.empty):
        for entry in broken:
            st.error(entry.error)
if table.empty:
    st.stop()

left, middle, right = st.columns([3, 2, 1])
text = left.text_input("Filter by name", placeholder="e.g. sweep_sample or pt-")
sortable = [c for c in table.columns if c not in ("path",)]
sort_by = middle.selectbox("Sort by", sortable, index=sortable.index("pnl_total"))
descending = right.checkbox("Descending", value=True)

shown = table[table["run"].str.contains(text, case=False, regex=False)] if text else table
shown = shown.sort_values(sort_by, ascending=not descending, na_position="last", kind="stable")
st.caption(f"{len(shown)} of {len(table)} runs under {root}")
if shown.empty:
    st.info(f"No run name contains {text!r}.")
    st.stop()
st.dataframe(ui.with_links(shown.drop(columns="path"), shown["run"]), hide_index=True,
             column_config={**ui.LINK_COLUMN, "fill_ratio": st.column_config.NumberColumn(format="percent"),
                            "quote_uptime": st.column_config.NumberColumn(format="percent"),
                            "pnl_rate.mean": st.column_config.NumberColumn("pnl per hour"),
                            "sharpe.per_period": st.column_config.NumberColumn("sharpe per 1min"),
                            "sharpe.ci_low": st.column_config.NumberColumn("sharpe 90% CI low"),
                            "sharpe.n": st.column_config.NumberColumn("sharpe n")})
st.caption("Open a run by its name: `run?run=<run>` on this app's address. Sharpe is per 1-minute change, "
           "n/a below 30 of them; see a run's page for its interval.")

picked = st.selectbox("Open a run", shown["path"], format_func=lambda p: ui.label(Path(p), root))
if st.button("Open run detail"):
    ui.open_run(picked)

st.subheader("Compare two runs")
pair = st.multiselect("Pick two runs", shown["path"], max_selections=2,
                      format_func=lambda p: ui.label(Path(p), root))
if len(pair) == 2:
    names = [ui.label(Path(p), root) for p in pair]
    raw = [ui.metrics(Path(p)) for p in pair]
    quote_ccy = runs.units(raw[0])[1]
    flat = [runs.flatten(m) for m in raw]
    keys = [k for k in flat[0] if not isinstance(flat[0][k], list) and k in flat[1]]
    side = pd.DataFrame({name: [m[k] for k in keys] for name, m in zip(names, flat, strict=True)}, index=keys)
    side = side.astype(str)
    side.insert(0, "differs", [a != b for a, b in zip(side.iloc[:, 0], side.iloc[:, 1], strict=True)])
    st.dataframe(side, height=500)
    st.markdown("**PnL rate: larger than its noise?**")
    verdict, rates = analysis.compare_rates({n: m.get("pnl_rate") for n, m in zip(names, raw, strict=True)},
                                            quote_ccy)
    st.markdown(verdict)
    if not rates.empty:
        st.dataframe(rates, hide_index=True)
    try:
        configs = [runs.flatten(runs.load_config_text(Path(p))[1]) for p in pair]
        changed = sorted(k for k in set(configs[0]) | set(configs[1]) if configs[0].get(k) != configs[1].get(k))
        st.markdown("**Config differences**" if changed else "**Same config**")
        if changed:
            st.dataframe(pd.DataFrame({name: [str(c.get(k)) for k in changed]
                                       for name, c in zip(names, configs, strict=True)},
                                      index=changed))
        equities = {n: analysis.minmax_downsample(ui.frame(Path(p), "equity"), "ts", ["equity"])
                    for n, p in zip(names, pair, strict=True)}
        st.plotly_chart(charts.compare_figure(equities, quote_ccy))
    except runs.RunDirError as exc:
        st.error(str(exc))
