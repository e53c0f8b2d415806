"""Crash recovery with real parts: a real `redis-server` holding the node's cache, the localnet over
real sockets, and `flashmm live` killed with SIGKILL at several points of a session and restarted.

After every restart the node must replay the blocks it missed, take back the orders it left on
the venue (never cancelling them as unknown orphans, never placing duplicates), and carry on with
the inventory its earlier runs built; at the end its books must equal the chain's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from app.live.localrun import node_config, read_back, run_node, start_localnet

ROOT = Path(__file__).resolve().parents[1]
ATOMIC = Decimal(10**6)
CRASH_AFTER_S = (6.0, 11.0, 16.0)  # seconds of trading before each SIGKILL

pytestmark = pytest.mark.slow


def strategy() -> dict:
    raw = tomllib.loads((ROOT / "backtests/configs/sample.toml").read_text())["strategy"]
    return {**raw, "use_signal": False, "order_size": 50.0}


def open_orders(net) -> list:
    return net.call(lambda chain: chain.clob.query({"open_orders": {"owner": chain.dev.address}},
                                                   chain.height)["orders"])


def placed_ids(net) -> list[str]:
    from adapters.sei.events import decode_events, wasm_events

    def scan(chain):
        ids = []
        for height in range(chain.earliest_height, chain.height + 1):
            for tx in chain.block_results(height).get("txs_results") or []:
                ids += [e.get("client_order_id") for e in wasm_events(decode_events(tx.get("events") or []))
                        if e.type == "wasm-placed" and e.get("owner") == chain.dev.address]
        return ids
    return net.call(scan)


def test_sigkill_mid_session_then_restart_loses_nothing(tmp_path, busy_tape, redis_url):
    net, replay = start_localnet(busy_tape, None, None)
    try:
        config = node_config(net, tmp_path, strategy())
        raw = tomllib.loads(config.read_text())
        raw["node"].update(redis_url=redis_url, ops_port=0)
        config.write_text(tomli_w.dumps(raw))
        for crash_after in CRASH_AFTER_S:
            proc = subprocess.Popen([sys.executable, "-m", "app.cli", "live", "--config", str(config)], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while not open_orders(net):  # trading (again)
                assert time.monotonic() < deadline and proc.poll() is None, "the node never quoted"
                time.sleep(0.1)
            time.sleep(crash_after)
            assert proc.poll() is None, "the node died on its own"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        session_dir, output = run_node(config, duration_s=10)
        run = read_back(net, replay, session_dir, output)
        ids = placed_ids(net)
    finally:
        net.stop()
    sessions = sorted(Path(raw["node"]["state_dir"]).iterdir())
    assert len(sessions) == len(CRASH_AFTER_S) + 1
    statuses = [json.loads((s / "status.json").read_text()) for s in sessions]  # killed runs leave their last
    # Every restart knew every order the venue had: none was cancelled as an unknown orphan...
    assert [st["execution"]["orphans_cancelled"] for st in statuses] == [0] * len(sessions)
    # ...because each one took back the orders its predecessor left working.
    assert all(st["resumed"] and st["resumed"]["orders_adopted"] > 0 for st in statuses[1:])
    assert len(ids) == len(set(ids)), "an order was placed twice"
    orders = pd.read_parquet(session_dir / "orders.parquet")
    assert set(ids) <= set(orders["client_order_id"]), "the cache forgot an order the venue saw"
    assert run.open_orders == []
    # Inventory and cash the strategy carried across the crashes are the chain's balance changes.
    status = json.loads((session_dir / "status.json").read_text())
    base_change = Decimal(sum(run.balances["usei"]) - run.genesis["usei"]) / ATOMIC
    quote_change = Decimal(sum(run.balances["uusdc"]) - run.genesis["uusdc"]) / ATOMIC
    fills_before_last = len(run.fills) - len(pd.read_parquet(session_dir / "fills.parquet"))
    assert fills_before_last > 0, "no fill happened before the last restart: nothing was carried over"
    assert base_change == Decimal(str(round(status["inventory"], 6)))
    assert abs(quote_change - Decimal(str(status["cash"]))) <= Decimal(len(run.fills)) / ATOMIC
