"""The Streamlit app, page by page, through Streamlit's AppTest on run dirs and a sweep made by the CLI."""

from __future__ import annotations

import base64
import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import analysis
from app.analysis import minmax_downsample, pareto_front

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app/streamlit_app.py"


def app(runs_root: Path, live: Path | str = "", run: Path | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["runs_dir"] = str(runs_root)
    at.session_state["live_dir"] = str(live)
    if run is not None:
        at.query_params["run"] = str(run)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def decode(value):
    """Plotly sends numeric arrays as base64 typed arrays ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    return np.asarray(value) if isinstance(value, list) else value


def figures(at: AppTest) -> dict[str, dict[str, dict]]:
    """Each rendered plotly chart's traces (name -> trace, arrays decoded) by the chart's title."""
    charts = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        traces = [{k: decode(v) for k, v in trace.items()} for trace in spec["data"]]
        charts[spec["layout"]["title"]["text"]] = {trace.get("name"): trace for trace in traces}
    return charts


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_runs_page_lists_every_run_with_its_metrics_and_compares_two(demo_runs):
    at = app(demo_runs.root)
    table = at.dataframe[0].value
    assert len(table) == 2 + 8
    for _, row in table.iterrows():
        run = demo_runs.root / row["run"]  # the name shown is the path relative to --runs
        metrics = json.loads((run / "metrics.json").read_text())
        assert row["pnl_total"] == metrics["pnl_total"]
        assert row["pnl_rate.mean"] == metrics["pnl_rate"]["mean"] and row["sharpe.n"] == metrics["sharpe"]["n"]
        assert unquote(row["open"]) == f"run?run={row['run']}"  # the link to its detail page, by that name
    assert list(table["pnl_total"]) == sorted(table["pnl_total"], reverse=True)
    assert set(table.loc[table["signal"], "run"]) == {demo_runs.signal.name}

    at.text_input[0].set_value("pt-").run()
    assert len(at.dataframe[0].value) == 8
    at.selectbox[0].set_value("fill_count").run()
    at.checkbox[0].uncheck().run()
    assert list(at.dataframe[0].value["fill_count"]) == sorted(at.dataframe[0].value["fill_count"])

    results = pd.read_parquet(demo_runs.sweep / "results.parquet")
    a, b = (results[(results["window"] == 0) & (results["strategy.linear_skew_bps"] == 1.0)]["run_dir"])
    at.multiselect[0].set_value([str(demo_runs.sweep / a), str(demo_runs.sweep / b)]).run()
    side = at.dataframe[1].value
    assert list(side.columns) == ["differs", f"demo/{a}", f"demo/{b}"]
    assert side.loc["fill_count", f"demo/{a}"] == str(results.set_index("run_dir").loc[a, "fill_count"])
    assert side.loc["sharpe.status", f"demo/{a}"] == "too_short"
    n = results.set_index("run_dir").loc[a, "pnl_rate.n"]
    assert f"Too short to tell whether the PnL rates differ: demo/{a} has {n} and demo/{b} has {n} 1-minute " \
           f"changes" in texts(at.markdown)
    changed = at.dataframe[3].value
    assert "strategy.half_spread_bps" in changed.index and "strategy.levels" not in changed.index
    assert "Total PnL" in figures(at)


def test_runs_page_opens_the_picked_run(demo_runs):
    at = app(demo_runs.root)
    at.selectbox[1].set_value(str(demo_runs.plain)).run()
    at.button[0].click().run()
    assert at.title[0].value == "Run detail"
    assert at.query_params["run"] == demo_runs.plain.name  # its name under --runs, a link a person can share


def test_run_detail_draws_the_run_from_its_files(demo_runs):
    at = app(demo_runs.root, run=demo_runs.plain, page="views/run_detail.py")
    metrics = json.loads((demo_runs.plain / "metrics.json").read_text())
    equity = pd.read_parquet(demo_runs.plain / "equity.parquet")
    fills = pd.read_parquet(demo_runs.plain / "fills.parquet")
    charts = figures(at)
    pnl = charts["PnL and its decomposition (USDC, marked at mid)"]
    total = pnl["total PnL"]
    assert total["y"][-1] == pytest.approx(metrics["pnl_total"])
    assert min(total["y"]) == pytest.approx(equity["equity"].min())  # downsampling keeps the extremes
    price = charts["Price: market mid, our quotes and fills"]
    drawn_fills = len(price["buy fills"]["y"]) + len(price["sell fills"]["y"])
    assert drawn_fills == len(fills) == metrics["fill_count"]
    markout = charts["Markout, qty-weighted (+ = good for us)"]
    assert markout["all"]["y"][1] == pytest.approx(metrics["markout_bps"]["5s"])
    assert "Inventory (SEI)" in charts
    stats = at.dataframe[0].value.set_index("statistic")["value"]
    assert stats["orders submitted"] == str(metrics["orders_submitted"])
    assert "No signal ran in this run" in texts(at.info)
    assert 'half_spread_bps = 2.5' in at.code[0].value
    assert [m.value for m in at.metric][:1] == [format(metrics["pnl_total"], ",.4f")]


def test_run_detail_says_a_short_run_has_no_sharpe(demo_runs):
    at = app(demo_runs.root, run=demo_runs.plain.name, page="views/run_detail.py")
    cards = {m.label: m.value for m in at.metric}
    assert cards["Sharpe"] == "n/a (too short)"  # a 10-minute run: 10 one-minute changes
    rate = json.loads((demo_runs.plain / "metrics.json").read_text())["pnl_rate"]
    assert cards["PnL per hour (USDC)"] == f"{rate['mean']:+.3g} (no CI)"
    assert "Sharpe: n/a (too short: 10 1min changes, needs 30)" in texts(at.caption)


def test_a_run_page_opens_by_name_relative_path_or_absolute_path(demo_runs):
    point = sorted(demo_runs.sweep.glob("pt-*"))[0]
    for asked in (f"demo/{point.name}", point.name, str(point)):  # as the table shows it, its dir name, absolute
        at = app(demo_runs.root, run=asked, page="views/run_detail.py")
        assert at.selectbox[0].value == str(point), asked
        assert at.query_params["run"] == f"demo/{point.name}"  # the URL settles on the table's name
        assert "sweep point: strategy.half_spread_bps" in texts(at.caption) and not at.error
    at = app(demo_runs.root, run=demo_runs.signal.name, page="views/run_detail.py")
    assert at.selectbox[0].value == str(demo_runs.signal) and "Signal vs realised" in " ".join(figures(at))


def test_a_missing_run_says_where_it_looked(demo_runs, tmp_path):
    at = app(demo_runs.root, run="no-such-run", page="views/run_detail.py")
    assert texts(at.error) == (
        f"No run 'no-such-run'. Looked for the directory {demo_runs.root / 'no-such-run'} (it does not exist), and "
        f"for a run dir named 'no-such-run' among the 10 runs found under the runs directory {demo_runs.root} "
        f"(none has that name). Open a run by the name the Runs table shows (its path relative to "
        f"{demo_runs.root}), or by an absolute path.")
    assert not at.get("plotly_chart")
    for side in ("a", "b"):  # two runs whose dirs share a name: the bare name is ambiguous, the path is not
        shutil.copytree(demo_runs.plain, tmp_path / side / "same")
    at = app(tmp_path, run="same", page="views/run_detail.py")
    assert texts(at.error) == f"'same' could be any of 2 runs under {tmp_path}: a/same, b/same. Open one by its " \
                              f"name in the Runs table."
    assert app(tmp_path, run="b/same", page="views/run_detail.py").selectbox[0].value == str(tmp_path / "b/same")


def test_compare_says_whether_pnl_rates_differ_beyond_their_noise(demo_runs, tmp_path):
    """Two copies of a run given known PnL rates (per hour): 2.0 +- 0.5 and 0.5 +- 0.4 (standard
    errors) differ by 1.5 with a standard error of sqrt(0.41); z = 2.34 is beyond 1.645."""
    for name, mean, se in (("fast", 2.0, 0.5), ("slow", 0.5, 0.4)):
        shutil.copytree(demo_runs.plain, tmp_path / name)
        path = tmp_path / name / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["pnl_rate"].update(mean=mean, se=se, ci_low=mean - 1.6449 * se, ci_high=mean + 1.6449 * se, n=120)
        path.write_text(json.dumps(metrics))
    at = app(tmp_path)
    at.multiselect[0].set_value([str(tmp_path / "fast"), str(tmp_path / "slow")]).run()
    se = math.sqrt(0.5**2 + 0.4**2)
    assert (f"fast minus slow: +1.5000 USDC per hour, ± {1.6449 * se:,.4f} at 90% (z = {1.5 / se:+.2f}). The "
            f"difference is larger than its noise: fast earns more.") in texts(at.markdown)
    rates = at.dataframe[2].value
    assert list(rates["PnL per hour (USDC)"]) == [2.0, 0.5] and list(rates["1-minute changes"]) == [120, 120]


def test_compare_rates_by_hand():
    def rate(mean, se, n=120):
        return {"mean": mean, "se": se, "ci_low": mean - 1.6449 * se, "ci_high": mean + 1.6449 * se, "n": n}

    verdict, table = analysis.compare_rates({"a": rate(1.0, 0.3), "b": rate(0.5, 0.4)}, "USDT")
    assert verdict == ("a minus b: +0.5000 USDT per hour, ± 0.8224 at 90% (z = +1.00). The difference is within its "
                       "noise: these runs cannot be told apart on PnL rate.")
    verdict, _ = analysis.compare_rates({"a": rate(-1.0, 0.3), "b": rate(0.5, 0.4)}, "USDT")
    assert verdict.endswith("(z = -3.00). The difference is larger than its noise: b earns more.")
    verdict, table = analysis.compare_rates({"a": rate(24.0, 3.0, n=2880), "b": rate(12.0, 3.0, n=1440)}, "USDT")
    assert verdict.startswith("a minus b: +288.0000 USDT per day, ±") and "PnL per day (USDT)" in table
    short = {"mean": 0.5, "se": None, "ci_low": None, "ci_high": None, "n": 12}
    verdict, _ = analysis.compare_rates({"a": rate(1.0, 0.3), "b": short}, "USDT")
    assert verdict.startswith("Too short to tell whether the PnL rates differ: b has 12 1-minute changes")
    verdict, table = analysis.compare_rates({"a": rate(1.0, 0.3), "b": None}, "USDT")
    assert verdict.startswith("No PnL rate for b") and table.empty


def test_risk_cards_show_the_interval_or_why_there_is_none():
    base = {"horizon": "1min", "ci_level": 0.9, "n": 179, "status": "not_annualised", "per_period": 0.123,
            "ci_low": -0.006, "ci_high": 0.253, "annualised": None}
    assert analysis.ratio_label(base) == "Sharpe per 1min (90% CI)"
    assert analysis.ratio_card(base) == "+0.123 ± 0.130"
    day = {**base, "status": "ok", "annualised": 3.21, "annualised_ci_low": 1.0, "annualised_ci_high": 5.42}
    assert analysis.ratio_label(day) == "Sharpe, annualised (90% CI)" and analysis.ratio_card(day) == "+3.2 ± 2.2"
    assert analysis.ratio_card({**base, "status": "too_short", "per_period": None}) == "n/a (too short)"
    assert analysis.ratio_card({**base, "status": "undefined", "per_period": None}) == "n/a (undefined)"
    rate = {"mean": 1.3448, "se": 0.8159, "ci_low": 0.0028, "ci_high": 2.6868, "n": 179}
    assert analysis.rate_card(rate) == "+1.34 ± 1.34" and analysis.rate_card(rate, 24.0) == "+32.3 ± 32.2"
    assert analysis.rate_card({**rate, "mean": 1234.5, "ci_high": 1500.0}) == "+1,234 ± 266"
    assert analysis.rate_card({**rate, "se": None}) == "+1.34 (no CI)" and analysis.rate_card(None) == "n/a"


def test_run_detail_zooms_into_a_time_window(demo_runs):
    at = app(demo_runs.root, run=demo_runs.plain, page="views/run_detail.py")
    first, last = at.slider[0].value
    at.slider[0].set_value((first, first + timedelta(minutes=2))).run()
    inventory = figures(at)["Inventory (SEI)"]["inventory"]
    times = pd.to_datetime(inventory["x"]).tz_localize(None)  # plotly writes UTC times without the offset
    start = pd.Timestamp(first)
    assert times.min() == start and times.max() == start + pd.Timedelta(minutes=2)
    assert len(inventory["x"]) == 121  # every 1 s sample of the two minutes


def test_run_detail_compares_the_signal_with_what_followed(demo_runs):
    """Over the model's own horizon (the bundled model's is 5 s), and with the model's out-of-sample
    evaluation: its verdict and the test-window scores of every model and baseline per horizon."""
    at = app(demo_runs.root, run=demo_runs.signal, page="views/run_detail.py")
    signal = figures(at)["Signal vs realised mid move over the next 5 s"]
    realised = signal["realised (mean per decile)"]
    assert 2 <= len(realised["x"]) <= 10 and list(realised["x"]) == sorted(realised["x"])
    frame = pd.read_parquet(demo_runs.signal / "signal.parquet")
    assert (frame["horizon_s"] == 5.0).all()
    compared = int(realised["customdata"].astype(int).sum())
    assert len(frame) * 0.95 < compared < len(frame)  # all but the last 5 s, whose outcome the run does not hold
    assert "correlation" in texts(at.caption)
    meta = json.loads((ROOT / "models/artifacts/sample/meta.json").read_text())
    assert texts(at.success) == meta["verdict"]["text"]
    (table,) = [d.value for d in at.dataframe if "log_loss" in d.value]
    test = meta["report"]["horizons"]
    assert len(table) == sum(len(h["test"]) for h in test.values())
    shipped = table[table["model"].str.endswith(" *")]
    assert list(shipped["horizon"]) == ["5s"] and list(shipped["model"]) == ["MLP *"]
    assert shipped["log_loss"].iloc[0] == test["5s"]["test"]["mlp"]["log_loss"]
    row = table[(table["horizon"] == "1s") & (table["model"] == "logistic on imb_1")].iloc[0]
    assert row["auc"] == test["1s"]["test"]["logreg_imb"]["auc"]
    assert row["direction_auc"] == test["1s"]["test"]["logreg_imb"]["direction_auc"]


@pytest.fixture(scope="module")
def signal_reports(tmp_path_factory) -> Path:
    """A runs dir holding the three kinds of signal report: the bundled model's training report, an
    evaluation of it on a window of the sample, and a small ablation."""
    from backtests.ablation import parse_span, run_ablation, write_report
    from models.train import evaluate_artifact

    root = tmp_path_factory.mktemp("signal-reports")
    meta = json.loads((ROOT / "models/artifacts/sample/meta.json").read_text())
    (root / "train.json").write_text(json.dumps(meta["report"]))
    evaluation = evaluate_artifact(ROOT / "models/artifacts/sample", ROOT / "data/sample", "+150min", "+160min")
    (root / "models").mkdir()
    (root / "models/eval.json").write_text(json.dumps(evaluation))
    ablation = run_ablation(ROOT / "backtests/configs/sample.toml",
                            [parse_span(str(ROOT / "data/sample"), "+125min", "+127min")], n_windows=2, resamples=500)
    write_report(ablation, root / "ablation.json")
    (root / "unrelated.json").write_text(json.dumps({"kind": "something else"}))
    return root


def test_signal_page_shows_training_evaluation_and_ablation_reports(signal_reports):
    at = app(signal_reports, page="views/signal.py")
    options = at.selectbox[0].options
    assert len(options) == 3 and not any("unrelated" in o for o in options)
    meta = json.loads((ROOT / "models/artifacts/sample/meta.json").read_text())
    at.selectbox[0].set_value(str(signal_reports / "train.json")).run()
    assert texts(at.success) == "Verdict: " + meta["verdict"]["text"]
    scores = next(d.value for d in at.dataframe if "log_loss" in d.value)
    assert len(scores) == 3 * 7 and list(scores[scores["model"].str.endswith(" *")]["horizon"]) == ["5s"]
    assert any("Walk-forward at 5s" in h.value for h in at.subheader)

    at.selectbox[0].set_value(str(signal_reports / "models/eval.json")).run()
    evaluation = json.loads((signal_reports / "models/eval.json").read_text())
    (scores,) = [d.value for d in at.dataframe]
    assert len(scores) == 5 and scores.loc[scores["model"] == "MLP *", "log_loss"].iloc[0] == \
        evaluation["horizons"]["5s"]["scores"]["mlp"]["log_loss"]
    assert "2026-01-05T02:30:00+00:00 .. 2026-01-05T02:40:00+00:00" in texts(at.caption)

    at.selectbox[0].set_value(str(signal_reports / "ablation.json")).run()
    ablation = json.loads((signal_reports / "ablation.json").read_text())
    on = ablation["summary"]["synthetic"]["on"]["diff_vs_off"]
    assert f"signal on minus off: {on['mean']:+.4f} per window" in texts(at.success) + texts(at.warning)
    table = at.dataframe[0].value
    assert list(table["arm"]) == ["off", "on"] and table["on_minus_off"].iloc[1] == pytest.approx(on["mean"])


def test_signal_page_says_how_to_make_a_report(tmp_path):
    at = app(tmp_path, page="views/signal.py")
    assert "No signal report under" in texts(at.info) and "flashmm ablation" in texts(at.info)


def test_sweep_page_heatmap_pareto_and_click_through(demo_runs):
    at = app(demo_runs.root, page="views/sweep.py")
    results = pd.read_parquet(demo_runs.sweep / "results.parquet")
    assert len(at.dataframe[0].value) == len(results) == 8
    links = [unquote(link) for link in at.dataframe[0].value["open"]]
    assert links == [f"run?run={demo_runs.sweep.name}/{d}" for d in results["run_dir"]]
    heat = figures(at)["pnl_total over strategy.half_spread_bps x strategy.linear_skew_bps"][None]
    pivot = results.pivot_table(index="strategy.linear_skew_bps", columns="strategy.half_spread_bps",
                                values="pnl_total", aggfunc="mean")
    assert np.allclose(np.array(heat["z"], dtype=float), pivot.to_numpy())
    metric_box = next(s for s in at.selectbox if s.label == "Metric")
    metric_box.set_value("max_drawdown").run()
    heat = figures(at)["max_drawdown over strategy.half_spread_bps x strategy.linear_skew_bps"][None]
    assert np.allclose(np.array(heat["z"], dtype=float), results.pivot_table(
        index="strategy.linear_skew_bps", columns="strategy.half_spread_bps", values="max_drawdown").to_numpy())

    metric_box.set_value("sharpe.ci_low").run()  # 5-minute points: no Sharpe, and the page says why
    assert "sharpe.ci_low is n/a for every point of this sweep: its runs have at most 5 one-minute changes, and " \
           "a risk ratio needs 30." in texts(at.info)
    assert not any(title.startswith("sharpe") for title in figures(at))

    pareto = figures(at)["PnL vs max drawdown"]
    front = pareto["Pareto front"]
    expected = results[pareto_front(results)]
    assert sorted(front["customdata"]) == sorted(expected["point_id"])
    assert "Walk-forward: tuned on one window, reported on the next" in texts(at.subheader)

    point_box = next(s for s in at.selectbox if s.label == "Point")
    point_box.set_value(3).run()
    next(b for b in at.button if b.label == "Open run detail").click().run()
    assert at.title[0].value == "Run detail"
    assert at.query_params["run"] == f"{demo_runs.sweep.name}/{results['run_dir'][3]}"
    assert "sweep point: strategy.half_spread_bps" in texts(at.caption)


def test_live_page_reads_the_node_status(tmp_path):
    at = app(tmp_path, page="views/live.py")
    assert "No node status found: no live state dir is set" in texts(at.info)

    state = tmp_path / "state"
    state.mkdir()
    at = app(tmp_path, live=state, page="views/live.py")
    assert f"No node status found at {state}" in texts(at.warning)

    session = state / "paper-20260101T000000-000001"
    session.mkdir()
    now = datetime.now(UTC).isoformat()
    (session / "status.json").write_text(json.dumps({
        "mode": "paper", "updated_at": now, "connected": True, "last_block_height": 1234, "last_block_age_s": 0.4,
        "halted": False, "pnl": 1.25, "inventory": -300.0, "fills": 7,
        "quotes": [{"client_order_id": "O-1", "side": "BUY", "price_ticks": 3999, "leaves": 200.0, "state": "live"}],
        "execution": {"rejects": 2},
    }))
    at = app(tmp_path, live=state, page="views/live.py")
    shown = {m.label: m.value for m in at.metric}
    assert shown["mode"] == "paper" and shown["connected"] == "yes" and shown["block height"] == "1,234"
    assert shown["PnL (quote)"] == "1.2500" and shown["inventory (base)"] == "-300.0000" and shown["fills"] == "7"
    assert at.dataframe[0].value["price_ticks"].tolist() == [3999]
    assert at.json[0].value and json.loads(at.json[0].value) == {"execution": {"rejects": 2}}
    assert not at.warning  # fresh status

    (session / "status.json").write_text('{"mode": "paper", "pnl": ')
    at = app(tmp_path, live=session, page="views/live.py")
    assert "status.json is not valid JSON" in texts(at.error)


@pytest.fixture
def broken_runs(demo_runs, tmp_path) -> Path:
    root = tmp_path / "runs"
    (root / "empty-run").mkdir(parents=True)
    (root / "corrupt-metrics").mkdir()
    (root / "corrupt-metrics/metrics.json").write_text("{not json")
    shutil.copytree(demo_runs.plain, root / "corrupt-equity")
    (root / "corrupt-equity/equity.parquet").write_bytes(b"PAR1 this is not parquet")
    shutil.copytree(demo_runs.plain, root / "good")
    return root


def test_empty_and_corrupt_run_dirs_get_a_message_not_a_traceback(broken_runs):
    at = app(broken_runs)
    errors = texts(at.error)
    assert f"{broken_runs / 'empty-run'} has no metrics.json, so it is not a finished run (it is empty)" in errors
    assert f"{broken_runs / 'corrupt-metrics/metrics.json'} is not valid JSON" in errors
    assert list(at.dataframe[0].value["run"]) == ["corrupt-equity", "good"]

    at = app(broken_runs, run=broken_runs / "corrupt-metrics", page="views/run_detail.py")
    assert "corrupt-metrics/metrics.json is not valid JSON" in texts(at.error)
    at = app(broken_runs, run=broken_runs / "corrupt-equity", page="views/run_detail.py")
    assert f"{broken_runs / 'corrupt-equity/equity.parquet'} is not a readable Parquet file" in texts(at.error)
    at = app(broken_runs, run=broken_runs / "empty-run", page="views/run_detail.py")
    assert "has no metrics.json" in texts(at.error)


def test_every_page_says_what_to_do_when_there_is_nothing_to_show(tmp_path):
    missing = tmp_path / "nowhere"
    assert "does not exist" in texts(app(missing).warning)
    assert "No run directories found" in texts(app(tmp_path, page="views/run_detail.py").info)
    assert "No sweep found" in texts(app(tmp_path, page="views/sweep.py").info)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep/results.parquet").write_text("garbage")
    assert "results.parquet is not a readable Parquet file" in texts(app(tmp_path, page="views/sweep.py").error)


def test_minmax_downsampling_keeps_extremes_and_order():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"ts": np.arange(100_000) * 1_000_000_000, "a": rng.normal(size=100_000).cumsum(),
                          "b": rng.normal(size=100_000)})
    frame.loc[54_321, "b"] = 99.0
    small = minmax_downsample(frame, "ts", ["a", "b"], max_points=2_000)
    assert len(small) <= 2_000 and small["ts"].is_monotonic_increasing
    for column in ("a", "b"):
        assert small[column].max() == frame[column].max() and small[column].min() == frame[column].min()
    assert small.index[0] == 0 and small.index[-1] == len(frame) - 1
    assert minmax_downsample(frame.head(50), "ts", ["a"], max_points=2_000).equals(frame.head(50))


def test_pareto_front_is_exactly_the_non_dominated_points():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"pnl_total": rng.normal(size=60), "max_drawdown": rng.exponential(size=60)})
    front = pareto_front(frame)
    for i, row in frame.iterrows():
        beaten = ((frame["pnl_total"] >= row["pnl_total"]) & (frame["max_drawdown"] <= row["max_drawdown"]) & (
            (frame["pnl_total"] > row["pnl_total"]) | (frame["max_drawdown"] < row["max_drawdown"]))).any()
        assert front[i] == (not beaten)
    assert 0 < front.sum() < len(frame)


def test_heatmap_bins_a_random_search_axis_and_averages_the_rest():
    rng = np.random.default_rng(8)
    results = pd.DataFrame({"a": rng.uniform(1, 50, 200), "b": rng.choice([1, 2, 3], 200), "m": rng.normal(size=200)})
    table = analysis.heatmap_table(results, "m", "a", "b", max_levels=4)
    assert table.shape == (3, 4) and not table.isna().any().any()
    lows = [float(c.split(" .. ")[0]) for c in table.columns]
    assert lows == sorted(lows)  # bins in numeric order, not as text
    first_bin = results["a"] <= results["a"].quantile(0.25)
    assert table.iloc[0, 0] == pytest.approx(results[first_bin & (results["b"] == 1)]["m"].mean())
    decades = results.assign(a=results["a"] // 10)  # five levels: a grid axis, kept as is
    grid = analysis.heatmap_table(decades, "m", "a", "b", max_levels=8)
    assert list(grid.columns) == sorted(decades["a"].unique())
