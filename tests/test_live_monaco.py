"""The live node on Monaco end to end: `flashmm live` (a real child process) trading the local
Monaco over real sockets while it replays a busy synthetic tape as the market.

What the node believes (its session files: fills.parquet, the audit log, status.json) is checked
against the venue's own records (every order and fill of the wallet, its balances and open orders):
every venue fill is a node fill and vice versa, the inventory and cash the strategy tracked are the
wallet's balance changes, and a stop leaves no order behind. The fault sessions repeat this with the
WebSocket dropped during fills, junk and out-of-order frames, an expired session (401) and bursts of
429s and 5xx mid-session.
"""

from __future__ import annotations

import json
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from app.live.localrun import run_node
from app.live.monaco_run import monaco_node_config, read_back_monaco, start_local_monaco

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def strategy() -> dict:
    raw = tomllib.loads((ROOT / "app/configs/live_monaco_local.toml").read_text())["strategy"]
    # Smaller quotes fill more often in a short session; no signal keeps start-up fast.
    return {**raw, "use_signal": False, "order_size": 50.0}


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    """A market that trades through the touch often (a thin touch, over one aggressive order per
    block), so a half-minute session sees tens of fills: the fault tests need fills to lose."""
    from data.catalog import open_tape
    from data.synth import SynthParams, generate

    out = tmp_path_factory.mktemp("fills") / "tape"
    generate(hours=0.05, seed=11, out=out, params=SynthParams(regime_trade_rate=(1.0, 1.2, 1.5), touch_lots=1000.0))
    return open_tape(out)


def per_order(rows, order_key: str, qty_key: str, px_key: str) -> dict[str, tuple[Decimal, Decimal]]:
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for r in rows:
        qty, notional = out.get(r[order_key], (Decimal(0), Decimal(0)))
        out[r[order_key]] = (qty + Decimal(r[qty_key]), notional + Decimal(r[qty_key]) * Decimal(r[px_key]))
    return out


def assert_node_agrees_with_venue(run) -> dict:
    metrics = json.loads((run.session_dir / "metrics.json").read_text())
    fills = pd.read_parquet(run.session_dir / "fills.parquet")
    audit = [json.loads(line) for line in (run.session_dir / "audit.jsonl").read_text().splitlines()]
    audit_fills = [r for r in audit if r["event"] == "fill"]
    assert metrics["fill_count"] == len(fills) == len(audit_fills)
    # The venue's fills and the node's, order by order: the same quantity at the same prices. A fill
    # recovered from REST after a disconnect carries no trade id of the venue's and may stand for
    # several of its fills; every other fill is the venue's own, once.
    node, venue = per_order(audit_fills, "venue_order_id", "qty", "price"), per_order(
        run.fills, "order_id", "quantity", "price")
    assert node == venue, [f for f in run.fills if node.get(f["order_id"]) != venue[f["order_id"]]]
    venue_ids = [f["trade_id"] for f in run.fills]
    streamed = [r["trade_id"] for r in audit_fills if r["trade_id"] in venue_ids]
    assert len(streamed) == len(set(streamed)) == len(audit_fills) - metrics["execution"]["reconciled_fills"]
    if metrics["execution"]["reconciled_fills"] == 0:
        assert len(audit_fills) == len(run.fills)
    for side, nt_side in (("buy", 1), ("sell", -1)):  # fills.parquet: +1 buy, -1 sell
        venue_qty = sum(Decimal(f["quantity"]) for f in run.fills if f["side"] == side)
        node_qty = Decimal(str(round(fills.loc[fills["side"] == nt_side, "qty"].sum(), 6)))
        assert node_qty == venue_qty, side
    # What the strategy tracked is the wallet's balance change on the venue.
    status = json.loads((run.session_dir / "status.json").read_text())
    base_change = sum(run.balances["SEI"]) - run.genesis["SEI"]
    quote_change = sum(run.balances["USDC"]) - run.genesis["USDC"]
    assert base_change == Decimal(str(round(status["inventory"], 6)))
    assert abs(quote_change - Decimal(str(status["cash"]))) <= Decimal("0.000001") * (len(run.fills) + 1)
    # Stop cancels everything and waits for the venue to confirm it.
    assert run.open_orders == []
    assert all(locked == 0 for _, locked in run.balances.values())
    return metrics


def test_live_node_trades_the_local_monaco_and_agrees_with_the_venue(tmp_path, tape):
    venue = start_local_monaco(tape, None, None)
    try:
        session_dir, output = run_node(monaco_node_config(venue, tmp_path, strategy()), duration_s=20)
        run = read_back_monaco(venue, session_dir, output)
    finally:
        venue.stop()
    assert venue.failure is None
    assert len(run.placed) > 10 and len(run.fills) > 0, output[-3000:]
    metrics = assert_node_agrees_with_venue(run)
    execution = metrics["execution"]
    assert execution["rejects"] == 0 and execution["in_doubt"] == 0 and execution["orphans_cancelled"] == 0
    assert execution["replaces"] > 0  # moving a quote is one round trip
    assert execution["tick_to_order_samples"] > 0
    # The strategy saw the market without its own quotes, as a backtest tape is.
    assert metrics["data"]["book_excludes"] == venue.dev.address and metrics["data"]["resnapshots"] == 0
    # Order by order, the audit trail is the record; the node log (log_orders off) does not repeat it.
    log = [json.loads(line)["message"] for line in (session_dir / "node.json").read_text().splitlines()]
    audit = (session_dir / "audit.jsonl").read_text().splitlines()
    per_order = [m for m in log if "[EVT] Order" in m or "SubmitOrder(" in m or "CancelOrder(" in m]
    assert len(audit) >= len(run.placed) and per_order == []


def run_with_faults(tmp_path, tape, schedule, duration_s: float, **config) -> tuple:
    """`flashmm live` on a fresh local Monaco for `duration_s`, the fault `schedule` ((seconds after
    the node started, switches), ...) applied while it trades. Returns (run, venue request log,
    issued tokens, the switches applied)."""
    venue = start_local_monaco(tape, None, None, **config)
    applied = []

    def faults(proc) -> None:
        t0 = time.monotonic()
        for at, switches in schedule:
            while time.monotonic() < t0 + at:
                time.sleep(0.05)
            assert proc.poll() is None, "the node died"
            if callable(switches):
                switches = switches(venue)
            applied.append(venue.fault(**switches))

    try:
        session_dir, output = run_node(monaco_node_config(venue, tmp_path, strategy()), duration_s=duration_s,
                                       during=faults)
        run = read_back_monaco(venue, session_dir, output)
        log, tokens = venue.call(lambda s: (list(s.requests), list(s.issued_tokens)))
    finally:
        venue.stop()
    assert venue.failure is None and len(applied) == len(schedule)
    return run, log, tokens


def test_websocket_drops_during_fills_junk_and_sequence_faults_lose_no_fill(tmp_path, tape):
    """Three windows of several seconds without a WebSocket (dropped, and refused while it tries to
    come back) while the market trades through our quotes; junk frames; a sequence gap and stale
    repeats. Fills made while the socket was down are read back from REST: none is missed, none
    counted twice."""
    run, _, _ = run_with_faults(tmp_path, tape, (
        (6, {"junk_frames": 18}), (7, {"skip_sequence": True}), (8, {"stale_sequence": 3}),
        (9, {"drop_ws": True, "refuse_ws_ms": 3000}), (15, {"drop_ws": True, "refuse_ws_ms": 3000}),
        (21, {"drop_ws": True, "refuse_ws_ms": 3000}),
    ), duration_s=29)
    metrics = assert_node_agrees_with_venue(run)
    execution, data = metrics["execution"], metrics["data"]
    assert execution["reconnects"] >= 3 and execution["reconciliations"] >= 4  # start + one per reconnect
    assert execution["reconciled_fills"] >= 1, "no fill happened while the socket was down: the test proves nothing"
    assert execution["malformed"] >= 9  # junk was dropped, the node went on
    # The gap and the first repeat each took a snapshot; the repeats that came while it was taken
    # were held and dropped as older than it.
    assert data["resnapshots"] >= 1 and data["stale_updates"] >= 1
    # It kept trading after every fault: orders were still placed in the last blocks of the session.
    assert max(p["tape_index"] for p in run.placed) >= len(run.index_ts) - 20


def test_an_expired_session_429_and_5xx_bursts_and_a_lost_answer_mid_session(tmp_path, tape):
    """Bearer tokens this time, so that there are tokens to leak: the session is expired on the venue
    (401: a fresh login, nothing lost), bursts of 429 (the node waits as told, no storm), 503s, and a
    create answered only after the client gave up on it (in doubt, then found and adopted). Neither
    the wallet key nor any token appears in the node's logs, audit trail or status."""
    from adapters.monaco.wire import Wire

    run, log, tokens = run_with_faults(tmp_path, tape, (
        (6, {"expire_tokens": True}), (9, {"http_429": 4, "retry_after_s": 1}), (14, {"http_5xx": 3}),
        (16, {"slow_ms": 6500, "slow_requests": 1, "slow_route": "create_order"}),
        # A venue that quotes our token back in an error: the node logs the error, never the token.
        (21, lambda venue: {"error_frame": "bad token " + venue.call(lambda s: s.issued_tokens[-2])}),
    ), duration_s=28, wire=Wire(request_auth="bearer"))
    metrics = assert_node_agrees_with_venue(run)
    execution = metrics["execution"]
    assert execution["auth_relogins"] >= 1 and execution["unauthorized"] >= 1
    assert execution["rate_limited"] == 4
    assert execution["in_doubt"] >= 1 and execution["adopted"] >= 1 and execution["orphans_cancelled"] == 0
    # No storm: after each 429 the node sent nothing for the second it was told to wait.
    limited = [t for t, _, status in log if status == 429]
    for t in limited:
        assert not [u for u, _, _ in log if t + 0.05 < u < t + 0.95], "requests during a Retry-After"
    # Secrets: the key and every token the venue issued, nowhere in what the node wrote.
    key = (tmp_path / "monaco.key").read_text().strip()
    assert len(tokens) >= 4  # the first login and the one after the 401
    written = run.node_output + "".join(p.read_text() for p in run.session_dir.iterdir()
                                        if p.suffix in (".json", ".jsonl", ".toml", ".log"))
    assert "node.json" in {p.name for p in run.session_dir.iterdir()}
    for secret in (key, *tokens):
        assert secret not in written
    assert "Monaco sent an error frame: bad token [REDACTED]" in written


CRASH_AFTER_S = (6.0, 9.0, 12.0)  # seconds of trading before each SIGKILL


def test_three_sigkills_then_a_restart_leave_no_orphan_no_duplicate_and_the_venues_inventory(
        tmp_path, tape, redis_url):
    """`flashmm live` with its cache in a real redis-server, killed with SIGKILL three times while it
    trades, then run to a graceful stop. Every restart adopts the orders its predecessor left on the
    venue (none is cancelled as an unknown orphan, none is placed twice) and carries the inventory
    on; at the end the strategy's inventory and cash are the wallet's balance changes."""
    import signal
    import subprocess
    import sys

    venue = start_local_monaco(tape, None, None)
    try:
        config = monaco_node_config(venue, tmp_path, strategy(), node={"redis_url": redis_url})
        state_dir = Path(tomllib.loads(config.read_text())["node"]["state_dir"])
        for crash_after in CRASH_AFTER_S:
            proc = subprocess.Popen([sys.executable, "-m", "app.cli", "live", "--config", str(config)], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while not venue.call(lambda s: s.exchange.orders_of(venue.dev.address, "SUBMITTED")):
                assert time.monotonic() < deadline and proc.poll() is None, "the node never quoted"
                time.sleep(0.1)
            time.sleep(crash_after)
            assert proc.poll() is None, "the node died on its own"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        session_dir, output = run_node(config, duration_s=10)
        run = read_back_monaco(venue, session_dir, output)
    finally:
        venue.stop()
    sessions = sorted(state_dir.iterdir())
    assert len(sessions) == len(CRASH_AFTER_S) + 1
    statuses = [json.loads((s / "status.json").read_text()) for s in sessions]  # killed runs leave their last
    # Every restart knew every order the venue had: none was cancelled as an unknown orphan...
    assert [st["execution"]["orphans_cancelled"] for st in statuses] == [0] * len(sessions)
    # ...because each one took back the orders its predecessor left working.
    assert all(st["resumed"] and st["resumed"]["orders_adopted"] > 0 for st in statuses[1:])
    # One venue order per order of ours, never two: our ids map one to one onto the venue's.
    orders = pd.read_parquet(session_dir / "orders.parquet")
    ours = orders.dropna(subset=["venue_order_id"])
    venue_ids = [p["order_id"] for p in run.placed]
    assert set(venue_ids) >= set(ours["venue_order_id"]) and ours["venue_order_id"].is_unique
    assert ours["client_order_id"].is_unique
    assert run.open_orders == []
    # The inventory and cash carried across the crashes are the wallet's balance changes.
    status = statuses[-1]
    fills_before_last = len(run.fills) - len(pd.read_parquet(session_dir / "fills.parquet"))
    assert fills_before_last > 0, "no fill happened before the last restart: nothing was carried over"
    base_change = sum(run.balances["SEI"]) - run.genesis["SEI"]
    quote_change = sum(run.balances["USDC"]) - run.genesis["USDC"]
    assert base_change == Decimal(str(round(status["inventory"], 6)))
    assert abs(quote_change - Decimal(str(status["cash"]))) <= Decimal("0.000001") * (len(run.fills) + 1)


def last_json(text: str):
    start = text.rfind("\n{")
    return json.loads(text[start + 1:] if start >= 0 else text)


def test_parity_on_the_local_monaco_agrees_with_the_backtest(tmp_path, busy_catalog):
    """`flashmm parity` on the busy tape, as a user runs it (relative paths, its own directory).
    Measured on this one-minute window, 7 runs: 5 matched every fill both ways (6 and 6, PnL
    difference 0.0000); in 2 the live node had one more order at the touch fill (2 more fills, PnL
    +0.046): it joined the queue at another moment than the backtest's, the divergence
    docs/live-monaco.md describes. So: every backtest fill but one matched, at most one live order's
    fills (two) unmatched, and when every fill matched, the PnL within 10% of its mean size plus a cent."""
    import subprocess
    import sys

    config = tmp_path / "parity.toml"
    text = (ROOT / "backtests/configs/parity_monaco.toml").read_text()
    text = text.replace('catalog = "../../data/sample"', f'catalog = "{busy_catalog}"')
    text = text.replace('start = "+2min"', 'start = "+55s"').replace('end = "+5min"', 'end = "+120s"')
    config.write_text(text)
    out = subprocess.run([sys.executable, "-m", "app.cli", "parity", "--config", "parity.toml", "--out", "runs",
                          "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = last_json(out.stdout)
    assert report["venue"] == "monaco" and report["backtest_fills"] >= 3, report
    unmatched_backtest = round((1 - report["fill_agreement"]) * report["backtest_fills"])
    unmatched_live = round((1 - report["live_fills_matched"]) * report["live_fills"])
    assert unmatched_backtest <= 1 and unmatched_live <= 2, report
    if unmatched_backtest == unmatched_live == 0:
        scale = (abs(report["pnl_backtest"]) + abs(report["pnl_live"])) / 2
        assert abs(report["pnl_difference"]) <= 0.1 * scale + 0.01, report
    assert report["tick_to_order_ms_p50"] is not None and report["rejects"] == 0
    assert (tmp_path / report["report_file"]).is_file()


def test_paper_mode_on_monaco_simulates_fills_and_sends_no_order(tmp_path, tape):
    venue = start_local_monaco(tape, None, None)
    try:
        config = monaco_node_config(venue, tmp_path, strategy(), mode="paper",
                                    paper={"fill_model": "queue", "queue_model": "prob_power", "latency_ms": 10.0})
        session_dir, output = run_node(config, duration_s=15)
        run = read_back_monaco(venue, session_dir, output)
        log = venue.call(lambda s: [name for _, name, _ in s.requests])
    finally:
        venue.stop()
    metrics = json.loads((session_dir / "metrics.json").read_text())
    assert metrics["mode"] == "paper" and metrics["orders_submitted"] > 10
    assert metrics["fill_count"] > 0, output[-2000:]
    assert run.placed == [] and run.fills == []  # paper orders never reach the venue...
    assert not {"challenge", "verify", "create_order", "balances"} & set(log)  # ...which never saw a login
    assert metrics["data"]["book_excludes"] is None


def test_record_monaco_then_backtest_the_recording(tmp_path, tape):
    import subprocess
    import sys

    from data.catalog import open_tape

    venue = start_local_monaco(tape, None, None)
    out = tmp_path / "recorded"
    try:
        config = monaco_node_config(venue, tmp_path, strategy())
        rec = subprocess.run([sys.executable, "-m", "app.cli", "record", "--config", str(config), "--out", str(out),
                              "--duration", "10"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        venue.stop()
    assert rec.returncode == 0, rec.stdout[-2000:] + rec.stderr[-2000:]
    summary = last_json(rec.stdout)
    assert summary["blocks"] >= 15 and summary["trades"] > 0
    recorded = open_tape(out)
    assert str(recorded.instrument.id) == "SEI/USDC.MONACO" and recorded.meta["venue"] == "monaco"
    assert recorded.meta["last_height"] == summary["last_height"] > 0  # the book's last sequence
    assert recorded.instrument.price_precision == 4 and recorded.instrument.size_precision == 1  # the pair's grid
    backtest_config = tmp_path / "bt.toml"
    backtest_config.write_text((ROOT / "backtests/configs/sample.toml").read_text().replace(
        '"SEI/USDC.SEI"', '"SEI/USDC.MONACO"'))
    bt = subprocess.run([sys.executable, "-m", "app.cli", "backtest", "--config", str(backtest_config),
                         "--catalog", str(out), "--start", "+0s", "--signal", "off", "--out", str(tmp_path / "runs"),
                         "--quiet"],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bt.returncode == 0, bt.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["events_processed"] >= summary["deltas"] + summary["trades"]


def test_the_readme_quick_start_quotes_trades_and_ctrl_c_leaves_nothing_open(tmp_path):
    """README tour step 4, as a user types it: `flashmm monaco-local --catalog data/sample` in one
    terminal, `flashmm live --config app/configs/live_monaco_local.toml` in another, then Ctrl-C.
    Only what a test machine needs differs: HOME (where the dev key goes), a free port for the venue
    and the node's ops server, where sessions and records are written, and a tape start 40 s in (the
    sample's first trades come 47 s in; the test need not wait for them). The node's fills.parquet,
    its audit trail and the venue's own records must list the same fills."""
    import asyncio
    import os
    import re
    import signal
    import subprocess
    import sys
    import tempfile

    from adapters.monaco.keys import load_evm_signer
    from adapters.monaco.rest import MonacoRest
    from adapters.monaco.wire import Codec

    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("FLASHMM_MONACO_KEY", None)
    config = tmp_path / "live_monaco_local.toml"  # the README's config, with a free port for /health
    config.write_text((ROOT / "app/configs/live_monaco_local.toml").read_text().replace(
        "ops_port = 8081", "ops_port = 0").replace('model = "../../models', f'model = "{ROOT}/models'))
    records = tmp_path / "records"
    sessions = Path(tempfile.mkdtemp(prefix="flashmm-", dir="/tmp"))  # a Unix socket path is short
    venue = subprocess.Popen([sys.executable, "-m", "app.cli", "monaco-local", "--catalog", "data/sample",
                              "--port", "0", "--start", "+40s", "--records", str(records)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = None
    try:
        url = re.search(r"serving (http://\S+) \(REST\)", venue.stdout.readline()).group(1)
        node = subprocess.Popen([sys.executable, "-m", "app.cli", "live", "--config", str(config), "--api-url", url,
                                 "--state-dir", str(sessions)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(40)  # from +40s the sample trades through the quotes 25 to 30 s in (and 7 to 11 s in)
        assert node.poll() is None, node.stdout.read()[-3000:]
        node.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = node.communicate(timeout=60)
        assert node.returncode == 0, output[-3000:]
        signer = load_evm_signer(file=tmp_path / ".flashmm/monaco-local.key")

        async def open_orders():
            from adapters.monaco.auth import MonacoAuth
            codec = Codec()
            rest = MonacoRest(url, codec)
            rest.auth = MonacoAuth(codec, signer, chain_id=1328, client_id="test")
            await rest.start()
            try:
                rows = []
                for status in ("SUBMITTED", "PARTIALLY_FILLED"):
                    rows += codec.read_orders_page(await rest.call("list_orders", query={"status": status}))[0]
                return rows
            finally:
                await rest.close()
        left = asyncio.run(open_orders())
    finally:
        for proc in (node, venue):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert left == []  # Ctrl-C left no open order
    (session,) = sessions.iterdir()
    created = [json.loads(line) for line in (records / "orders.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "created" for r in created) >= 6  # it quoted (three levels a side)
    venue_fills = [json.loads(line) for line in (records / "fills.jsonl").read_text().splitlines()]
    audit_fills = [json.loads(line) for line in (session / "audit.jsonl").read_text().splitlines()
                   if json.loads(line)["event"] == "fill"]
    fills = pd.read_parquet(session / "fills.parquet")
    assert len(venue_fills) > 0, "no fill in the session: nothing to compare"  # it traded
    assert len(fills) == len(audit_fills) == len(venue_fills)
    assert sorted(f["trade_id"] for f in venue_fills) == sorted(r["trade_id"] for r in audit_fills)
    assert sorted((f["side"].upper(), Decimal(f["price"]), Decimal(f["quantity"])) for f in venue_fills) == sorted(
        (r["side"], Decimal(r["price"]), Decimal(r["qty"])) for r in audit_fills)
