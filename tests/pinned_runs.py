"""Pinned runs: what two backtests produced when their fixtures were written, fill by fill.

An optimisation must not change what a run does (issue 16: "fills identical before and after each
optimisation, or the difference explained"). `tests/test_pinned_runs.py` runs each pin again and
compares it with its fixture in `tests/fixtures/pinned/`: every fill in full, and a SHA-256 of
every other file's rows (orders, quotes, equity, signal), so a difference anywhere fails and the
fills show where it starts.

A change that is meant to change behaviour regenerates the fixtures, and its commit says why (a test
of the new behaviour goes with it):

    .venv/bin/python tests/pinned_runs.py --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pinned"

# name -> (config, overrides): small windows of both bundled tapes, each with the signal on. The real
# tape's window starts inside it, so its run begins from a seed snapshot of the book.
PINS = {
    "sample_30min_signal": ("backtests/configs/sample.toml", {"run.end": "+150min", "strategy.use_signal": True}),
    "ethusdt_real_last_2min_signal": ("backtests/configs/ethusdt_real.toml",
                                      {"run.start": "+240s", "strategy.use_signal": True}),
}
METRICS = ("orders_submitted", "actions_sent", "fill_count", "pnl_total", "maker_volume", "fees_paid",
           "orders_left_open", "strategy_stats")


def rows(frame: pd.DataFrame | None) -> list:
    """A frame's columns and rows as JSON values: floats by their shortest exact repr, so equal rows
    are equal bits; a missing value (NaN or None) is null, which compares equal to itself."""
    if frame is None:
        return []
    return [list(frame.columns), [[None if _missing(v) else v for v in row]
                                  for row in frame.to_numpy(dtype=object).tolist()]]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def digest(frame: pd.DataFrame | None) -> str:
    return hashlib.sha256(json.dumps(rows(frame)).encode()).hexdigest()


def fingerprint(name: str) -> dict:
    """Run the pin and return what its fixture holds."""
    from backtests.config import load_config
    from backtests.runner import run_backtest

    config_path, overrides = PINS[name]
    result = run_backtest(load_config(ROOT / config_path, overrides), write=False)
    fills = result.analytics.fills
    return {
        "config": config_path,
        "overrides": overrides,
        "metrics": {key: result.metrics.get(key) for key in METRICS},
        "sha256": {"fills": digest(fills), "orders": digest(result.orders), "quotes": digest(result.quotes),
                   "equity": digest(result.analytics.equity), "signal": digest(result.signals)},
        "fills": rows(fills),
    }


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def fixture_text(pin: dict) -> str:
    """The fixture as JSON with one fill per line, so a regenerated fixture diffs fill by fill."""
    head = json.dumps({k: v for k, v in pin.items() if k != "fills"}, indent=1)
    columns, fills = pin["fills"] or [[], []]
    lines = ",\n  ".join(json.dumps(row) for row in fills)
    return f'{head[:-2]},\n "fills": [\n  {json.dumps(columns)},\n  [\n  {lines}\n  ]\n ]\n}}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description="Rewrite the pinned runs' fixtures from the current code.")
    parser.add_argument("--write", action="store_true", required=True)
    parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in PINS:
        pin = {"written_by": "python tests/pinned_runs.py --write (not compared: the run is)", **fingerprint(name)}
        text = fixture_text(pin)
        if json.loads(text) != json.loads(json.dumps(pin)):
            raise RuntimeError(f"{name}: the fixture would not read back as written")
        fixture_path(name).write_text(text)
        print(f"wrote {fixture_path(name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
