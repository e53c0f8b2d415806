"""Paper mode, recording, and the parity check, each against a real localnet over real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from app.live.localrun import node_config, read_back, run_node, start_localnet
from data.catalog import open_tape

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def last_json(text: str):
    start = text.rfind("\n{")
    return json.loads(text[start + 1:] if start >= 0 else text)


def strategy() -> dict:
    raw = tomllib.loads((ROOT / "backtests/configs/sample.toml").read_text())["strategy"]
    return {**raw, "use_signal": False, "order_size": 50.0}


def test_paper_mode_simulates_fills_and_sends_nothing_to_the_chain(tmp_path, busy_tape):
    net, replay = start_localnet(busy_tape, None, None)
    try:
        config = node_config(net, tmp_path, strategy(), mode="paper",
                             paper={"fill_model": "queue", "queue_model": "prob_power", "latency_ms": 400.0})
        session_dir, output = run_node(config, duration_s=25)
        run = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    metrics = json.loads((session_dir / "metrics.json").read_text())
    assert metrics["mode"] == "paper"
    assert metrics["orders_submitted"] > 10
    assert metrics["fill_count"] > 0, output[-2000:]
    assert run.placed == [] and run.fills == []  # paper orders never reach the venue
    assert metrics["data"]["book_excludes"] is None  # nothing of ours is on the chain's book
    # The simulated venue's counters are the ones /metrics serves: every order, fill and cancel.
    orders = pd.read_parquet(session_dir / "orders.parquet")
    execution = metrics["execution"]
    assert execution["places"] == metrics["orders_submitted"] == len(orders)
    assert execution["fills"] >= metrics["fill_count"]  # fill events; partial fills count each time
    assert execution["cancels"] == int((orders["status"] == "CANCELED").sum()) > 0
    assert execution["rejects"] == int((orders["status"] == "REJECTED").sum())


def test_record_then_backtest_the_recording(tmp_path, busy_tape):
    net, _ = start_localnet(busy_tape, None, None)
    out = tmp_path / "recorded"
    try:
        config = node_config(net, tmp_path, strategy())
        rec = subprocess.run([sys.executable, "-m", "app.cli", "record", "--config", str(config), "--out", str(out),
                              "--duration", "10"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        net.stop()
    assert rec.returncode == 0, rec.stdout[-2000:] + rec.stderr[-2000:]
    summary = last_json(rec.stdout)  # the summary follows the node's log
    assert summary["blocks"] >= 15 and summary["trades"] > 0
    tape = open_tape(out)
    batches = [b for part, _ in tape.parts() for b in part]
    assert len(batches) == summary["blocks"]
    # One batch per block, each ending in F_LAST, never crossed: a tape like any other.
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    book = OrderBook(tape.instrument.id, BookType.L2_MBP)
    for batch in batches:
        book.apply_deltas(batch)
        if book.best_bid_price() is not None and book.best_ask_price() is not None:
            assert book.best_bid_price() < book.best_ask_price()
    bt = subprocess.run([sys.executable, "-m", "app.cli", "backtest", "--config", str(ROOT / "backtests/configs/sample.toml"),
                         "--catalog", str(out), "--signal", "off", "--out", str(tmp_path / "runs"), "--quiet"],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bt.returncode == 0, bt.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["events_processed"] >= summary["deltas"] + summary["trades"]


def test_parity_reports_agreement_pnl_and_latency(tmp_path, busy_catalog):
    config = tmp_path / "parity.toml"
    text = (ROOT / "backtests/configs/parity.toml").read_text()
    text = text.replace('catalog = "../../data/sample"', f'catalog = "{busy_catalog}"')
    text = text.replace('start = "+2min"', 'start = "+10s"').replace('end = "+5min"', 'end = "+50s"')
    config.write_text(text)
    out = subprocess.run([sys.executable, "-m", "app.cli", "parity", "--config", str(config), "--out", str(tmp_path),
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = last_json(out.stdout)
    assert report["backtest_fills"] > 0 and report["live_fills"] > 0
    assert 0 < report["fill_agreement"] <= 1
    assert report["matched_fills"] <= min(report["backtest_fills"], report["live_fills"])
    assert report["tick_to_tx_ms_p50"] is not None and report["txs_failed"] == 0
    assert Path(report["report_file"]).is_file()


def test_parity_matching_by_side_price_block_and_quantity():
    from decimal import Decimal as D

    from app.live.parity import _match

    live = [(1, D("0.4"), 10, D("50")), (-1, D("0.41"), 20, D("50"))]
    backtest = [
        (1, D("0.4"), 9, D("13")),   # split of one execution: both parts match the live 50
        (1, D("0.4"), 11, D("37")),
        (1, D("0.4"), 12, D("40")),  # no quantity left in the live fill
        (-1, D("0.41"), 23, D("50")),  # 3 blocks away
        (-1, D("0.42"), 20, D("50")),  # other price
        (1, D("0.41"), 20, D("50")),  # other side
    ]
    matched, qty, used = _match(backtest, live, tolerance=2)
    assert (matched, qty, used) == (2, D("50"), 1)
    assert _match(backtest, live, tolerance=3)[:2] == (3, D("100"))
