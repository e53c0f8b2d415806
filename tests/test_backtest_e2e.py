"""End to end: the CLI on the bundled sample, and the full stack on a generated tape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from backtests.config import as_logged, load_config, parse_config
from backtests.runner import run_backtest
from data.catalog import open_tape
from data.synth import generate
from strategies.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = ROOT / "backtests/configs/sample.toml"
METRIC_KEYS = {
    "pnl_total", "pnl_spread_capture", "pnl_inventory", "fees_paid", "fill_count", "maker_volume", "fill_ratio",
    "cancel_to_fill", "quote_uptime", "markout_bps", "inventory_mean", "inventory_std", "inventory_max_abs",
    "time_at_limit_pct", "sharpe", "sortino", "pnl_rate", "max_drawdown", "pnl_per_drawdown", "turnover",
    "spread_improvement_pct",
    "events_processed", "wall_seconds", "fill_model",
}


@pytest.fixture(scope="module")
def tape(tmp_path_factory) -> Path:
    return generate(hours=0.5, seed=11, out=tmp_path_factory.mktemp("synth") / "tape")


def config_for(tape: Path, tmp: Path, **strategy) -> dict:
    raw = load_config(SAMPLE_CONFIG).to_dict()
    raw["run"].update(catalog=str(tape), out=str(tmp / "runs"), start="")  # the whole generated tape
    raw["strategy"].update(strategy)
    return raw


@pytest.mark.slow
def test_cli_backtest_on_the_bundled_sample(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "backtest", "--config", str(SAMPLE_CONFIG), "--out", str(tmp_path),
         "--quiet"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dirs = list(tmp_path.iterdir())
    assert len(run_dirs) == 1
    run = run_dirs[0]
    assert f"Run written to {run}" in out.stdout
    for name in ["config.toml", "metrics.json", "fills.parquet", "orders.parquet", "equity.parquet", "quotes.parquet",
                 "signal.parquet"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert set(metrics["markout_bps"]) == {"1s", "5s", "30s", "60s"}
    assert metrics["fill_model"] == "queue" and "queue (prob_power n=2" in out.stdout
    assert metrics["queue_model"] == "prob_power" and metrics["queue_power"] == 2.0
    assert metrics["pnl_spread_capture"] + metrics["pnl_inventory"] - metrics["fees_paid"] - metrics[
        "costs_paid"] == pytest.approx(metrics["pnl_total"], abs=1e-6)
    # the sei-clob venue charges gas per action: every place and cancel is costed
    assert metrics["costs_paid"] > 0
    assert metrics["costs_paid"] == pytest.approx(metrics["actions_sent"] * metrics["venue"]["action_cost"])
    assert metrics["actions_sent"] >= metrics["orders_submitted"] > 0
    # the demo is out of sample: it starts where the bundled model's training and validation end
    model_meta = json.loads((ROOT / "models/artifacts/sample/meta.json").read_text())
    assert metrics["window"]["start"] >= model_meta["windows"]["valid"][1]
    assert metrics["fill_count"] > 0 and metrics["events_processed"] > 100_000
    # passive fills at the touch from prints, not only when the book crosses us
    fills_df = pd.read_parquet(run / "fills.parquet")
    at_touch = ((fills_df.side == 1) & (fills_df.price == fills_df.bid_at_fill)) | (
        (fills_df.side == -1) & (fills_df.price == fills_df.ask_at_fill))
    assert at_touch.sum() == metrics["fills_at_touch"] > 0
    assert metrics["queue_fills"]["trade_fills"] > metrics["queue_fills"]["cross_fills"]
    assert (fills_df["liquidity"] == "MAKER").all()
    written = load_config(run / "config.toml")  # the written config is complete and valid
    assert written.strategy_config() == load_config(SAMPLE_CONFIG).resolved({"venue_profile": "sei-clob"}
                                                                             ).strategy_config()
    assert written.strategy_config().requote_interval_ms == 400  # the sei-clob profile's block cadence
    fills = pd.read_parquet(run / "fills.parquet")
    assert len(fills) == metrics["fill_count"]
    equity = pd.read_parquet(run / "equity.parquet")
    assert {"mid", "inventory", "cash", "equity", "pnl_spread_capture", "pnl_inventory", "fees_paid",
            "costs_paid"} <= set(equity)
    assert equity["inventory"].abs().max() <= 4000.0
    # three hours: a Sharpe per 1-minute change with its interval and sample count, not annualised
    minutes = int((equity["ts"].iloc[-1] - equity["ts"].iloc[0]) // 60_000_000_000)
    sharpe = metrics["sharpe"]
    assert sharpe["n"] == minutes == metrics["pnl_rate"]["n"] and 30 <= minutes < 1440  # a ratio, not annualised
    assert sharpe["status"] == "not_annualised" and sharpe["annualised"] is None
    assert sharpe["ci_low"] < sharpe["per_period"] < sharpe["ci_high"]
    sharpe_line = next(line for line in out.stdout.splitlines() if line.strip().startswith("sharpe "))
    assert sharpe_line.endswith(f"n={minutes}; not annualised (fewer than 1,440 changes, a day)")
    assert "PnL rate (USDC)" in out.stdout and "(ann.)" not in out.stdout
    # the bundled model drove the run, block by block
    signal = pd.read_parquet(run / "signal.parquet")
    assert metrics["signal"]["model_id"].startswith("mlp-") and metrics["signal"]["model_blocks"] == len(signal)
    assert not signal["fallback"].any() and len(signal) > 8_000  # the last hour, a block every ~400 ms
    probs = signal[["p_down", "p_flat", "p_up"]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all() and abs(probs.sum(axis=1) - 1).max() < 1e-5


def test_same_seed_same_run(tape, tmp_path):
    a = run_backtest(parse_config(config_for(tape, tmp_path)), write=False)
    b = run_backtest(parse_config(config_for(tape, tmp_path)), write=False)
    def strip(m):  # timings are measurements, not results
        m = {k: v for k, v in m.items() if k != "wall_seconds"}
        m["signal"] = {k: v for k, v in m["signal"].items() if not k.startswith("inference_us")}
        return m

    assert strip(a.metrics) == strip(b.metrics)
    assert a.metrics["signal"]["model_blocks"] > 0
    pd.testing.assert_frame_equal(a.signals.drop(columns="latency_us"), b.signals.drop(columns="latency_us"))
    pd.testing.assert_frame_equal(a.analytics.fills, b.analytics.fills)
    pd.testing.assert_frame_equal(a.orders, b.orders)


@pytest.mark.parametrize("model, extra", [
    ("fixed", {}),
    ("avellaneda_stoikov", {"gamma": 0.05, "kappa": 1.0}),
    ("glft", {"gamma": 0.05, "glft_a": 2.0, "glft_k": 1.0}),
])
def test_limits_hold_on_a_realistic_tape(tape, tmp_path, model, extra):
    """Tight limits and a busy market: position and notional never exceed what the config allows."""
    strategy = dict(spread_model=model, half_spread_bps=1.0, min_spread_bps=0.5, order_size=150.0, levels=3,
                    max_position=400.0, max_notional=150.0, linear_skew_bps=0.0, size_skew=0.0, **extra)
    result = run_backtest(parse_config(config_for(tape, tmp_path, **strategy)), write=False)
    assert result.metrics["fill_count"] > 0
    cap = min(400.0, 150.0 / result.analytics.equity["mid"].min())
    assert result.metrics["inventory_max_abs"] <= cap + 1e-9
    orders = result.orders
    assert orders["post_only"].all()
    assert ((orders["price"] * 10_000).round(6) % 1 == 0).all()
    assert ((orders["quantity"] * 10).round(6) % 1 == 0).all()


@pytest.mark.parametrize("section, key, value, needle", [
    ("run", "seeed", 1, "unknown key `run.seeed`"),
    ("venue", "fill_model", "magic", "fill_model"),
    ("strategy", "levelz", 3, "unknown key `strategy.levelz`"),
])
def test_bad_config_is_a_clear_error(tape, tmp_path, section, key, value, needle):
    raw = config_for(tape, tmp_path)
    raw[section][key] = value
    with pytest.raises(ConfigError, match=needle):
        parse_config(raw)


def test_cli_reports_bad_config_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\ncatalog = "nowhere"\n[strategy]\ninstrument_id = "SEI/USDC.SEI"\nlevelz = 2\n')
    out = subprocess.run([sys.executable, "-m", "app.cli", "backtest", "--config", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert "levelz" in out.stderr and "Traceback" not in out.stderr


def test_signal_ablation_on_unseen_data_changes_what_is_quoted(tmp_path):
    """The bundled model never saw the sample after +120min: off vs on, side by side. With the
    signal on, the strategy must quote differently wherever the model is confident: a signal the
    strategy drops (stale, wrongly stamped, unsubscribed) leaves the two runs' orders identical."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "backtest", "--config", str(SAMPLE_CONFIG), "--out", str(tmp_path),
         "--signal", "both", "--start", "+150min", "--end", "+165min", "--quiet"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    header = out.stdout.splitlines()[0]
    assert "signal off" in header and "signal on" in header
    assert "pnl_total" in out.stdout and "markout_bps.5s" in out.stdout
    assert "pnl_per_drawdown" in out.stdout and "sharpe.n" in out.stdout and "sharpe " not in out.stdout
    runs = sorted(tmp_path.iterdir())
    (on,) = [r for r in runs if (r / "signal.parquet").exists()]
    (off,) = [r for r in runs if r != on]
    signal = pd.read_parquet(on / "signal.parquet")
    # directional confidence |p_up - p_down|, enough to protect a side now and then
    assert np.allclose(signal["confidence"], (signal["p_up"] - signal["p_down"]).abs())
    confident = signal[signal["confidence"] >= load_config(SAMPLE_CONFIG).strategy_config().signal_adverse_edge]
    assert len(confident) > 20 and (signal["horizon_s"] == 5.0).all()
    orders = {name: pd.read_parquet(r / "orders.parquet") for name, r in (("on", on), ("off", off))}
    sent = {name: list(zip(o.ts_init, o.side, o.price, o.quantity, strict=True)) for name, o in orders.items()}
    assert sent["on"] != sent["off"]
    # not just timing: the signal moved prices (fair value from the mid plus the expected move)
    first_orders = {name: o.sort_values("ts_init").groupby("side").head(50) for name, o in orders.items()}
    assert set(first_orders["on"].price) != set(first_orders["off"].price)


def test_signal_actor_publishes_before_the_strategy_quotes(tape, tmp_path):
    """Every block's signal carries that block's timestamp, and the fallback covers a missing model."""
    raw = config_for(tape, tmp_path)
    raw["run"]["end"] = "+5min"
    raw["signal"]["model"] = str(tmp_path / "no-such-model")
    result = run_backtest(parse_config(raw), write=False)
    sig = result.metrics["signal"]
    assert sig["fallback_blocks"] == len(result.signals) > 500 and sig["model_blocks"] == 0
    assert sig["trips"]["missing"] >= 1
    assert result.metrics["fill_count"] > 0  # still quoting, on the rule-based fallback


def test_with_logging_off_the_strategy_formats_no_order_log_lines(tape, tmp_path):
    """A run at log level OFF bypasses NautilusTrader's logger, which would still format a line for
    each order command and event the strategy handles: its strategy runs with `log_commands` and
    `log_events` off. At a level that prints, the strategy config's own choice stands."""
    raw = config_for(tape, tmp_path)
    raw["run"].update(end="+5min")
    config = parse_config(raw)
    assert config.run.log_level == "OFF"  # the default
    result = run_backtest(config, write=False)
    assert result.metrics["orders_submitted"] > 0
    run_cfg = result.strategy.config
    assert (run_cfg.log_commands, run_cfg.log_events) == (False, False)
    asked = config.resolved(open_tape(tape).meta).strategy_config()  # as the run resolves it
    assert (asked.log_commands, asked.log_events) == (True, True)  # NautilusTrader's defaults, as asked
    assert msgspec.structs.replace(run_cfg, log_commands=True, log_events=True) == asked  # nothing else moved
    for level in ("ERROR", "WARNING", "INFO", "DEBUG"):
        assert as_logged(asked, level) is asked
