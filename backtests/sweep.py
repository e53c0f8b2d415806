"""Run a sweep's points as ordinary backtests on a process pool or a Dask cluster, resumably.

Both back ends are a `concurrent.futures.Executor`: a local `ProcessPoolExecutor`, or Dask's
`Client.get_executor()`. Everything else (planning, skipping, collecting, ranking) is one code
path, so a cluster sweep gives the same table as a local one.

Each point is written to a temporary dir and renamed into `<out>/<point_id>/` only when complete,
so a point dir with a `metrics.json` is always a finished run. Its `point.json` records the
parameters and a hash of the resolved config; a later sweep skips the point only when that hash
still matches, so editing the base config re-runs what it affects.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import threading
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from tqdm import tqdm

from backtests.config import parse_config
from backtests.metrics import MARKOUT_HORIZONS
from backtests.sweep_config import Point, SweepSpec, config_hash

# Metrics where smaller is better; every other metric is ranked largest first.
LOWER_IS_BETTER = {"max_drawdown", "fees_paid", "inventory_std", "inventory_max_abs", "time_at_limit_pct",
                   "cancel_to_fill", "wall_seconds"}
# The metrics.json keys copied into results.parquet; the objects among them become one `parent.child`
# column per field below (always all of them, so every sweep's table has the same columns).
RESULT_METRICS = ["pnl_total", "pnl_spread_capture", "pnl_inventory", "fees_paid", "pnl_rate", "sharpe", "sortino",
                  "max_drawdown", "pnl_per_drawdown", "fill_count", "maker_volume", "fills_at_touch", "fill_ratio",
                  "cancel_to_fill", "quote_uptime", "markout_bps", "inventory_mean", "inventory_std",
                  "inventory_max_abs", "time_at_limit_pct", "turnover", "spread_improvement_pct", "orders_submitted",
                  "halted", "events_processed", "wall_seconds"]
_RATIO_FIELDS = ["per_period", "ci_low", "ci_high", "n", "annualised", "status"]
RESULT_FIELDS = {"markout_bps": list(MARKOUT_HORIZONS), "sharpe": _RATIO_FIELDS, "sortino": _RATIO_FIELDS,
                 "pnl_rate": ["mean", "se", "ci_low", "ci_high", "n"]}
# What a sweep can rank by: scalar metrics and the numeric fields of the objects that mean "better".
METRIC_COLUMNS = ([m for m in RESULT_METRICS if m not in RESULT_FIELDS]
                  + [f"markout_bps.{h}" for h in MARKOUT_HORIZONS]
                  + [f"{r}.{f}" for r in ("sharpe", "sortino") for f in ("per_period", "ci_low", "annualised")]
                  + ["pnl_rate.mean", "pnl_rate.ci_low"])
# A worker process runs this many points before it is replaced. NautilusTrader keeps a little
# state per engine for the life of a process (about 6 MB a run, measured; results do not depend on
# it), and a fresh process costs about 1 s of imports: recycling every 16 points caps the growth
# near 100 MB for 1 s of start-up per 16 points.
TASKS_PER_WORKER = 16
# Dask workers may run several tasks at once in threads; NautilusTrader's logger and engine are
# per process, so one backtest at a time per process.
_ENGINE_LOCK = threading.Lock()


@dataclass
class SweepResult:
    out: Path
    params: list[str]
    results: pd.DataFrame
    ran: int
    skipped: int
    failures: dict[str, str]  # point_id -> error
    walk_forward: pd.DataFrame | None


def run_sweep(spec: SweepSpec, out: str | Path | None = None, workers: int | None = None,
              cluster: str | None = None, progress: bool = True, metric: str | None = None) -> SweepResult:
    """Run every point not already finished in `out`; write results.parquet (and walk_forward.parquet,
    tuned by `metric`, default the sweep file's)."""
    metric = metric or spec.metric
    check_metric(metric)
    out = Path(out or spec.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = {p.point_id: spec.config(p) for p in spec.points}
    hashes = {pid: config_hash(c) for pid, c in configs.items()}
    _check_windows(spec, configs.values())
    pending = [p for p in spec.points if not _finished(out / p.point_id, hashes[p.point_id])]
    _write_manifest(spec, out, metric)
    for stale in out.glob(".tmp-*"):  # staging dirs of points a killed sweep left half-written
        shutil.rmtree(stale, ignore_errors=True)
    failures: dict[str, str] = {}
    if pending:
        pool = _executor(workers, cluster)
        try:
            futures = {pool.submit(run_point, configs[p.point_id].to_dict(), _point_meta(spec, p, hashes),
                                   str(out)): p.point_id for p in pending}
            bar = tqdm(total=len(spec.points), initial=len(spec.points) - len(pending), unit="point",
                       desc=f"sweep {spec.name}", disable=not progress)
            for future in cf.as_completed(futures):
                error = future.result()
                if error:
                    failures[futures[future]] = error
                bar.update(1)
            bar.close()
        except BaseException:
            # Ctrl-C or a lost worker: drop the queued points now rather than running them all first.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    results = collect(spec, out, hashes)
    results.to_parquet(out / "results.parquet", index=False)
    walk = walk_forward(spec, results, metric) if spec.windows else None
    if walk is not None:
        walk.to_parquet(out / "walk_forward.parquet", index=False)
    ran, skipped = len(pending) - len(failures), len(spec.points) - len(pending)
    return SweepResult(out, spec.params, results, ran, skipped, failures, walk)


def run_point(raw_config: dict, meta: dict, out: str) -> str | None:
    """Runs in a worker: one backtest into `<out>/<point_id>/`. Returns an error text, or None.

    The error is returned rather than raised so that one bad point (say a parameter the strategy
    rejects mid-run) is reported with the others instead of tearing down the sweep.
    """
    from backtests.runner import run_backtest  # NautilusTrader loads only where engines run, not in the app

    out_dir = Path(out)
    staging = out_dir / f".tmp-{meta['point_id']}-{uuid.uuid4().hex[:8]}"
    try:
        config = parse_config(raw_config, source=meta["point_id"])
        # A sweep already runs a point per core: a signal worker per point would double the
        # processes on the same cores (and fork a process that may run other points' threads).
        config = msgspec.structs.replace(config, signal=msgspec.structs.replace(config.signal, worker=False))
        with _ENGINE_LOCK:
            result = run_backtest(config, out=staging)
        (result.run_dir / "point.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        final = out_dir / meta["point_id"]
        if final.exists():
            shutil.rmtree(final)  # an unfinished or outdated run of this point
        os.replace(result.run_dir, final)
        return None
    except Exception:  # noqa: BLE001 - reported per point by the caller
        return traceback.format_exc(limit=-3)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def collect(spec: SweepSpec, out: Path, hashes: dict[str, str]) -> pd.DataFrame:
    """The results table, read back from the point dirs (the one source for new and resumed points)."""
    rows = []
    for point in spec.points:
        row: dict[str, Any] = {"point_id": point.point_id, **point.params}
        if spec.windows:
            row.update(window=point.window,
                       **dict(zip(("run.start", "run.end"), spec.windows[point.window], strict=True)))
        run_dir = out / point.point_id
        # A failed point may have left an older run of itself behind; its metrics are not this point's.
        metrics = _read_json(run_dir / "metrics.json") if _finished(run_dir, hashes[point.point_id]) else None
        row["status"] = "ok" if metrics is not None else "failed"
        for key in RESULT_METRICS:
            value = (metrics or {}).get(key)
            if key in RESULT_FIELDS:  # a run from before a metric became an object has none of its fields
                row.update({f"{key}.{k}": value.get(k) if isinstance(value, dict) else None
                            for k in RESULT_FIELDS[key]})
            else:
                row[key] = value
        row["run_dir"] = point.point_id  # relative to results.parquet, so a sweep dir can be moved
        rows.append(row)
    return pd.DataFrame(rows)


def check_metric(metric: str) -> None:
    """Refuse what cannot be ranked; an object (sharpe) is pointed to its rankable fields."""
    if metric in RESULT_FIELDS:
        fields = [c for c in METRIC_COLUMNS if c.startswith(f"{metric}.")]
        raise ValueError(f"{metric!r} is an object in metrics.json; rank by one of its fields: {', '.join(fields)}")
    if metric not in METRIC_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRIC_COLUMNS)}")


def rank(results: pd.DataFrame, metric: str, top: int | None = None) -> pd.DataFrame:
    """Best first by `metric` (ascending for LOWER_IS_BETTER metrics); failed points last."""
    check_metric(metric)
    ranked = results.sort_values(metric, ascending=metric in LOWER_IS_BETTER, na_position="last", kind="stable")
    return ranked.head(top) if top else ranked


def walk_forward(spec: SweepSpec, results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """For each window but the last: the point best on it, and how those parameters did on the next."""
    rows = []
    for tune in range(len(spec.windows) - 1):
        tuned = rank(results[results["window"] == tune], metric)
        if tuned.empty or pd.isna(tuned[metric].iloc[0]):
            continue
        chosen = tuned.iloc[0]
        test = results[results["window"] == tune + 1]
        same = test[(test[spec.params] == chosen[spec.params]).all(axis=1)].iloc[0]
        best_test = rank(test, metric).iloc[0]
        rows.append({
            "tune_window": f"{spec.windows[tune][0]} .. {spec.windows[tune][1]}",
            "test_window": f"{spec.windows[tune + 1][0]} .. {spec.windows[tune + 1][1]}",
            **{key: chosen[key] for key in spec.params},
            f"tune_{metric}": chosen[metric], f"test_{metric}": same[metric],
            f"best_test_{metric}": best_test[metric],
            "tune_run_dir": chosen["run_dir"], "test_run_dir": same["run_dir"],
        })
    return pd.DataFrame(rows)


def _executor(workers: int | None, cluster: str | None) -> cf.Executor:
    if cluster:
        return _DaskExecutor(cluster)
    # A fresh interpreter per worker (spawn), never a fork of a parent that may hold an engine.
    return cf.ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                  mp_context=multiprocessing.get_context("spawn"),
                                  max_tasks_per_child=TASKS_PER_WORKER)


class _DaskExecutor(cf.Executor):
    """A Dask client's executor that also closes the client (not the cluster) on exit."""

    def __init__(self, address: str) -> None:
        from distributed import Client

        try:
            self._client = Client(address, timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self._executor = self._client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs):
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self._client.close()


def _check_windows(spec: SweepSpec, configs) -> None:
    """Window bounds are checked against the tape here, once, rather than failing in every point."""
    from backtests.runner import window
    from data.catalog import open_tape

    tapes: dict[tuple[str, str], Any] = {}
    for config in configs:
        key = (config.run.catalog, config.run.instrument_id or str(config.strategy_config().instrument_id))
        if key not in tapes:
            tapes[key] = open_tape(*key)
        try:
            window(config, tapes[key])
        except ValueError as exc:
            raise ValueError(f"{spec.path}: {exc}") from None


def _point_meta(spec: SweepSpec, point: Point, hashes: dict[str, str]) -> dict:
    meta = {"sweep": spec.name, "point_id": point.point_id, "params": point.params,
            "config_hash": hashes[point.point_id]}
    if point.window is not None:
        meta["window"] = {"index": point.window, "start": spec.windows[point.window][0],
                          "end": spec.windows[point.window][1]}
    return meta


def _finished(run_dir: Path, expected_hash: str) -> bool:
    meta = _read_json(run_dir / "point.json")
    return _read_json(run_dir / "metrics.json") is not None and (meta or {}).get("config_hash") == expected_hash


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_manifest(spec: SweepSpec, out: Path, metric: str) -> None:
    """What the app needs to read the sweep: which columns are parameters, the windows, the metric."""
    manifest = {"name": spec.name, "sweep_file": str(spec.path.resolve()), "base": str(spec.base), "mode": spec.mode,
                "metric": metric, "params": spec.params, "fixed": spec.fixed, "points": len(spec.points),
                "windows": [list(w) for w in spec.windows]}
    (out / "sweep.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    shutil.copyfile(spec.path, out / "sweep.toml")
