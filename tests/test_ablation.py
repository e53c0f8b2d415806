"""The signal ablation: arms, windows, paired differences, a seeded bootstrap interval, adverse-fill
rates, and the CLI on short windows of the bundled sample (the full study is a command; docs/signal.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.ablation import (
    USES,
    adverse_fill_rates,
    arm_overrides,
    bootstrap_mean_ci,
    parse_span,
    run_ablation,
    summarise,
    windows_of,
)
from backtests.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "backtests/configs/sample.toml"
SAMPLE = ROOT / "data/sample"


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1.0, size=40)
    a, b = bootstrap_mean_ci(x, resamples=4000, seed=7), bootstrap_mean_ci(x, resamples=4000, seed=7)
    assert a == b  # deterministic
    assert bootstrap_mean_ci(x, resamples=4000, seed=8) != a  # and actually resampled
    low, high = a
    assert low < x.mean() < high
    # close to the normal interval mean +- 1.645 se for a sample this size
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert low == pytest.approx(x.mean() - 1.645 * se, abs=0.25 * se)
    assert high == pytest.approx(x.mean() + 1.645 * se, abs=0.25 * se)
    assert bootstrap_mean_ci([1.0]) == (None, None)
    assert bootstrap_mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=30), st.integers(0, 2**31))
def test_bootstrap_interval_lies_within_the_data_and_is_ordered(values, seed):
    low, high = bootstrap_mean_ci(values, resamples=300, seed=seed)
    assert min(values) - 1e-9 <= low <= high <= max(values) + 1e-9


def test_adverse_fill_rate_is_the_share_of_quantity_marked_out_against_us():
    fills = pd.DataFrame({"qty": [1.0, 3.0, 2.0, 4.0], "markout_1s_bps": [-0.5, 2.0, np.nan, -1.0],
                          "markout_5s_bps": [0.0, -1.0, -2.0, 1.0], "markout_30s_bps": [np.nan] * 4})
    rates = adverse_fill_rates(fills)
    assert rates["1s"] == pytest.approx((1 + 4) / (1 + 3 + 4))  # the fill whose 1 s lies past the run is left out
    assert rates["5s"] == pytest.approx((3 + 2) / 10)  # a markout of exactly 0 is not adverse
    assert rates["30s"] is None
    assert adverse_fill_rates(fills.iloc[:0]) == {"1s": None, "5s": None, "30s": None}


def test_arms_switch_one_use_at_a_time():
    arms = arm_overrides(uses=True)
    assert list(arms) == ["off", "on", *USES]
    assert arms["off"] == {"strategy.use_signal": False} and arms["on"] == {"strategy.use_signal": True}
    for name, knob in USES.items():
        on = [k for k, v in arms[name].items() if v is True]
        assert on == ["strategy.use_signal", f"strategy.{knob}"], name
        assert len(arms[name]) == 1 + len(USES)
        load_config(CONFIG, arms[name]).strategy_config()  # every arm is a valid config
    assert list(arm_overrides(uses=False)) == ["off", "on"]


def test_catalog_spans_and_windows():
    span = parse_span("data/sample@+120min..+150min")
    assert span.catalog == str((Path.cwd() / "data/sample").resolve()) and (span.start, span.end) == ("+120min",
                                                                                                       "+150min")
    assert parse_span("somewhere@+5min..").end == "" and parse_span("x", "+1min", "+2min").start == "+1min"
    with pytest.raises(ValueError, match="DIR@START..END"):
        parse_span("data/sample@+120min")
    cuts = windows_of(str(CONFIG), parse_span(str(SAMPLE), "+120min", "+150min"), 3)
    minute = 60 * 10**9
    assert [(hi - lo) // minute for lo, hi in cuts] == [10, 10, 10]
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False))  # disjoint and contiguous


def test_summary_pairs_each_arm_with_off_in_the_same_window():
    def run(pnl, synthetic=True):
        return {"pnl_total": pnl, "costs_paid": 0.1, "fees_paid": 0.0, "pnl_inventory": 0.0,
                "pnl_spread_capture": pnl, "fill_count": 3, "actions_sent": 10, "maker_volume": 1.0,
                "markout_bps": {"1s": 1.0, "5s": 2.0, "30s": None, "60s": None},
                "adverse_fill_rate": {"1s": 0.25, "5s": 0.5, "30s": None}}
    windows = [{"catalog": f"/x/{c}", "synthetic": c != "real", "arms": {"off": run(off), "on": run(on)}}
               for c, off, on in (("a", 1.0, 1.5), ("a", -2.0, -1.0), ("b", 0.0, 0.25), ("real", 5.0, 1.0))]
    summary = summarise(windows, ["off", "on"], resamples=1000, seed=0)
    assert set(summary) == {"synthetic", "recorded", "catalog:a", "catalog:b", "catalog:real"}
    synth = summary["synthetic"]["on"]
    assert synth["windows"] == 3 and synth["diff_vs_off"]["mean"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert synth["diff_vs_off"]["share_positive"] == 1.0
    assert 0.25 <= synth["diff_vs_off"]["ci_low"] < synth["diff_vs_off"]["mean"]  # no resample mean below the least
    assert synth["diff_vs_off"]["above_zero"] is True
    real = summary["recorded"]["on"]["diff_vs_off"]
    assert real["mean"] == -4.0 and real["ci_low"] is None and real["above_zero"] is False  # one window: no interval
    assert summary["synthetic"]["off"]["diff_vs_off"] is None
    assert summary["synthetic"]["on"]["markout_bps"]["5s"] == 2.0 and summary["synthetic"]["on"]["markout_bps"][
        "30s"] is None


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[dict, dict, str]:
    """Two 2-minute windows of the sample's out-of-sample hour, every arm, through the CLI."""
    out = tmp_path_factory.mktemp("ablation") / "ablation.json"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "ablation", "--config", str(CONFIG), "--catalog",
         f"{SAMPLE}@+150min..+154min", "--windows", "2", "--uses", "--resamples", "2000", "--quiet",
         "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    again = run_ablation(CONFIG, [parse_span(f"{SAMPLE}@+150min..+154min")], n_windows=2, uses=True, resamples=2000)
    return report, again, done.stdout


def test_ablation_runs_every_arm_on_every_window_and_is_reproducible(small):
    report, again, stdout = small
    assert report["kind"] == "flashmm.ablation" and len(report["windows"]) == 2
    assert [(w["start"], w["end"]) for w in report["windows"]] == [
        ("2026-01-05T02:30:00+00:00", "2026-01-05T02:32:00+00:00"),
        ("2026-01-05T02:32:00+00:00", "2026-01-05T02:34:00+00:00")]
    for w in report["windows"]:
        assert list(w["arms"]) == ["off", "on", *USES]
        assert w["arms"]["off"]["model_id"] is None and w["arms"]["on"]["model_id"].startswith("mlp-")
        assert w["arms"]["on"]["fallback_blocks"] == 0 and w["arms"]["on"]["model_blocks"] > 250
        # PnL is net of fees and per-action costs (gas on the sample's venue)
        assert all(a["costs_paid"] > 0 for a in w["arms"].values())
    # the same windows and seed give the same report (the bootstrap included)
    assert report["summary"] == json.loads(json.dumps(again["summary"]))
    assert report["windows"] == json.loads(json.dumps(again["windows"]))
    on = report["summary"]["synthetic"]["on"]
    diffs = [w["arms"]["on"]["pnl_total"] - w["arms"]["off"]["pnl_total"] for w in report["windows"]]
    assert on["diff_vs_off"]["mean"] == pytest.approx(np.mean(diffs))
    assert on["diff_vs_off"]["ci_low"] <= on["diff_vs_off"]["mean"] <= on["diff_vs_off"]["ci_high"]
    assert "signal ablation: 2 windows x 6 arms" in stdout and "fair_skew" in stdout and "adverse 1s/5s/30s" in stdout


def test_each_use_changes_the_run_and_tightening_is_off_in_the_on_arm(small):
    report = small[0]
    for w in report["windows"]:
        arms = w["arms"]
        off = (arms["off"]["pnl_total"], arms["off"]["actions_sent"], arms["off"]["fill_count"])
        for name in ("on", "fair_skew", "adverse", "size_lean"):
            assert (arms[name]["pnl_total"], arms[name]["actions_sent"], arms[name]["fill_count"]) != off, name
    # the config's uses are the default ones: fair skew and adverse protection, not size lean or tightening
    strategy = load_config(CONFIG).strategy_config()
    assert strategy.signal_fair_skew and strategy.signal_adverse_protection
    assert not strategy.signal_size_lean and not strategy.signal_tighten
