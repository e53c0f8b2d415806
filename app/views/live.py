"""Live: a read-only view of a running node, from the status.json it rewrites in its session dir.

The page only reads that file, every few seconds, so it can neither disturb the node nor act on
it. Whatever the node adds to the file beyond the fields shown up top is listed below them.
"""

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from app import charts, runs

REFRESH_SECONDS = 2
STALE_AFTER_SECONDS = 30
HEADLINE = [("mode", "mode"), ("connected", "connected"), ("halted", "halted"), ("trading_state", "trading state"),
            ("stale", "stale data"), ("last_block_height", "block height"), ("last_block_age_s", "block age (s)"),
            ("uptime_s", "uptime (s)"), ("mid", "mid"), ("pnl", "PnL (quote)"), ("inventory", "inventory (base)"),
            ("fills", "fills"), ("rejects", "rejects")]
HISTORY = 600  # samples kept for the chart: 20 minutes at one every 2 s

st.title("Live node")
state_dir = (st.session_state.get("live_dir") or "").strip()
if not state_dir:
    st.info("No node status found: no live state dir is set. Start the app with `flashmm app --live DIR` or enter "
            "the node's state dir (where it writes status.json) in the sidebar.")
    st.stop()


def updated_at(value) -> datetime | None:
    """The node's timestamp, as ISO text or a Unix time in s, ms or ns."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        unit = "ns" if value > 1e17 else "ms" if value > 1e11 else "s"
        return pd.Timestamp(value, unit=unit, tz="UTC").to_pydatetime()
    stamp = pd.Timestamp(str(value))
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def scalar(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


@st.fragment(run_every=REFRESH_SECONDS)
def show_status() -> None:
    try:
        source, status = runs.load_status(Path(state_dir))
    except FileNotFoundError as exc:
        st.warning(f"{str(exc)[0].upper()}{str(exc)[1:]}. Is the node running with this state dir?")
        return
    except runs.RunDirError as exc:
        st.error(str(exc))
        return
    try:
        stamp = updated_at(status.get("updated_at"))
    except (ValueError, TypeError):
        stamp = None
    age = (datetime.now(UTC) - stamp).total_seconds() if stamp else None
    if age is None:
        st.warning("The status has no readable `updated_at`, so its age is unknown.")
    elif age > STALE_AFTER_SECONDS:
        st.warning(f"The status is {age:,.0f} s old: the node may have stopped.")
    st.caption(f"{source} | updated {stamp.isoformat() if stamp else 'n/a'} | refreshes every "
               f"{REFRESH_SECONDS} s")
    present = [(key, label) for key, label in HEADLINE if key in status and not isinstance(status[key], (dict, list))]
    for row in range(0, len(present), 5):
        for col, (key, label) in zip(st.columns(5), present[row:row + 5], strict=False):
            col.metric(label, scalar(status[key]))

    history = st.session_state.setdefault("live_history", {}).setdefault(str(source), [])
    if stamp and (not history or history[-1]["time"] != stamp):
        history.append({"time": stamp, **{k: status[k] for k in ("pnl", "inventory")
                                          if isinstance(status.get(k), (int, float))}})
        del history[:-HISTORY]
    if len(history) > 1:
        st.plotly_chart(charts.live_figure(pd.DataFrame(history)))

    quotes = status.get("quotes")
    if isinstance(quotes, (list, dict)) and quotes:
        st.subheader("Quotes")
        try:
            st.dataframe(pd.DataFrame(quotes if isinstance(quotes, list) else [quotes]), hide_index=True)
        except (ValueError, TypeError):  # nested shapes a table cannot hold
            st.json(quotes)
    rest = {k: v for k, v in status.items() if k not in {key for key, _ in present} | {"quotes", "updated_at"}}
    if rest:
        st.subheader("Everything else the node reports")
        st.json(rest)


show_status()
