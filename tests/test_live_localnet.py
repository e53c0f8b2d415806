"""The live node end to end: `flashmm live` (a real child process) trading the localnet over real
sockets while the localnet replays a busy synthetic tape as the market.

What the node believes (its session files) is checked against what the chain recorded (block
results, balances, open orders): every fill on chain is a fill in the node and vice versa, the
inventory and cash the strategy tracked are the balance changes on chain, and a stop leaves no
order behind. The fault session repeats this with dropped sockets, a foreign tx bumping our
sequence, malformed pushes and a block stall injected mid-session.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from app.live.localrun import node_config, read_back, run_node, start_localnet

ROOT = Path(__file__).resolve().parents[1]
ATOMIC = Decimal(10**6)
_SESSION_DIR = re.compile(r"session written to (\S+)")

pytestmark = pytest.mark.slow


def strategy() -> dict:
    raw = tomllib.loads((ROOT / "backtests/configs/sample.toml").read_text())["strategy"]
    # Smaller quotes fill more often in a short session; no signal keeps start-up fast.
    return {**raw, "use_signal": False, "order_size": 50.0}


def open_orders(net) -> list[dict]:
    """The dev account's open orders, as the contract lists them."""
    return net.call(lambda chain: chain.clob.query({"open_orders": {"owner": chain.dev.address}},
                                                   chain.height)["orders"])


def wait_until_quoting(net, proc, what: str = "the node") -> None:
    deadline = time.monotonic() + 60
    while not open_orders(net):
        assert time.monotonic() < deadline and proc.poll() is None, f"{what} never quoted"
        time.sleep(0.2)


def assert_node_agrees_with_chain(run) -> dict:
    metrics = json.loads((run.session_dir / "metrics.json").read_text())
    fills = pd.read_parquet(run.session_dir / "fills.parquet")
    # The same fills on both sides: count, and traded quantity per side.
    assert metrics["fill_count"] == len(run.fills) == len(fills)
    for side, nt_side in (("buy", 1), ("sell", -1)):  # fills.parquet: +1 buy, -1 sell
        chain_qty = sum(f.quantity for f in run.fills if f.side == side)
        node_qty = Decimal(str(round(fills.loc[fills["side"] == nt_side, "qty"].sum(), 6)))
        assert node_qty == chain_qty, side
    # What the strategy tracked is what the contract holds for us now.
    status = json.loads((run.session_dir / "status.json").read_text())
    base_change = sum(run.balances["usei"]) - run.genesis["usei"]
    quote_change = sum(run.balances["uusdc"]) - run.genesis["uusdc"]
    assert Decimal(base_change) / ATOMIC == Decimal(str(round(status["inventory"], 6)))
    assert abs(Decimal(quote_change) / ATOMIC - Decimal(str(status["cash"]))) <= Decimal(len(run.fills)) / ATOMIC
    # Stop cancels everything and waits for the chain to confirm it.
    assert run.open_orders == []
    assert all(locked == 0 for _, locked in run.balances.values())
    return metrics


def test_live_node_trades_the_localnet_and_agrees_with_the_chain(tmp_path, busy_tape):
    net, replay = start_localnet(busy_tape, None, None)
    try:
        session_dir, output = run_node(node_config(net, tmp_path, strategy()), duration_s=30)
        run = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    assert net.failure is None
    assert len(run.placed) > 10 and len(run.fills) > 0, output[-3000:]
    metrics = assert_node_agrees_with_chain(run)
    execution = metrics["execution"]
    assert execution["txs_failed"] == 0 and execution["rejects"] == 0
    assert execution["tick_to_tx_samples"] > 0
    # The strategy saw the market without its own quotes, as a backtest tape is.
    assert metrics["data"]["book_excludes"] == net.dev_signer.address and metrics["data"]["resnapshots"] == 0


def test_live_node_survives_faults_without_losing_a_fill(tmp_path, busy_tape):
    net, replay = start_localnet(busy_tape, None, None)
    injected = []

    def faults(proc) -> None:
        for at, switches in ((8, {"drop_connections": True}), (12, {"malformed": 20}),
                             (16, {"sequence_skew": {"address": net.dev_signer.address, "by": 1}}),
                             (20, {"stall_ms": 1500}), (25, {"drop_connections": True, "refuse_ms": 1500}),
                             (31, {"swallow_txs": 1}), (35, {"unanswered_txs": 1})):
            while time.monotonic() < t0 + at:
                time.sleep(0.1)
            assert proc.poll() is None, "the node died"
            injected.append(net.fault(**switches))

    try:
        t0 = time.monotonic()
        session_dir, output = run_node(node_config(net, tmp_path, strategy()), duration_s=45, during=faults)
        run = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    assert len(injected) == 7
    metrics = assert_node_agrees_with_chain(run)
    execution = metrics["execution"]
    # The tx whose answer was lost was in the mempool: it stayed in flight and landed as sent,
    # rather than being given up and its orders cancelled when they turned up.
    assert "sent, no answer" in output
    assert "landed after it was given up" not in output
    assert execution["unbooked_fills"] == 0
    assert execution["reconnects"] >= 2
    assert execution["backfilled_blocks"] >= 1
    assert execution["malformed"] >= 1
    assert execution["sequence_resyncs"] >= 2  # at connect, then after the foreign tx
    # It kept trading after every fault: orders were still accepted on chain in the last 8 s.
    last = max(h for h, _ in run.placed)
    assert last >= max(run.height_to_index) - 20


def test_orders_left_by_a_killed_node_are_cancelled_when_the_next_one_starts(tmp_path, busy_tape):
    net, replay = start_localnet(busy_tape, None, None)
    try:
        config = node_config(net, tmp_path, strategy())
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "live", "--config", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_quoting(net, proc, "the first node")
        proc.kill()  # SIGKILL: no graceful stop, its quotes stay on the book
        proc.wait()
        left = open_orders(net)
        assert left
        session_dir, output = run_node(config, duration_s=8)
        run = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    metrics = json.loads((session_dir / "metrics.json").read_text())
    assert metrics["execution"]["orphans_cancelled"] == len(left)
    assert "open orders on the venue that this node does not know" in output
    assert run.open_orders == []


def run_to_exit(config: Path, timeout_s: float, during=None) -> tuple[int, str]:
    """`flashmm live` with no deadline: it must end by itself. Returns (exit status, output)."""
    with open(config.parent / "node.out", "w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "live", "--config", str(config)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            if during is not None:
                during(proc)
            proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        return proc.returncode, out.read()



def run_through_fault(tmp_path, tape, fault) -> tuple[int, str, list[dict]]:
    """`flashmm live` on a fresh localnet until it ends by itself; `fault(proc)` runs meanwhile.
    Returns (exit status, output, our orders left open on the chain)."""
    net, _ = start_localnet(tape, None, None)
    try:
        code, output = run_to_exit(node_config(net, tmp_path, strategy()), timeout_s=120,
                                   during=lambda proc: fault(net, proc))
        return code, output, open_orders(net)
    finally:
        net.stop()

def test_a_node_that_cannot_reach_the_chain_exits_non_zero_instead_of_idling(tmp_path, busy_tape):
    net, _ = start_localnet(busy_tape, None, None)
    try:
        config = node_config(net, tmp_path, strategy())
    finally:
        net.stop()  # nothing listens there any more
    code, output = run_to_exit(config, timeout_s=120)
    assert code == 1, output[-3000:]
    assert "could not connect to the venue" in output


def test_a_node_that_loses_the_chain_pulls_its_quotes_and_exits_non_zero(tmp_path, busy_tape):
    """The node's RPC comes back without the history it missed (restored from a snapshot): the
    blocks it would need to backfill, and any fill in them, are gone. It must not trade on blind;
    it cancels everything and exits 1, so its supervisor starts one that reconciles from scratch."""
    def lose_history(net, proc) -> None:
        wait_until_quoting(net, proc)
        net.fault(drop_connections=True, refuse_ms=2000)
        time.sleep(1.0)  # blocks are made while it cannot connect...
        net.fault(prune_history=True)  # ...and then forgotten

    code, output, left = run_through_fault(tmp_path, busy_tape, lose_history)
    assert code == 1, output[-3000:]
    assert "lost the venue" in output
    assert left == []
    session_dir = Path(_SESSION_DIR.search(output).group(1))
    status = json.loads((session_dir / "status.json").read_text())
    assert status["connected"] is False
    assert (session_dir / "metrics.json").exists()


def test_a_stop_while_the_node_is_unreachable_still_cancels_everything_once_it_is_back(tmp_path, busy_tape):
    """SIGTERM lands while the RPC node turns connections away (a restart, a network blip): the
    graceful stop must keep trying, within its timeout, rather than give up with quotes resting."""
    def stop_while_unreachable(net, proc) -> None:
        wait_until_quoting(net, proc)
        net.fault(drop_connections=True, refuse_ms=4000)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)

    code, output, left = run_through_fault(tmp_path, busy_tape, stop_while_unreachable)
    assert code == 0, output[-3000:]
    assert left == []
    assert "no open orders of ours left on the venue" in output
    # The cancels queued while it was cut off went out once it was back, with a timeout height
    # from the chain's head, not from the stale blocks it was still replaying (refused: code 30).
    assert "tx timeout height" not in output and "OrderCancelRejected" not in output
