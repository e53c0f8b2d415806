"""The FlashMM inspection app. `flashmm app [--runs DIR] [--live DIR]` serves this file.

The sidebar holds the two places the app reads (the runs dir and a live node's state dir), so a
person can point it elsewhere without restarting; the pages are the scripts in `views/`.
"""

import sys
from pathlib import Path

import streamlit as st

from app import ui

st.set_page_config(page_title="FlashMM", layout="wide")
args = ui.parse_app_args(sys.argv[1:])
st.session_state.setdefault("runs_dir", args.runs)
st.session_state.setdefault("live_dir", args.live)

views = Path(__file__).resolve().parent / "views"
navigation = st.navigation([
    st.Page(views / "runs.py", title="Runs", default=True),
    st.Page(views / "run_detail.py", title="Run detail", url_path="run"),
    st.Page(views / "sweep.py", title="Sweep", url_path="sweep"),
    st.Page(views / "signal.py", title="Signal", url_path="signal"),
    st.Page(views / "live.py", title="Live", url_path="live"),
])
with st.sidebar:
    st.text_input("Runs directory", key="runs_dir", help="run dirs and sweeps, searched recursively")
    st.text_input("Live node state dir", key="live_dir", help="the directory where the node writes status.json")
navigation.run()
