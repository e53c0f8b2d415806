"""The real Binance ETHUSDT perp tape, end to end: imported by the CLI, backtested by the CLI.

Its two clocks differ by 1.23-1.27 s (the exchange's runs ahead of the capture host's). Decisions
and analytics run on the receive clock, so importing the tape with `timestamp := local_timestamp`
must give the very same run.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "data/real/binance-ethusdt-perp-20240808"
SHIPPED = ROOT / "data/real/ethusdt-perp-20240808"
CONFIG = ROOT / "backtests/configs/ethusdt_real.toml"
RUN_FILES = ("fills.parquet", "orders.parquet", "quotes.parquet", "equity.parquet")

pytestmark = pytest.mark.slow


def flashmm(*args: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def restamped(src: Path, dst: Path) -> Path:
    """The CSV with every exchange `timestamp` replaced by the row's `local_timestamp`."""
    with gzip.open(src, "rt", newline="") as f:
        rows = list(csv.reader(f))
    ts, local = rows[0].index("timestamp"), rows[0].index("local_timestamp")
    for row in rows[1:]:
        row[ts] = row[local]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    dst.write_bytes(gzip.compress(text.getvalue().encode()))
    return dst


def import_tape(book: Path, trades: Path, out: Path, cwd: Path) -> dict:
    return json.loads(flashmm("data", "import-tardis", "--book", str(book), "--trades", str(trades),
                              "--instrument", "ETH/USDT.BINANCE", "--price-precision", "2", "--size-precision", "3",
                              "--venue-profile", "binance-usdm", "--out", str(out), cwd=cwd))


def backtest(catalog: Path, out: Path, cwd: Path) -> Path:
    stdout = flashmm("backtest", "--config", str(CONFIG), "--catalog", str(catalog), "--out", str(out), "--quiet",
                     cwd=cwd)
    return Path(stdout.rsplit("Run written to ", 1)[1].strip())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("real")
    summaries, run_dirs = {}, {}
    book, trades = SOURCE / "book.csv.gz", SOURCE / "trades.csv.gz"
    local = (restamped(book, base / "book-local.csv.gz"), restamped(trades, base / "trades-local.csv.gz"))
    for name, files in (("recorded", (book, trades)), ("local", local)):
        summaries[name] = import_tape(*files, base / name, cwd=base)
        run_dirs[name] = backtest(base / name, base / f"runs-{name}", cwd=base)
    run_dirs["shipped"] = backtest(SHIPPED, base / "runs-shipped", cwd=base)
    return {"summaries": summaries, "runs": run_dirs}


def metrics_of(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("wall_seconds")
    return metrics


def test_the_tape_imports_whole_and_uncrossed(runs):
    summary = runs["summaries"]["recorded"]
    # every book row but the deletes of levels the book never held, every trade, no crossed batch
    assert summary["trades"] == 14_075 and summary["crossed_batches"] == 0
    assert summary["deltas"] + summary["skipped_deletes"] == 430_358 + 1  # + the snapshot's CLEAR
    assert runs["summaries"]["local"] == summary  # same batches, whichever clock stamps the rows


def test_the_exchange_clock_changes_nothing(runs):
    recorded, local = runs["runs"]["recorded"], runs["runs"]["local"]
    for name in RUN_FILES:
        assert (recorded / name).read_bytes() == (local / name).read_bytes(), name
    assert metrics_of(recorded) == metrics_of(local)


def test_the_shipped_catalog_is_what_the_importer_makes(runs):
    assert metrics_of(runs["runs"]["shipped"]) == metrics_of(runs["runs"]["recorded"])


def test_a_market_maker_on_the_real_book(runs):
    m = metrics_of(runs["runs"]["recorded"])
    assert m["instrument"]["quote"] == "USDT" and m["venue"]["profile"] == "binance-usdm"
    assert m["latency_ms"] == 50.0 and m["synthetic_data"] is False
    assert m["fill_count"] > 500 and m["quote_uptime"] > 0.5  # it quotes and trades on a real book
    assert m["queue_fills"]["trade_fills"] > m["queue_fills"]["cross_fills"]
    assert m["inventory_max_abs"] <= 0.5 + 1e-9  # max_position holds
    assert m["orders_left_open"] == 0
    fills = pd.read_parquet(runs["runs"]["recorded"] / "fills.parquet")
    assert fills["ts"].is_monotonic_increasing and fills["mid_at_fill"].notna().all()
    assert (fills["commission_currency"] == "USDT").all()
    # maker fees from the venue profile: 2 bps of turnover
    assert m["fees_paid"] == pytest.approx(0.0002 * m["turnover"], rel=1e-6)
    assert m["pnl_spread_capture"] + m["pnl_inventory"] - m["fees_paid"] - m["costs_paid"] == pytest.approx(
        m["pnl_total"], abs=1e-6)


def test_the_signal_changes_what_is_quoted_on_the_real_book(tmp_path):
    """The market's own model (models/artifacts/ethusdt, from the tape's first 180 s) on the rest
    of the tape: with the signal on the strategy quotes differently, at the prices it chooses, not
    only at other times (a signal dropped as stale or mis-stamped would leave the orders identical)."""
    out = subprocess.run([sys.executable, "-m", "app.cli", "backtest", "--config", str(CONFIG), "--start", "+180s",
                          "--signal", "both", "--out", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(tmp_path.iterdir())
    (on,) = [r for r in runs if (r / "signal.parquet").exists()]
    (off,) = [r for r in runs if r != on]
    signal = pd.read_parquet(on / "signal.parquet")
    assert (~signal["fallback"]).sum() > 1000  # the model itself, not its fallback
    orders = {name: pd.read_parquet(r / "orders.parquet") for name, r in (("on", on), ("off", off))}
    assert len(orders["on"]) > 50 and len(orders["off"]) > 50
    sent = {name: set(zip(o.side, o.price, strict=True)) for name, o in orders.items()}
    assert sent["on"] != sent["off"]
