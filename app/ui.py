"""What the app's pages share: where the runs are, cached loading, and opening a run.

Loads are cached by (path, mtime), so flipping between pages re-reads nothing, while a run dir
that is rewritten (a sweep re-running a point) is read afresh.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st

from app import runs

RUN_DETAIL_PAGE = "views/run_detail.py"


def parse_app_args(argv: list[str]) -> argparse.Namespace:
    """`streamlit run streamlit_app.py -- --runs DIR --live DIR`, as `flashmm app` starts it."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--live", default="")
    return parser.parse_known_args(argv)[0]


def runs_root() -> Path:
    return Path(st.session_state.get("runs_dir") or "runs").expanduser()


def find_runs(root: Path) -> list[runs.RunEntry]:
    """Walks the tree on every call (new runs appear), but each run's metrics come from the cache."""
    entries = []
    for entry in runs.find_runs(root):
        try:
            entries.append(runs.RunEntry(entry.path, metrics(entry.path), None))
        except runs.RunDirError as exc:
            entries.append(runs.RunEntry(entry.path, None, str(exc)))
    return entries


def metrics(run_dir: Path) -> dict:
    return _metrics(str(run_dir), _mtime(run_dir / "metrics.json"))


def frame(run_dir: Path, name: str) -> pd.DataFrame:
    return _frame(str(run_dir), name, _mtime(run_dir / f"{name}.parquet"))


def sweep(sweep_dir: Path) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    return _sweep(str(sweep_dir), runs.mtime_key(sweep_dir))


def label(path: Path, root: Path) -> str:
    return runs.run_name(Path(path), root)


def open_run(path: Path | str) -> None:
    """Switch to the run detail page showing `path`. The URL carries the run's name (its path
    relative to the runs dir), so it can be shared, bookmarked or typed."""
    st.switch_page(RUN_DETAIL_PAGE, query_params={"run": label(Path(path), runs_root())})


def with_links(frame: pd.DataFrame, names) -> pd.DataFrame:
    """`frame` with a first column `open` linking each row to its run's detail page by run name."""
    linked = frame.copy()
    linked.insert(0, "open", [f"run?run={quote(str(n))}" for n in names])
    return linked


LINK_COLUMN = {"open": st.column_config.LinkColumn("open", display_text="detail")}


@st.cache_data(show_spinner=False, max_entries=512)
def _metrics(path: str, mtime_ns: int) -> dict:
    return runs.load_metrics(Path(path))


@st.cache_data(show_spinner=False, max_entries=64)
def _frame(path: str, name: str, mtime_ns: int) -> pd.DataFrame:
    return runs.load_frame(Path(path), name)


@st.cache_data(show_spinner=False, max_entries=16)
def _sweep(path: str, mtime_ns: int) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    return runs.load_sweep(Path(path))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
