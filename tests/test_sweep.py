"""Sweeps: the sweep file, the CLI's run dirs and results table, resuming, and a real Dask cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, flashmm

from app.cli import main
from backtests.config import load_config
from backtests.report import sweep_summary
from backtests.sweep import SweepResult, rank
from backtests.sweep_config import load_sweep
from strategies.config import ConfigError

RUN_FILES = ["config.toml", "metrics.json", "fills.parquet", "orders.parquet", "equity.parquet", "quotes.parquet",
             "point.json"]
PARAMS = ["strategy.half_spread_bps", "strategy.linear_skew_bps"]


def test_the_sample_sweep_file_expands_to_a_walk_forward_grid():
    spec = load_sweep(ROOT / "backtests/configs/sweep_sample.toml")
    assert spec.params == PARAMS and spec.mode == "grid" and len(spec.windows) == 3
    assert len(spec.points) == 2 * 2 * 3 == len({p.point_id for p in spec.points})
    combos = {tuple(p.params.values()) for p in spec.points}
    assert combos == {(2.0, 1.0), (2.0, 6.0), (4.0, 1.0), (4.0, 6.0)}
    for point in spec.points:
        config = spec.config(point)
        assert config.strategy["half_spread_bps"] == point.params["strategy.half_spread_bps"]
        assert not config.strategy["use_signal"]
        assert (config.run.start, config.run.end) == spec.windows[point.window]
    assert spec.out == Path("runs") / "sweep_sample"
    assert spec.metric == "pnl_per_drawdown"  # 20-minute windows support no Sharpe; PnL per drawdown needs no year


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'base = "{ROOT / "backtests/configs/sample.toml"}"\n' + body)
    return path


def test_random_search_is_seeded_and_stays_in_its_ranges(tmp_path):
    body = """
[random]
samples = 12
seed = {seed}
"strategy.half_spread_bps" = {{ low = 1.0, high = 6.0 }}
"strategy.gamma" = {{ low = 0.01, high = 1.0, log = true }}
[random.strategy]
levels = {{ low = 1, high = 4 }}
fair_value = ["mid", "microprice"]
"""
    first = load_sweep(write(tmp_path, body.format(seed=1)))
    again = load_sweep(write(tmp_path, body.format(seed=1)))
    other = load_sweep(write(tmp_path, body.format(seed=2)))
    assert [p.params for p in first.points] == [p.params for p in again.points]
    assert [p.params for p in first.points] != [p.params for p in other.points]
    assert first.params == ["strategy.half_spread_bps", "strategy.gamma", "strategy.levels", "strategy.fair_value"]
    values = pd.DataFrame([p.params for p in first.points + other.points])
    assert values["strategy.half_spread_bps"].between(1.0, 6.0).all()
    assert values["strategy.gamma"].between(0.01, 1.0).all()
    assert set(values["strategy.levels"]) <= {1, 2, 3, 4} and values["strategy.levels"].map(type).eq(int).all()
    assert set(values["strategy.fair_value"]) <= {"mid", "microprice"}


@pytest.mark.parametrize("body, message", [
    ("[grid]\n'strategy.half_sprd_bps' = [1.0, 2.0]\n", "strategy.half_sprd_bps"),
    ("[grid]\n'strategy.levels' = ['three']\n", "strategy.levels"),
    ("[grid]\n'strategy.levels' = 3\n", "must be a non-empty list"),
    ("[grid]\n'nodes.levels' = [3]\n", "section must be one of"),
    ("[grid]\n'strategy.levels' = [3]\n[random]\nsamples = 2\nseed = 1\n", "exactly one of [grid] or [random]"),
    ("[random]\nsamples = 2\n'strategy.levels' = {low = 1, high = 3}\n", "needs `seed`"),
    ("[random]\nsamples = 2\nseed = 1\n'strategy.gamma' = {low = 0.0, high = 1.0, log = true}\n", "low > 0"),
    ("grids = 1\n", "unknown key `grids`"),
    ("[grid]\n'strategy.levels' = [3]\n[walk_forward]\nwindows = [['+0min', '+5min']]\n", "at least two"),
])
def test_a_bad_sweep_file_is_refused_naming_the_problem(tmp_path, body, message):
    with pytest.raises(ConfigError) as error:
        load_sweep(write(tmp_path, body))
    assert message in str(error.value) and str(tmp_path / "sweep.toml") in str(error.value)


def test_cli_refuses_unknown_metrics_and_unreachable_windows(tmp_path, capsys):
    sweep = write(tmp_path, "[grid]\n'strategy.levels' = [2]\n")
    assert main(["sweep", "--config", str(sweep), "--out", str(tmp_path / "out"), "--metric", "pnl"]) == 2
    assert "unknown metric 'pnl'" in capsys.readouterr().err
    sweep = write(tmp_path, "[grid]\n'strategy.levels' = [2]\n'run.end' = ['+5 parsecs']\n")
    assert main(["sweep", "--config", str(sweep), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "run.end = '+5 parsecs'" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("pt-*"))


def test_cli_points_an_object_metric_to_its_rankable_fields(tmp_path, capsys):
    sweep = write(tmp_path, "[grid]\n'strategy.levels' = [2]\n")
    assert main(["sweep", "--config", str(sweep), "--out", str(tmp_path / "out"), "--metric", "sharpe"]) == 2
    assert ("'sharpe' is an object in metrics.json; rank by one of its fields: sharpe.per_period, sharpe.ci_low, "
            "sharpe.annualised") in capsys.readouterr().err


def test_ranking_by_drawdown_ratio_or_a_lower_bound_puts_unsupported_points_last():
    results = pd.DataFrame({"point_id": ["a", "b", "c", "d"], "pnl_per_drawdown": [0.5, np.nan, 3.0, -1.0],
                            "sharpe.ci_low": [np.nan, 0.02, -0.01, np.nan]})
    assert list(rank(results, "pnl_per_drawdown")["point_id"]) == ["c", "a", "d", "b"]
    assert list(rank(results, "sharpe.ci_low")["point_id"]) == ["b", "c", "a", "d"]


def test_the_sweep_summary_says_when_the_ranking_metric_is_na_everywhere(demo_runs):
    """The demo sweep's 5-minute points have no Sharpe: ranked by its lower bound, the summary must
    say that the order means nothing rather than print a ranking."""
    results = _results(demo_runs.sweep)
    text = sweep_summary(SweepResult(demo_runs.sweep, PARAMS, results, 8, 0, {}, None), "sharpe.ci_low", 3)
    n = int(results["sharpe.n"].max())
    assert (f"sharpe.ci_low is n/a for every point (risk ratios need 30 1-minute changes; these runs have at most "
            f"{n}), so the tables below are in no order: rank by pnl_per_drawdown, or run longer windows") in text
    assert "n/a for every point, so not shown: sharpe.per_period" in text
    text = sweep_summary(SweepResult(demo_runs.sweep, PARAMS, results, 8, 0, {}, None), "pnl_per_drawdown", 3)
    assert "in no order" not in text and "pnl_per_drawdown" in text.split("== top 3")[1].splitlines()[1]


def _results(sweep_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(sweep_dir / "results.parquet")


def test_each_point_is_a_normal_run_dir_matching_its_results_row(demo_runs):
    results = _results(demo_runs.sweep)
    assert len(results) == 8 and (results["status"] == "ok").all()
    assert results.groupby("window").size().to_dict() == {0: 4, 1: 4}
    for _, row in results.iterrows():
        run = demo_runs.sweep / row["run_dir"]
        assert all((run / name).is_file() for name in RUN_FILES), run
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["pnl_total"] == row["pnl_total"] and metrics["fill_count"] == row["fill_count"]
        if metrics["max_drawdown"] > 0:
            assert row["pnl_per_drawdown"] == pytest.approx(metrics["pnl_total"] / metrics["max_drawdown"])
        else:  # a point that never traded never drew down: nothing to divide by
            assert metrics["fill_count"] == 0 and pd.isna(row["pnl_per_drawdown"])
        assert row["pnl_rate.mean"] == metrics["pnl_rate"]["mean"] and row["sharpe.n"] == metrics["sharpe"]["n"]
        assert row["sharpe.status"] == "too_short" and pd.isna(row["sharpe.per_period"])  # 5 minutes: too short
        markout = metrics["markout_bps"]["5s"]  # null when no fill has 5 s of data after it
        assert pd.isna(row["markout_bps.5s"]) if markout is None else row["markout_bps.5s"] == markout
        config = load_config(run / "config.toml")  # the written config is complete and reruns as is
        assert config.strategy["half_spread_bps"] == row["strategy.half_spread_bps"]
        assert config.strategy["linear_skew_bps"] == row["strategy.linear_skew_bps"]
        assert (config.run.start, config.run.end) == (row["run.start"], row["run.end"])
        assert not config.strategy["use_signal"] and metrics["signal"] is None
    # different parameters really ran differently
    assert results.groupby("window")["fill_count"].nunique().min() > 1


def test_walk_forward_reports_the_tuned_point_on_the_next_window(demo_runs):
    results = _results(demo_runs.sweep)
    walk = pd.read_parquet(demo_runs.sweep / "walk_forward.parquet")
    assert len(walk) == 1
    fold = walk.iloc[0]
    tune, test = results[results["window"] == 0], results[results["window"] == 1]
    best = tune.loc[tune["pnl_total"].idxmax()]
    assert [fold[p] for p in PARAMS] == [best[p] for p in PARAMS]
    assert fold["tune_pnl_total"] == best["pnl_total"] and fold["tune_run_dir"] == best["run_dir"]
    same = test[(test[PARAMS] == best[PARAMS]).all(axis=1)].iloc[0]
    assert fold["test_pnl_total"] == same["pnl_total"] and fold["test_run_dir"] == same["run_dir"]
    assert fold["best_test_pnl_total"] == test["pnl_total"].max()
    # the CLI printed each window's best point first
    out = demo_runs.sweep_stdout
    assert "8 points: 8 run, 0 already finished (skipped), 0 failed" in out
    for _window, table in results.groupby("window"):
        section = out.split(f"window {table['run.start'].iloc[0]} .. ")[1]
        first_row = section.split("\n")[2]
        assert table.loc[table["pnl_total"].idxmax(), "run_dir"] in first_row


def test_resume_runs_only_unfinished_or_outdated_points(demo_runs, tmp_path):
    sweep = tmp_path / "demo"
    shutil.copytree(demo_runs.sweep, sweep)
    before = _results(demo_runs.sweep)
    interrupted, outdated = before["run_dir"].iloc[1], before["run_dir"].iloc[6]
    (sweep / interrupted / "metrics.json").unlink()
    meta = json.loads((sweep / outdated / "point.json").read_text())
    (sweep / outdated / "point.json").write_text(json.dumps({**meta, "config_hash": "from an older base config"}))
    untouched = {d: (sweep / d / "metrics.json").stat().st_mtime_ns for d in before["run_dir"]
                 if d not in (interrupted, outdated)}

    out = flashmm("sweep", "--config", str(demo_runs.sweep_file), "--out", str(sweep), "--workers", "1", "--quiet",
                  cwd=tmp_path)
    assert "8 points: 2 run, 6 already finished (skipped), 0 failed" in out
    assert {d: (sweep / d / "metrics.json").stat().st_mtime_ns for d in untouched} == untouched
    assert json.loads((sweep / outdated / "point.json").read_text())["config_hash"] == meta["config_hash"]
    assert not list(sweep.glob(".tmp-*"))
    pd.testing.assert_frame_equal(_results(sweep).drop(columns="wall_seconds"), before.drop(columns="wall_seconds"))


def test_a_dask_cluster_gives_the_same_results_as_the_local_pool(demo_runs, tmp_path, capsys):
    from distributed import Client, LocalCluster, get_task_stream

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, get_task_stream(client) as tasks:
        code = main(["sweep", "--config", str(demo_runs.sweep_file), "--out", str(tmp_path / "dask"),
                     "--cluster", cluster.scheduler_address, "--quiet"])
        workers = set(client.scheduler_info()["workers"])
    assert code == 0, capsys.readouterr().err
    ran = [t for t in tasks.data if t["key"].startswith("run_point")]
    assert len(ran) == 8 and {t["worker"] for t in ran} <= workers
    dask, local = _results(tmp_path / "dask"), _results(demo_runs.sweep)
    pd.testing.assert_frame_equal(dask.drop(columns="wall_seconds"), local.drop(columns="wall_seconds"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask/walk_forward.parquet"),
                                  pd.read_parquet(demo_runs.sweep / "walk_forward.parquet"))


def test_the_sweep_bench_runs_the_tapes_start_whatever_window_the_config_trades():
    """The demo config trades its tape's last hour; `flashmm bench --sweep` times the first `end`
    of the tape with 1 and 2 workers (it failed on an empty window once the demo moved)."""
    from backtests.bench import run_sweep_bench

    report = run_sweep_bench(str(ROOT / "backtests/configs/sample.toml"), points=2, end="+3min", repeats=1)
    assert report["end"] == "+3min" and len(report["runs_1_worker"]) == len(report["runs_2_workers"]) == 1
    assert report["speedup"] == report["seconds_1_worker"] / report["seconds_2_workers"] > 0
    assert "sweep scaling: 2 points, window start .. +3min" in report["text"]


def test_a_sweep_point_computes_its_signal_in_its_own_process(tmp_path):
    """A sweep runs a point per core already: its points never fork a signal worker, and whether
    one did is no part of what identifies a point."""
    from backtests.sweep import run_point
    from backtests.sweep_config import config_hash

    config = load_config(ROOT / "backtests/configs/sample.toml",
                         {"run.start": "+0s", "run.end": "+4min", "strategy.use_signal": True})
    assert config.signal.worker  # the default, which a plain backtest on two cores would use
    assert run_point(config.to_dict(), {"point_id": "p1"}, str(tmp_path)) is None
    metrics = json.loads((tmp_path / "p1" / "metrics.json").read_text())
    assert metrics["signal_worker"] is False and metrics["signal"]["model_blocks"] > 0
    off = load_config(ROOT / "backtests/configs/sample.toml",
                      {"run.start": "+0s", "run.end": "+4min", "strategy.use_signal": True, "signal.worker": False})
    assert config_hash(off) == config_hash(config)
