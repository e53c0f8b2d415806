"""Finding and reading run dirs, sweeps and a live node's status for the app, without Streamlit.

Everything a person might point the app at can be half-written, hand-edited or from an older
version, so every reader turns a bad file into a `RunDirError` that names the file and what is
wrong with it; the pages show that message instead of a traceback.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RUN_FILES = ("config.toml", "metrics.json", "fills.parquet", "orders.parquet", "equity.parquet", "quotes.parquet")
# The columns each page relies on; a file without them is reported as such, not as a KeyError.
FRAME_COLUMNS = {
    "equity": ["ts", "mid", "inventory", "equity", "pnl_spread_capture", "pnl_inventory", "fees_paid"],
    "fills": ["ts", "client_order_id", "side", "price", "qty"],
    "orders": ["client_order_id", "side", "price", "quantity", "filled_qty", "status", "ts_init", "ts_last"],
    "quotes": ["ts", "bid", "ask"],
    "signal": ["ts", "expected_move_bps", "confidence", "fallback"],
}
# pnl_rate.mean is per hour; the sharpe fields are per 1-minute change (metrics.json says both).
SUMMARY_METRICS = ["pnl_total", "pnl_rate.mean", "max_drawdown", "pnl_per_drawdown", "sharpe.per_period",
                   "sharpe.ci_low", "sharpe.n", "fill_count", "fill_ratio", "quote_uptime", "markout_bps.5s",
                   "inventory_std", "turnover"]
MAX_DEPTH = 4  # runs/<sweep>/<point> is depth 2; deeper trees are not what `--runs` is for


class RunDirError(ValueError):
    """A run dir, sweep dir or status file is missing something or holds something unreadable."""


class RunNotFound(RunDirError):
    """A link names no run: the message lists every place that was looked at."""


@dataclass(frozen=True)
class RunEntry:
    path: Path
    metrics: dict | None
    error: str | None


def find_runs(root: Path) -> list[RunEntry]:
    """Every run dir under `root` (sweep points included), each with its metrics or what is wrong.

    A dir is a run dir when it holds any run file, or when it is an empty leaf (a run that never
    wrote anything still deserves a message rather than silence).
    """
    entries = []
    for path in [root, *_walk(root)]:
        if any((path / f).exists() for f in RUN_FILES) or (path != root and not any(path.iterdir())):
            try:
                entries.append(RunEntry(path, load_metrics(path), None))
            except RunDirError as exc:
                entries.append(RunEntry(path, None, str(exc)))
    return sorted(entries, key=lambda e: e.path)


def find_sweeps(root: Path) -> list[Path]:
    return sorted(p for p in [root, *_walk(root)] if (p / "results.parquet").exists())


def runs_table(entries: list[RunEntry], root: Path) -> pd.DataFrame:
    """One row per readable run: where it is, what it ran on, and its key metrics."""
    rows = []
    for entry in entries:
        if entry.metrics is None:
            continue
        m = flatten(entry.metrics)
        window = entry.metrics.get("window") or {}
        rows.append({
            "run": run_name(entry.path, root),
            "start": window.get("start"), "end": window.get("end"),
            "fill_model": m.get("fill_model"), "signal": bool(entry.metrics.get("signal")),
            **{key: m.get(key) for key in SUMMARY_METRICS},
            "halted": m.get("halted"), "path": str(entry.path),
        })
    columns = ["run", "start", "end", "fill_model", "signal", *SUMMARY_METRICS, "halted", "path"]
    return pd.DataFrame(rows, columns=columns)


def run_name(path: Path, root: Path) -> str:
    """What the Runs table shows and links carry: the path relative to the runs dir (the dir's own
    name when it is the runs dir itself), or the absolute path of a run outside it."""
    if path == root:
        return path.name
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def resolve_run(root: Path, name: str, known: list[Path]) -> Path:
    """The run dir a link or bookmark names: an absolute path, a path relative to the runs dir (the
    name the Runs table shows), or a run dir's own name when exactly one of the `known` runs has it.

    Raises RunNotFound listing where it looked, so a stale or mistyped link says what to fix.
    """
    wanted = Path(name).expanduser()
    direct = wanted if wanted.is_absolute() else root / wanted
    if direct.is_dir():
        return direct
    same = [p for p in known if p.name == wanted.name]
    if len(same) == 1:
        return same[0]
    if same:
        raise RunNotFound(f"{name!r} could be any of {len(same)} runs under {root}: "
                          f"{', '.join(run_name(p, root) for p in same)}. Open one by its name in the Runs table.")
    raise RunNotFound(
        f"No run {name!r}. Looked for the directory {direct} (it does not exist), and for a run dir named "
        f"{wanted.name!r} among the {len(known)} runs found under the runs directory {root} (none has that name). "
        f"Open a run by the name the Runs table shows (its path relative to {root}), or by an absolute path.")


def load_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    if not path.exists():
        present = sorted(p.name for p in run_dir.iterdir())
        raise RunDirError(f"{run_dir} has no metrics.json, so it is not a finished run "
                          f"({'it is empty' if not present else 'it holds ' + ', '.join(present[:6])})")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(metrics, dict) or "pnl_total" not in metrics:
        raise RunDirError(f"{path} is not a FlashMM metrics file: it has no `pnl_total`")
    return metrics


def load_frame(run_dir: Path, name: str) -> pd.DataFrame:
    path = run_dir / f"{name}.parquet"
    if not path.exists():
        raise RunDirError(f"{path} is missing")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise RunDirError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in FRAME_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} lacks the column(s) {', '.join(missing)}")
    return frame


def load_config_text(run_dir: Path) -> tuple[str, dict]:
    path = run_dir / "config.toml"
    if not path.exists():
        raise RunDirError(f"{path} is missing")
    text = path.read_text()
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunDirError(f"{path} is not valid TOML: {exc}") from None


def load_sweep(sweep_dir: Path) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """results.parquet, the sweep's manifest (sweep.json) and walk_forward.parquet when it walked forward."""
    path = sweep_dir / "results.parquet"
    try:
        results = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise RunDirError(f"{path} is not a readable Parquet file: {exc}") from None
    try:
        manifest = json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{sweep_dir / 'sweep.json'} is missing or not valid JSON: {exc}") from None
    missing = [c for c in ["point_id", "status", "run_dir", *manifest.get("params", [])] if c not in results]
    if missing:
        raise RunDirError(f"{path} lacks the column(s) {', '.join(missing)}")
    walk = sweep_dir / "walk_forward.parquet"
    return results, manifest, pd.read_parquet(walk) if walk.exists() else None


def find_status(path: Path) -> Path:
    """The status.json to show for `path`: the file itself, the one in a session dir, or, for a node's
    state dir (which holds one session dir per run), the most recently written session's."""
    if path.is_file():
        return path
    if (path / "status.json").exists():
        return path / "status.json"
    sessions = sorted(path.glob("*/status.json"), key=lambda p: p.stat().st_mtime_ns) if path.is_dir() else []
    if not sessions:
        raise FileNotFoundError(f"no node status found at {path} (no status.json in it or in a session dir under it)")
    return sessions[-1]


def load_status(path: Path) -> tuple[Path, dict]:
    """A live node's status (given the file, a session dir or the node's state dir), and where it came from."""
    path = find_status(path)
    try:
        status = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON (is this a node's status file?): {exc}") from None
    if not isinstance(status, dict):
        raise RunDirError(f"{path} holds a JSON {type(status).__name__}, not an object of status fields")
    return path, status


def flatten(metrics: dict, prefix: str = "") -> dict:
    """{"markout_bps": {"5s": x}} -> {"markout_bps.5s": x}, so nested metrics are columns like any other."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = None if isinstance(value, float) and not math.isfinite(value) else value
    return flat


def mtime_key(path: Path) -> int:
    """Changes whenever anything directly in `path` (or `path` itself) is rewritten: the cache key."""
    try:
        stamps = [path.stat().st_mtime_ns]
        if path.is_dir():
            stamps += [p.stat().st_mtime_ns for p in path.iterdir()]
        return max(stamps)
    except OSError:
        return 0


def _walk(root: Path, depth: int = 0):
    if depth >= MAX_DEPTH or not root.is_dir():
        return
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            yield child
            yield from _walk(child, depth + 1)


def units(metrics: dict) -> tuple[str, str]:
    """(base, quote) currency of a run, from its instrument, to label sizes and money; runs written
    before metrics carried the instrument say "base" and "quote"."""
    inst = metrics.get("instrument") or {}
    return inst.get("base", "base"), inst.get("quote", "quote")
