"""Signal: the reports the signal's tooling writes, found under the runs dir. A training report
(`flashmm train --report`): the verdict, every model and baseline per horizon on the test window,
the selection, walk-forward and other catalogs; an evaluation of a saved model on a catalog
(`flashmm train --model DIR --eval-catalog C --report`); a signal ablation (`flashmm ablation
--json`): each arm's PnL difference from the signal off with its bootstrap interval."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app import ui
from models import report as model_report

st.title("Signal")
root = ui.runs_root()


@st.cache_data(show_spinner=False, max_entries=64)
def _load(path: str, mtime_ns: int) -> dict | None:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("kind") in model_report.REPORT_KINDS else None


def find_reports(base: Path) -> list[tuple[Path, dict]]:
    """Every JSON file under `base` (a few levels deep) that is a signal report, newest first."""
    found = []
    for path in sorted(base.glob("**/*.json")) if base.is_dir() else []:
        if path.name in ("metrics.json", "point.json", "manifest.json") or len(path.relative_to(base).parts) > 4:
            continue
        report = _load(str(path), path.stat().st_mtime_ns)
        if report is not None:
            found.append((path, report))
    return sorted(found, key=lambda item: item[0].stat().st_mtime_ns, reverse=True)


def _scores_table(rows: list[dict], main: str | None = None) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["model"] = [m + (" *" if s and (main is None or h == main) else "")
                      for m, s, h in zip(table["model"], table["shipped"], table["horizon"], strict=True)]
    return table.drop(columns=["key", "shipped"])


def _verdict(verdict: dict) -> None:
    (st.success if verdict.get("ships") else st.warning)("Verdict: " + verdict.get("text", "none recorded"))


reports = find_reports(root)
if not reports:
    st.info(f"No signal report under {root}. Write one with `flashmm train ... --report {root}/NAME.json`, "
            f"`flashmm train --model DIR --eval-catalog C --report {root}/NAME.json` or "
            f"`flashmm ablation --config FILE --json {root}/NAME.json`.")
    st.stop()
labels = {str(p): f"{ui.label(p, root)}  ({model_report.REPORT_KINDS[r['kind']]})" for p, r in reports}
choice = st.selectbox("Report", list(labels), format_func=labels.get)
report = next(r for p, r in reports if str(p) == choice)
kind = report["kind"]

if kind == "flashmm.signal_report":
    sel = report["selection"]
    main = f"{sel['main_horizon_s']:g}s"
    _verdict(report["verdict"])
    st.caption(f"model {report['model_id']} trained on {report['catalog']}, main horizon {main}, flat band "
               f"±{report['label']['threshold_bps']:g} bps. Selection: {sel['rule']}. * = shipped.")
    windows = pd.DataFrame([{"window": name, "start": w["start"], "end": w["end"], "rows": w["rows"],
                             **{f"labelled {k}": v for k, v in w["labelled"].items()}}
                            for name, w in report["windows"].items()])
    st.dataframe(windows, hide_index=True)
    st.subheader("Out of sample: the test window")
    st.dataframe(_scores_table(model_report.score_rows(report["horizons"], "test", sel["model"]), main),
                 hide_index=True)
    if report.get("walk_forward"):
        st.subheader(f"Walk-forward at {main}")
        st.dataframe(pd.DataFrame([{"fold": f["fold"], "test": " .. ".join(f["test"]), "rows": f["labelled"],
                                    **{f"{k} log loss": s["log_loss"] for k, s in f["scores"].items()}}
                                   for f in report["walk_forward"]]), hide_index=True)
    for ev in report.get("evaluations") or []:
        st.subheader(f"On {ev['catalog']}")
        _verdict(ev["verdict"])
        st.dataframe(_scores_table(model_report.score_rows(ev["horizons"], "scores", sel["model"]), main),
                     hide_index=True)
elif kind == "flashmm.signal_evaluation":
    _verdict(report["verdict"])
    w = report["window"]
    st.caption(f"model {report['model_id']} ({report['model_dir']}) scored on {report['catalog']}, "
               f"{w['start']} .. {w['end']} ({w['rows']:,} rows). * = the model.")
    st.dataframe(_scores_table(model_report.score_rows(report["horizons"], "scores", report["verdict"]["model"])),
                 hide_index=True)
else:
    b = report["bootstrap"]
    st.caption(f"{len(report['windows'])} windows x {len(report['arms'])} arms; model {report['signal_model']}; "
               f"PnL net of fees and action costs; {b['level']:.0%} interval of the mean difference from "
               f"{b['resamples']:,} bootstrap resamples of the windows (seed {b['seed']}).")
    table = pd.DataFrame(model_report.ablation_rows(report))
    for group in table["group"].unique():
        st.subheader(group)
        part = table[table["group"] == group].drop(columns="group")
        for row in part.itertuples():
            if row.on_minus_off is not None and not pd.isna(row.on_minus_off) and row.arm == "on":
                (st.success if row.above_zero else st.warning)(
                    f"signal on minus off: {row.on_minus_off:+.4f} per window, {b['level']:.0%} interval "
                    f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}] over {row.windows} windows"
                    + ("" if row.above_zero else ": the interval does not lie above zero"))
        st.dataframe(part, hide_index=True)
