"""Operating a node: /health and /metrics, the control socket and `flashmm live status|halt|resume`,
`flashmm serve` from the environment, the audit trail and the redaction of secrets, and the
deployment files (Dockerfile, docker-compose.yml, .env.example, systemd unit) against the entry
point they run. Real sockets, real NautilusTrader engines, real subprocesses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import tomllib
import urllib.error
import urllib.request
from configparser import ConfigParser
from pathlib import Path

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.identifiers import AccountId
from scripted import ScriptConfig, Scripted, evolve
from tapebuilder import write_tape

from app.cli import build_parser
from app.live import control, ops
from app.live.config import NodeSection, load_live_config
from app.live.control import (
    ControlError,
    NodeNotRunning,
    operator_handlers,
    persisted_halt,
    prepare_control_dir,
    record_halt,
    send_command,
    start_control_server,
)
from app.live.entrypoint import ENV_VARS, config_from_env
from app.live.logs import (
    AUDIT_FILE,
    SECRETS,
    AuditLog,
    AuditLogConfig,
    SecretRegistry,
    register_key_secrets,
    register_secret,
)
from backtests.config import parse_config
from backtests.runner import build_engine, stream
from data.catalog import open_tape
from strategies.config import ConfigError, parse_strategy_config
from strategies.control import register_halt_endpoint
from strategies.market_maker import MarketMaker

ROOT = Path(__file__).resolve().parent.parent
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
HEX_KEY = "5f3a0c1e9b7d2a4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809"

# What node_status() returns on a live node mid-session (keys as app/live/node.py writes them).
STATUS = {
    "mode": "live", "updated_at": "2026-11-21T10:00:00+00:00", "uptime_s": 120.5, "connected": True,
    "last_block_height": 1234, "last_block_age_s": 0.42, "stale": False, "halted": False, "halt_reason": "",
    "trading_state": "ACTIVE", "mid": 0.40025, "pnl": -1.25, "inventory": 300.0, "cash": -121.3,
    "quotes": [
        {"client_order_id": "O-1", "side": "BUY", "price_ticks": 4000, "leaves": 200.0, "state": "working"},
        {"client_order_id": "O-2", "side": "BUY", "price_ticks": 3999, "leaves": 150.0, "state": "working"},
        {"client_order_id": "O-3", "side": "SELL", "price_ticks": 4005, "leaves": 200.0, "state": "pending"},
    ],
    "fills": 17,
    "strategy_stats": {"requotes": 40, "rate_limited": 2, "stale_pulls": 0, "post_only_rejects": 1},
    "execution": {
        "txs": 55, "txs_failed": 1, "txs_expired": 2, "txs_refused": 0, "places": 90, "cancels": 68, "fills": 17,
        "rejects": 3, "cancel_rejects": 1, "orphans_cancelled": 0, "inflight": 1, "tick_to_tx_ms_p50": 2.5,
        "tick_to_tx_ms_p99": 11.0, "tick_to_tx_samples": 50, "txs_sent": 57, "tx_retries": 2, "sequence_resyncs": 1,
        "reconnects": 4, "malformed": 0, "backfilled_blocks": 3, "fallback_blocks": 0,
    },
    "data": {"resnapshots": 1, "stale_events": 2, "blocks_seen": 300},
    "signal": {"model_blocks": 280, "fallback_blocks": 20, "trips": {"missing": 0, "nan": 1, "latency": 2},
               "model_id": "sample", "inference_us_p50": 150.0, "inference_us_p99": 900.0, "inference_us_mean": 200.0},
}


def flashmm(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


class LoopThread:
    """An asyncio loop in a thread, as the node runs its servers, so tests can be plain clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


# -- /health and /metrics -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ops_server():
    loops = LoopThread()
    current = {"status": lambda: STATUS}
    server = loops.run(ops.start_ops_server("127.0.0.1", 0, lambda: current["status"]()))
    yield server, current
    loops.run(server.close())
    loops.stop()


def get(server, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def raw(server, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send `payload`, close our side, return everything the server sends before closing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


SAMPLE_LINE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)')


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """A strict reader of the text format: every sample's family has HELP then TYPE before it."""
    assert text.endswith("\n")
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name in helps and kind in ("gauge", "counter"), line
            assert name.endswith("_total") == (kind == "counter"), f"counters and only counters end in _total: {line}"
            types[name] = kind
        else:
            match = SAMPLE_LINE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in types, f"{name} has no TYPE line before it"
            assert name.startswith("flashmm_")
            pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
            assert (name, pairs) not in samples, f"duplicate sample {name}{labels}"
            samples[(name, pairs)] = float(value)
    return samples


def test_health_is_200_with_the_node_state_when_ready_connected_and_fresh(ops_server):
    server, _ = ops_server
    code, ctype, body = get(server, "/health")
    assert (code, ctype) == (200, "application/json")
    assert json.loads(body) == {
        "ready": True, "mode": "live", "connected": True, "stale": False, "halted": False, "halt_reason": "",
        "trading_state": "ACTIVE", "last_block_height": 1234, "last_block_age_s": 0.42, "uptime_s": 120.5,
        "updated_at": "2026-11-21T10:00:00+00:00",
    }
    assert get(server, "/health?verbose=1")[0] == 200  # the query string is not part of the path


@pytest.mark.parametrize("change, code", [
    ({"connected": False}, 503),
    ({"stale": True}, 503),
    ({"last_block_height": 1200, "last_block_age_s": None}, 503),  # connected, no block received yet: not ready
    ({"ready": False}, 503),  # the node's own flag wins when it reports one
    ({"halted": True, "halt_reason": "operator: maintenance", "trading_state": "HALTED"}, 200),
])
def test_health_is_503_when_not_ready_disconnected_or_stale_but_halted_is_healthy(ops_server, change, code):
    server, current = ops_server
    current["status"] = lambda: {**STATUS, **change}
    try:
        got, _, body = get(server, "/health")
    finally:
        current["status"] = lambda: STATUS
    assert got == code
    assert json.loads(body)["ready"] == (change.get("ready", True) and "last_block_age_s" not in change)


def test_metrics_expose_the_node_status_in_prometheus_text_format(ops_server):
    server, _ = ops_server
    code, ctype, body = get(server, "/metrics")
    assert code == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    m = parse_prometheus(body)

    def v(name, **labels):
        return m[(name, frozenset(labels.items()))]

    assert v("flashmm_pnl") == -1.25 and v("flashmm_inventory") == 300.0 and v("flashmm_cash") == -121.3
    assert v("flashmm_live_quotes") == 3
    assert v("flashmm_live_quotes_per_side", side="buy") == 2 and v("flashmm_live_quotes_per_side", side="sell") == 1
    assert v("flashmm_live_quote_qty", side="buy") == 350.0 and v("flashmm_live_quote_qty", side="sell") == 200.0
    assert v("flashmm_fills_total") == 17 and v("flashmm_rejects_total") == 3
    assert v("flashmm_cancel_to_fill_ratio") == pytest.approx(68 / 17)
    assert v("flashmm_signal_fallback_blocks_total") == 20 and v("flashmm_signal_model_blocks_total") == 280
    assert v("flashmm_signal_trips_total", reason="latency") == 2 and v("flashmm_signal_trips_total", reason="nan") == 1
    assert v("flashmm_block_height") == 1234 and v("flashmm_block_lag_seconds") == 0.42
    assert v("flashmm_reconnects_total") == 4 and v("flashmm_tx_retries_total") == 2
    assert v("flashmm_sequence_resyncs_total") == 1
    assert (v("flashmm_txs_sent_total"), v("flashmm_txs_failed_total"), v("flashmm_txs_expired_total")) == (55, 1, 2)
    assert v("flashmm_tick_to_tx_seconds", quantile="0.5") == pytest.approx(0.0025)
    assert v("flashmm_tick_to_tx_seconds", quantile="0.99") == pytest.approx(0.011)
    assert v("flashmm_signal_inference_seconds", quantile="0.99") == pytest.approx(0.0009)
    assert v("flashmm_halted") == 0 and v("flashmm_connected") == 1 and v("flashmm_stale") == 0
    assert v("flashmm_strategy_events_total", event="requotes") == 40
    assert v("flashmm_node_info", mode="live", trading_state="ACTIVE") == 1


def test_metrics_of_a_node_on_monaco(ops_server):
    """Monaco's execution snapshot: REST counters and tick-to-order instead of transactions."""
    server, current = ops_server
    monaco = {**STATUS, "execution": {
        "places": 90, "cancels": 30, "replaces": 40, "fills": 17, "rejects": 0, "cancel_rejects": 0,
        "in_doubt": 1, "orphans_cancelled": 0, "tick_to_order_ms_p50": 2.1, "tick_to_order_ms_p99": 4.8,
        "requests": 250, "rate_limited": 3, "server_errors": 2, "reconnects": 1, "auth_relogins": 1,
    }}
    current["status"] = lambda: monaco
    try:
        _, _, body = get(server, "/metrics")
    finally:
        current["status"] = lambda: STATUS
    m = parse_prometheus(body)
    assert m[("flashmm_tick_to_order_seconds", frozenset({("quantile", "0.99")}))] == pytest.approx(0.0048)
    assert [m[(name, frozenset())] for name in ("flashmm_requests_total", "flashmm_rate_limited_total",
                                                "flashmm_server_errors_total", "flashmm_relogins_total",
                                                "flashmm_orders_in_doubt_total", "flashmm_replaces_total")] == [
        250, 3, 2, 1, 1, 40]
    assert not {name for name, _ in m} & {"flashmm_txs_sent_total", "flashmm_tick_to_tx_seconds"}


def test_metrics_leave_out_what_the_node_does_not_report_and_survive_odd_values(ops_server):
    server, current = ops_server
    # A paper node: no execution snapshot, no signal, no mid yet; plus values of the wrong type.
    paper = {**STATUS, "mode": "paper", "execution": None, "signal": None, "mid": None, "pnl": None,
             "halted": True, "connected": False, "quotes": [None, {"side": 3}, {"side": "sell", "leaves": "x"}],
             "data": "junk", "strategy_stats": {"requotes": "many"}, "inventory": float("nan")}
    current["status"] = lambda: paper
    try:
        code, _, body = get(server, "/metrics")
    finally:
        current["status"] = lambda: STATUS
    assert code == 200
    m = parse_prometheus(body)
    names = {name for name, _ in m}
    assert not names & {"flashmm_pnl", "flashmm_mid_price", "flashmm_rejects_total", "flashmm_tx_retries_total",
                        "flashmm_cancel_to_fill_ratio", "flashmm_tick_to_tx_seconds", "flashmm_signal_trips_total",
                        "flashmm_blocks_seen_total", "flashmm_strategy_events_total"}
    assert m[("flashmm_halted", frozenset())] == 1 and m[("flashmm_connected", frozenset())] == 0
    assert m[("flashmm_live_quotes", frozenset())] == 3
    assert m[("flashmm_live_quotes_per_side", frozenset({("side", "sell")}))] == 1
    assert str(m[("flashmm_inventory", frozenset())]) == "nan"
    assert m[("flashmm_fills_total", frozenset())] == 17


def test_label_values_are_escaped():
    text = ops.metrics_text({"mode": 'pa"per\\x\ny', "trading_state": "ACTIVE"})
    assert 'flashmm_node_info{mode="pa\\"per\\\\x\\ny",trading_state="ACTIVE"} 1' in text.splitlines()


def test_a_failing_status_gives_503_and_500_and_the_server_keeps_serving(ops_server):
    server, current = ops_server

    def broken():
        raise RuntimeError("kernel not built yet")

    current["status"] = broken
    try:
        code, _, body = get(server, "/health")
        assert code == 503 and json.loads(body) == {"ready": False, "error": "status unavailable: kernel not built yet"}
        assert get(server, "/metrics")[0] == 500
    finally:
        current["status"] = lambda: STATUS
    assert get(server, "/health")[0] == 200


@pytest.mark.parametrize("payload, code", [
    (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET / HTTP/1.1\r\n\r\n", 404),
    (b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"HELLO\r\n\r\n", 400),
    (b"GET /health HTTP/2.0\r\n\r\n", 400),
    (b"GET health HTTP/1.1\r\n\r\n", 400),
    (b"GET /he alth HTTP/1.1\r\n\r\n", 400),
    (b"\xff\xfe /health HTTP/1.1\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nX: " + b"a" * (ops.MAX_HEADER_BYTES + 10) + b"\r\n\r\n", 431),
    (b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * (ops.MAX_HEADERS + 1) + b"\r\n", 431),
    (b"GET /health HTTP/1.0\n\n", 200),  # bare LF line endings are tolerated
])
def test_bad_requests_get_an_http_error(ops_server, payload, code):
    server, _ = ops_server
    answer = raw(server, payload)
    assert answer.startswith(f"HTTP/1.1 {code} ".encode()), answer[:80]
    assert b"\r\nConnection: close\r\n" in answer


def test_a_client_that_sends_nothing_is_cut_off(ops_server, monkeypatch):
    server, _ = ops_server
    monkeypatch.setattr(ops, "REQUEST_TIMEOUT_S", 0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert sock.recv(1024).startswith(b"HTTP/1.1 408 ")
    assert get(server, "/health")[0] == 200


REQUEST_LIKE = st.builds(
    lambda method, path, version, headers, end: b" ".join([method, path, version]) + b"\r\n" + headers + end,
    st.sampled_from([b"GET", b"POST", b"get", b"", b"G\x00T"]) | st.binary(max_size=8),
    st.sampled_from([b"/health", b"/metrics", b"/", b"*"]) | st.binary(max_size=30),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9"]) | st.binary(max_size=10),
    st.binary(max_size=200),
    st.sampled_from([b"\r\n\r\n", b"\n\n", b"", b"\r\n"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=600) | REQUEST_LIKE)
def test_junk_never_kills_the_server(ops_server, payload):
    server, _ = ops_server
    answer = raw(server, payload)
    assert answer == b"" or re.match(rb"HTTP/1\.1 (200|400|404|405|431) ", answer), answer[:80]
    assert get(server, "/health")[0] == 200


# -- the control socket ---------------------------------------------------------------------------


@pytest.fixture
def state_dir():
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer than that.
    with tempfile.TemporaryDirectory(prefix="fmm-", dir="/tmp") as d:
        yield Path(d)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def handlers(self) -> dict:
        def make(name):
            def handler(request):
                self.calls.append((name, request))
                return {"status": {"halted": False, "last_block_height": 7}} if name == "status" else {name: True}
            return handler
        return {name: make(name) for name in control.COMMANDS}


@pytest.fixture
def node_control(state_dir):
    """A node's control server, as run_live will start it, in its own session directory."""
    session = state_dir / "live-20261121T100000-000001"
    session.mkdir()
    path, token = prepare_control_dir(session)
    recorder = Recorder()
    loops = LoopThread()
    server = loops.run(start_control_server(path, token, recorder.handlers()))
    yield session, token, recorder
    loops.run(server.close())
    loops.stop()


def ask(path: Path, request: dict | bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile().readline())


def test_control_files_are_private(node_control):
    session, token, _ = node_control
    assert stat.S_IMODE(session.stat().st_mode) == 0o700
    sock = session / "control.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    token_file = session / "control.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token_file.read_text().strip() == token
    assert len(token) >= 40


def test_halt_resume_and_status_reach_the_handlers(node_control):
    session, _, recorder = node_control
    assert send_command(session.parent, "halt", reason="maintenance") == {"ok": True, "halt": True}
    assert send_command(session.parent, "resume") == {"ok": True, "resume": True}
    assert send_command(session.parent, "status")["status"]["last_block_height"] == 7
    assert [(name, req.get("reason")) for name, req in recorder.calls] == [
        ("halt", "maintenance"), ("resume", None), ("status", None)]
    assert all("token" not in req for _, req in recorder.calls)  # handlers never see the token


def test_a_wrong_or_missing_token_is_refused_and_logged_without_the_token(node_control, caplog):
    session, token, recorder = node_control
    caplog.set_level(logging.INFO, logger="flashmm.control")
    wrong = "not-the-token-" + "x" * 30
    answer = ask(session / "control.sock", {"token": wrong, "command": "halt"})
    assert answer == {"ok": False, "error": "unauthorized: wrong or missing token"}
    assert ask(session / "control.sock", {"command": "halt"})["ok"] is False
    assert recorder.calls == []
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and f"pid {os.getpid()}" in refusals[0]
    assert wrong not in caplog.text and token not in caplog.text


@pytest.mark.parametrize("request_bytes, error", [
    (b"not json\n", "one JSON object"),
    (b"[1, 2]\n", "one JSON object"),
    (b"{\"command\": \"x\"}" + b" " * control.MAX_REQUEST_BYTES + b"\n", "at most"),
    (b'{"token": "\\ud800", "command": "halt"}\n', "unauthorized"),
])
def test_malformed_control_requests_get_an_error(node_control, request_bytes, error):
    session, _, recorder = node_control
    answer = ask(session / "control.sock", request_bytes)
    assert answer["ok"] is False and error in answer["error"]
    assert recorder.calls == []


def test_unknown_command_and_failing_handler_answer_with_the_error(state_dir):
    session = state_dir / "s"
    session.mkdir()
    path, token = prepare_control_dir(session)
    loops = LoopThread()

    def fail(request):
        raise RuntimeError("risk engine busy")

    server = loops.run(start_control_server(path, token, {"halt": fail}))
    try:
        assert ask(path, {"token": token, "command": "dance"}) == {"ok": False,
                                                                   "error": "unknown command 'dance'; known: halt"}
        with pytest.raises(ControlError, match="refused 'halt': halt failed: risk engine busy"):
            send_command(state_dir, "halt")
    finally:
        loops.run(server.close())
        loops.stop()
    assert not path.exists()  # close() removes the socket


def dead_socket(path: Path) -> None:
    """What a SIGKILLed node leaves: a socket file nobody listens on."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def test_the_newest_running_node_answers_and_dead_sockets_are_skipped(node_control):
    session, _, recorder = node_control
    newer = session.parent / "live-20261121T110000-000002"
    newer.mkdir(mode=0o700)
    dead_socket(newer / "control.sock")
    os.utime(newer / "control.sock", (2e9, 2e9))
    assert send_command(session.parent, "status")["ok"] is True
    assert recorder.calls[0][0] == "status"


def test_no_running_node_is_a_clear_error(state_dir):
    with pytest.raises(NodeNotRunning, match="no control socket found"):
        send_command(state_dir, "status")
    with pytest.raises(NodeNotRunning, match="does not exist"):
        send_command(state_dir / "nope", "status")
    session = state_dir / "live-1"
    session.mkdir()
    dead_socket(session / "control.sock")
    with pytest.raises(NodeNotRunning, match=r"1 control socket\(s\) left by stopped nodes"):
        send_command(state_dir, "halt")


def test_the_server_refuses_an_open_directory_a_long_path_and_a_live_socket(node_control, state_dir):
    session, token, _ = node_control
    open_dir = state_dir / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    with pytest.raises(ControlError, match="mode 0755.*chmod 700"):
        asyncio.run(start_control_server(open_dir / "control.sock", token, {}))
    deep = state_dir / ("d" * 100)
    deep.mkdir(mode=0o700)
    with pytest.raises(ControlError, match="at most 107"):
        asyncio.run(start_control_server(deep / "control.sock", token, {}))
    with pytest.raises(ControlError, match="already listening"):
        asyncio.run(start_control_server(session / "control.sock", token, {}))
    # A socket left by a dead node is replaced.
    stale = state_dir / "stale"
    stale.mkdir(mode=0o700)
    dead_socket(stale / "control.sock")

    async def start_and_close():
        server = await start_control_server(stale / "control.sock", token, {})
        await server.close()

    asyncio.run(start_and_close())


@pytest.fixture
def engine_with_strategy():
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    strategy = MarketMaker(parse_strategy_config({"instrument_id": "SEI/USDC.SEI"}))
    engine.add_strategy(strategy)
    yield engine, strategy
    engine.dispose()


def test_operator_halt_is_the_kill_switch_path_and_resume_reenables(engine_with_strategy, tmp_path):
    engine, strategy = engine_with_strategy
    risk = engine.kernel.risk_engine
    halted_by = []

    def on_halt(reason):  # as the node wires it: remember every halt across restarts
        halted_by.append(reason)
        record_halt(tmp_path, reason)

    register_halt_endpoint(engine.kernel.msgbus, risk, on_halt=on_halt)
    handlers = operator_handlers(lambda: {"halted": strategy.halted}, strategy, risk, tmp_path)
    assert persisted_halt(tmp_path) is None

    answer = handlers["halt"]({"command": "halt", "reason": "maintenance"})
    assert answer == {"halted": True, "was_halted": False, "halt_reason": "operator: maintenance",
                      "trading_state": "HALTED"}
    assert risk.trading_state == TradingState.HALTED and strategy.halted
    assert halted_by == ["operator: maintenance"]  # through the FlashMM.halt endpoint, as the kill switch
    assert persisted_halt(tmp_path) == "operator: maintenance"  # a restart now starts halted
    assert handlers["status"]({}) == {"status": {"halted": True}}
    assert handlers["halt"]({})["was_halted"] is True and halted_by == ["operator: maintenance"]

    # A drawdown halt: the PnL fell from a peak of 1000 to 0 (max_drawdown 300)...
    strategy.peak_pnl = 1000.0
    assert handlers["resume"]({}) == {"resumed": True, "trading_state": "ACTIVE"}
    assert risk.trading_state == TradingState.ACTIVE and not strategy.halted and strategy.halt_reason == ""
    assert persisted_halt(tmp_path) is None
    # ...and after the resume the drawdown counts from the PnL at the resume: no immediate re-halt.
    assert strategy._check_kill_switch(0.4) is False
    assert handlers["resume"]({}) == {"resumed": False, "trading_state": "ACTIVE"}


def test_operator_halt_fails_loudly_when_the_halt_endpoint_is_missing(engine_with_strategy, tmp_path):
    engine, strategy = engine_with_strategy
    handlers = operator_handlers(dict, strategy, engine.kernel.risk_engine, tmp_path)
    with pytest.raises(ControlError, match="FlashMM.halt endpoint"):
        handlers["halt"]({"reason": "x"})


def test_an_unreadable_halt_record_still_means_halted(tmp_path):
    (tmp_path / control.HALT_FILE).write_text("{not json")
    assert "halted to be safe" in persisted_halt(tmp_path)


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_live_status_halt_resume_against_a_running_node(node_control):
    session, _, recorder = node_control
    out = flashmm("live", "status", "--state-dir", str(session.parent))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"halted": False, "last_block_height": 7}
    out = flashmm("live", "halt", "--state-dir", str(session.parent), "--reason", "gas spike")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"ok": True, "halt": True}
    env = {**os.environ, "FLASHMM_STATE_DIR": str(session.parent)}
    assert flashmm("live", "resume", env=env).returncode == 0  # the state dir from the service's environment
    assert [(n, r.get("reason")) for n, r in recorder.calls] == [("status", None), ("halt", "gas spike"),
                                                                 ("resume", None)]


def test_cli_live_control_without_a_running_node_exits_2(state_dir):
    out = flashmm("live", "halt", "--state-dir", str(state_dir))
    assert out.returncode == 2
    assert f"flashmm: error: no node is running under {state_dir}" in out.stderr
    env = {k: v for k, v in os.environ.items() if k != "FLASHMM_STATE_DIR"}
    out = flashmm("live", "status", env=env)
    assert out.returncode == 2 and "--state-dir DIR or --config FILE" in out.stderr


def test_cli_live_status_finds_the_state_dir_from_the_config(node_control, tmp_path):
    session, _, _ = node_control
    config = tmp_path / "node.toml"
    config.write_text((ROOT / "deploy/node.toml").read_text()
                      .replace('state_dir = "/var/lib/flashmm/live"', f'state_dir = "{session.parent}"'))
    out = flashmm("live", "status", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["last_block_height"] == 7


def test_cli_live_run_still_needs_a_config():
    out = flashmm("live")
    assert out.returncode == 2 and "running a node needs --config FILE" in out.stderr
    args = build_parser().parse_args(["live", "--config", "x.toml"])
    assert (args.action, args.config) == ("run", "x.toml")


# -- flashmm serve: the node from the environment -------------------------------------------------


def serve_env(**extra: str) -> dict:
    return {"FLASHMM_CONFIG": str(ROOT / "deploy/node.toml"), "FLASHMM_CONTRACT": "sei1contract", **extra}


def test_serve_applies_every_override_from_the_environment(tmp_path):
    sei_config = tmp_path / "sei.toml"  # the base TOML with the strategy on the CLOB's instrument
    sei_config.write_text((ROOT / "deploy/node.toml").read_text().replace('"SEI/USDC.MONACO"',
                                                                          '"SEI/USDC.SEI"'))
    env = serve_env(FLASHMM_CONFIG=str(sei_config), FLASHMM_MODE="live", FLASHMM_LOG_LEVEL="DEBUG",
                    FLASHMM_STATE_DIR=str(tmp_path / "state"),
                    FLASHMM_REDIS_URL="redis://redis:6379/0", FLASHMM_OPS_HOST="0.0.0.0", FLASHMM_OPS_PORT="9100",
                    FLASHMM_VENUE="sei-cosmwasm", FLASHMM_API_URL="https://staging.apimonaco.xyz",
                    FLASHMM_EVM_RPC_URL="https://evm-rpc-testnet.sei-apis.com",
                    FLASHMM_RPC_URL="ws://sei:26657/websocket", FLASHMM_CHAIN_ID="pacific-1",
                    FLASHMM_KEY_FILE="relative/sei.key", FLASHMM_SEI_MNEMONIC=MNEMONIC, HOME="/x")
    assert set(env) - {"HOME", "FLASHMM_SEI_MNEMONIC"} == set(ENV_VARS)  # the test covers every variable
    c = config_from_env(env)
    assert (c.node.mode, c.node.log_level, c.node.state_dir) == ("live", "DEBUG", str(tmp_path / "state"))
    assert (c.node.redis_url, c.node.ops_host, c.node.ops_port) == ("redis://redis:6379/0", "0.0.0.0", 9100)
    assert (c.monaco.api_url, c.monaco.evm_rpc_url) == ("https://staging.apimonaco.xyz",
                                                         "https://evm-rpc-testnet.sei-apis.com")
    # The key file and the chain id are the chosen venue's: here the CosmWasm CLOB's.
    assert c.venue.kind == "sei-cosmwasm" and c.key_source[1] == c.sei.key_file
    assert (c.sei.rpc_url, c.sei.contract, c.sei.chain_id) == ("ws://sei:26657/websocket", "sei1contract", "pacific-1")
    assert c.sei.key_file == str(Path.cwd() / "relative/sei.key")  # relative to where the service runs
    # Monaco, the default: the chain id is Sei EVM's number and the key file Monaco's.
    c = config_from_env(serve_env(FLASHMM_CHAIN_ID="1328", FLASHMM_KEY_FILE="/etc/flashmm/monaco.key"))
    assert (c.venue.kind, c.monaco.chain_id, c.monaco.key_file) == ("monaco", 1328, "/etc/flashmm/monaco.key")
    assert (c.sei.chain_id, c.sei.key_file) == ("", "")
    # Empty means unset: the TOML's value stays.
    c = config_from_env(serve_env(FLASHMM_OPS_PORT="", FLASHMM_MODE=""))
    assert (c.node.ops_port, c.node.mode) == (8080, "paper")


@pytest.mark.parametrize("env, message", [
    (serve_env(FLASHMM_CONTRCT="sei1typo"), "unknown environment variable(s) FLASHMM_CONTRCT;"),
    (serve_env(FLASHMM_OPS_PORT="http"), "$FLASHMM_OPS_PORT must be a port number"),
    (serve_env(FLASHMM_OPS_PORT="70000"), "`node.ops_port`: Expected `int` <= 65535"),
    (serve_env(FLASHMM_MODE="yolo"), "`node.mode`"),
    ({"FLASHMM_CONTRACT": "sei1x"}, "$FLASHMM_CONFIG is not set"),
    ({"FLASHMM_CONFIG": str(ROOT / "deploy/node.toml"), "FLASHMM_VENUE": "sei-cosmwasm"}, "sei.contract is required"),
    (serve_env(FLASHMM_CHAIN_ID="pacific-1"), "$FLASHMM_CHAIN_ID must be Sei EVM's chain id on Monaco"),
    (serve_env(FLASHMM_VENUE="binance"), "`venue.kind`"),
])
def test_serve_refuses_a_bad_environment_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as exc:
        config_from_env({**env, "FLASHMM_SEI_MNEMONIC": MNEMONIC})
    assert message in str(exc.value)
    assert "abandon" not in str(exc.value)


def test_serve_accepts_the_key_variable_the_config_names(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text((ROOT / "deploy/node.toml").read_text().replace("[monaco]\n",
                                                                      '[monaco]\nkey_env = "FLASHMM_DESK_KEY"\n'))
    assert config_from_env({"FLASHMM_CONFIG": str(config), "FLASHMM_DESK_KEY": HEX_KEY})
    with pytest.raises(ConfigError, match="FLASHMM_MONACO_KEY"):  # no longer the key's variable here
        config_from_env({"FLASHMM_CONFIG": str(config), "FLASHMM_MONACO_KEY": HEX_KEY})


# -- the deployment files agree with the entry point ----------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def unit() -> ConfigParser:
    parser = ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str
    parser.read_string((ROOT / "deploy/flashmm.service").read_text())
    return parser


def graceful_stop_secs() -> float:
    """The longest a graceful stop of the node can take (app/live/node.py, app/live/lifecycle.py):
    the execution client's cancel-all wait + NautilusTrader's disconnection margin + post-stop +
    the runner's final wait."""
    stop_timeout = load_live_config(ROOT / "deploy/node.toml").stop_timeout_secs
    return stop_timeout + 5.0 + 1.0 + 10.0


def test_env_example_lists_exactly_the_variables_serve_reads_and_they_load():
    env = env_example()
    assert set(env) == set(ENV_VARS)
    assert not any(re.search(r"abandon|[0-9a-f]{64}", value, re.I) for value in env.values())  # no secrets
    config = config_from_env({**env, "FLASHMM_CONFIG": str(ROOT / "deploy/node.toml")})
    assert config.node.ops_port == NodeSection().ops_port == int(env["FLASHMM_OPS_PORT"])
    assert config.node.ops_host == "127.0.0.1"  # the systemd path keeps the ops server on loopback


def test_compose_runs_the_entry_point_with_variables_it_knows():
    c = compose()
    node = c["services"]["node"]
    assert node["env_file"] == ".env"
    assert set(node["environment"]) <= set(ENV_VARS)
    assert node["command"] == ["serve"]
    args = build_parser().parse_args(node["command"])
    assert args.func.__name__ == "_cmd_serve"
    # The ops port: published on the host's loopback only, the same port inside, the default one.
    (port,) = node["ports"]
    published = f"${{FLASHMM_OPS_PORT:-{NodeSection().ops_port:d}}}"
    assert port == f"127.0.0.1:{published}:{published}"
    assert node["environment"]["FLASHMM_OPS_HOST"] == "0.0.0.0"  # reachable through the published port
    # Paths the environment names are where the volumes are mounted.
    mounts = {v.split(":")[1]: v for v in node["volumes"]}
    assert any(node["environment"]["FLASHMM_STATE_DIR"].startswith(target + "/") and spec.startswith("state:")
               for target, spec in mounts.items())
    key_dir = str(Path(node["environment"]["FLASHMM_KEY_FILE"]).parent)
    assert mounts[key_dir].endswith(":ro")
    assert mounts[node["environment"]["FLASHMM_CONFIG"]].startswith("./deploy/node.toml:")
    # Redis: the service the node's URL names, append-only, on a volume.
    redis = c["services"]["redis"]
    assert node["environment"]["FLASHMM_REDIS_URL"].startswith("redis://redis:6379")
    assert redis["image"].startswith("redis:7") and "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    assert set(c["volumes"]) >= {v.split(":")[0] for s in c["services"].values() for v in s.get("volumes", [])
                                 if not v.startswith(".")}
    # The graceful stop fits in the grace period.
    assert int(node["stop_grace_period"].rstrip("s")) >= graceful_stop_secs()
    # The optional app: its command is a valid `flashmm app` and it reads the node's state volume.
    app = c["services"]["app"]
    assert app["profiles"] == ["app"]
    args = build_parser().parse_args(app["command"])
    assert args.func.__name__ == "_cmd_app" and args.live == node["environment"]["FLASHMM_STATE_DIR"]
    assert all(p.startswith("127.0.0.1:") for p in app["ports"])


def test_dockerfile_builds_the_image_compose_runs():
    lines = dockerfile()
    instructions = [key for key, _ in lines]
    assert lines[0] == ("FROM", "python:3.11-slim")
    assert json.loads(dict(lines)["ENTRYPOINT"]) == ["flashmm"]
    assert json.loads(dict(lines)["CMD"]) == compose()["services"]["node"]["command"]
    # Non-root, and only after everything is installed.
    user = dict(lines)["USER"]
    assert user not in ("root", "0") and instructions.index("USER") > max(
        i for i, k in enumerate(instructions) if k == "RUN")
    assert "--uid 10001" in lines[instructions.index("RUN")][1]  # README: the key file is owned by uid 10001
    # CPU torch pinned as pyproject pins it, first; then the project with the pinned closure.
    run = " ".join(v for k, v in lines if k == "RUN")
    torch_pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                     if d.startswith("torch"))
    assert run.index(f"--index-url https://download.pytorch.org/whl/cpu {torch_pin}") < run.index(
        "pip install -c deploy/constraints.txt .")
    copied = {v.split()[0] for k, v in lines if k == "COPY"}
    assert {"deploy", "strategies", "adapters", "backtests", "data", "models", "app"} <= copied
    env = dict(token.split("=", 1) for k, v in lines if k == "ENV" for token in shlex.split(v))
    assert env["FLASHMM_CONFIG"] == compose()["services"]["node"]["environment"]["FLASHMM_CONFIG"]
    assert dict(lines)["EXPOSE"] == str(NodeSection().ops_port)
    assert {".env", "secrets", ".venv", ".git"} <= set((ROOT / ".dockerignore").read_text().split())


def healthcheck_argv() -> list[str]:
    (spec,) = [v for k, v in dockerfile() if k == "HEALTHCHECK"]
    return json.loads(spec.split(" CMD ", 1)[1])


@pytest.mark.parametrize("healthy", [True, False])
def test_the_image_healthcheck_passes_exactly_when_health_is_200(healthy):
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"] and "127.0.0.1" in argv[2] and "/health" in argv[2]
    assert f"or '{NodeSection().ops_port}'" in argv[2]  # the default port when FLASHMM_OPS_PORT is unset
    loops = LoopThread()
    server = loops.run(ops.start_ops_server("127.0.0.1", 0, lambda: {**STATUS, "connected": healthy}))
    try:
        out = subprocess.run([sys.executable, "-c", argv[2]], env={**os.environ, "FLASHMM_OPS_PORT": str(server.port)},
                             capture_output=True, timeout=30)
    finally:
        loops.run(server.close())
        loops.stop()
    assert (out.returncode == 0) == healthy, out.stderr


def test_the_container_entry_point_starts_from_the_environment_compose_gives_it(tmp_path):
    """`flashmm serve` with exactly the environment the node container gets: .env (from the example)
    overridden by compose's `environment:`, with /app mapped to this checkout."""
    node = compose()["services"]["node"]
    env = {**env_example(), **node["environment"]}
    local = {k: v.replace("/app/", f"{ROOT}/") if k == "FLASHMM_CONFIG" else v for k, v in env.items()}
    out = flashmm("serve", "--print-config", env={**os.environ, **local})
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert config["node"]["state_dir"] == node["environment"]["FLASHMM_STATE_DIR"]
    assert config["node"]["redis_url"] == node["environment"]["FLASHMM_REDIS_URL"]
    assert (config["node"]["ops_host"], config["node"]["ops_port"]) == ("0.0.0.0", NodeSection().ops_port)
    # Monaco by default: the key file and the chain id are its.
    assert config["venue"]["kind"] == env["FLASHMM_VENUE"] == "monaco"
    assert config["monaco"]["key_file"] == node["environment"]["FLASHMM_KEY_FILE"]
    assert (config["monaco"]["api_url"], config["monaco"]["chain_id"]) == (env["FLASHMM_API_URL"],
                                                                           int(env["FLASHMM_CHAIN_ID"]))
    assert config["node"]["mode"] == "paper"
    # deploy/node.toml's relative model path finds the bundled model (in the image: /app/models/...).
    assert Path(config["signal"]["model"]) == ROOT / "models/artifacts/sample"
    assert (ROOT / "models/artifacts/sample").is_dir()


def test_systemd_unit_runs_the_entry_point_gracefully_and_hardened():
    u = unit()
    service = u["Service"]
    env = env_example()
    install_dir = service["ExecStart"].split("/.venv/bin/flashmm")[0]
    assert service["ExecStart"] == f"{install_dir}/.venv/bin/flashmm serve"
    assert env["FLASHMM_CONFIG"] == f"{install_dir}/deploy/node.toml"
    assert build_parser().parse_args(service["ExecStart"].split()[1:]).func.__name__ == "_cmd_serve"
    assert service["EnvironmentFile"] == "/etc/flashmm/flashmm.env"
    assert service["User"] not in ("root", "0") and service["WorkingDirectory"]
    assert (service["Restart"], service["KillSignal"]) == ("on-failure", "SIGTERM")
    assert float(service["TimeoutStopSec"].rstrip("s")) >= graceful_stop_secs()
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    assert any(env["FLASHMM_STATE_DIR"].startswith(p + "/") for p in writable)
    assert f"/var/lib/{service['StateDirectory']}" in writable
    assert "redis-server.service" in u["Unit"]["After"]


def test_constraints_pin_every_runtime_dependency_as_pyproject_does():
    pins = {}
    for line in (ROOT / "deploy/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", dep)[0]).lower()
        assert name in pins, f"deploy/constraints.txt does not pin {name}"
        if "==" in dep:
            assert pins[name] == dep.split("==")[1], f"{name}: constraints and pyproject disagree"


# -- logs: the audit trail and the redaction of secrets -------------------------------------------


def test_secret_registry_catches_a_key_however_it_leaks():
    reg = SecretRegistry()
    reg.register(MNEMONIC + "\n")
    reg.register("0x" + HEX_KEY)
    words = MNEMONIC.split()
    for leak in (MNEMONIC, "\n".join(words), "\\n".join(words), "  ".join(words).upper(), repr(MNEMONIC + "\n"),
                 HEX_KEY, HEX_KEY.upper(), "0x" + HEX_KEY, f"key={HEX_KEY}!"):
        assert reg.contains(leak), leak
        assert "abandon" not in reg.scrub(leak).lower() and HEX_KEY not in reg.scrub(leak).lower()
    assert reg.scrub(f"before {MNEMONIC} after") == "before [REDACTED] after"
    assert reg.scrub("abandon ship, about face") == "abandon ship, about face"  # single words are not the secret
    assert not reg.contains(HEX_KEY[:40])
    with pytest.raises(ValueError, match="shorter than 12"):
        reg.register("hunter2")


def test_the_key_the_node_loads_is_registered_with_the_key_it_derives(tmp_path, monkeypatch):
    from adapters.sei.keys import load_signer

    mnemonic = "legal winner thank year wave sausage worth useful legal winner thank yellow"  # BIP-39 vector
    file_key = f"{HEX_KEY[:-8]}{os.getpid() + 1:08x}"
    monkeypatch.setenv("FLASHMM_TEST_MNEMONIC", mnemonic)
    key_file = tmp_path / "sei.key"
    key_file.write_text(file_key + "\n")
    key_file.chmod(0o600)
    derived = load_signer(env="FLASHMM_TEST_MNEMONIC")._key.private_key_hex  # what the adapter will sign with
    assert not any(SECRETS.contains(s) for s in (mnemonic, file_key, derived))
    register_key_secrets("FLASHMM_TEST_MNEMONIC", key_file)
    register_key_secrets("FLASHMM_TEST_MNEMONIC", tmp_path / "missing.key")  # unreadable: the adapter reports it
    assert all(SECRETS.contains(s) for s in (mnemonic, file_key, derived))


AUDIT_SCENARIO = [(100, "buy", "a", "0.4000", "50.0"), (100, "buy", "b", "0.3990", "50.0"),
                  (900, "cancel", "b", "", ""), (100, "sell", "c", "0.3995", "10.0")]


def test_audit_log_records_every_order_event_with_both_ids_and_never_a_secret(tmp_path):
    catalog = write_tape(tmp_path / "tape", evolve([{"t": 1200, "bid": {"0.4000": 0},
                                                     "trades": [("sell", "0.4000", 150.0)]}]))
    tape = open_tape(catalog)
    engine, _, _ = build_engine(parse_config({"run": {"catalog": str(catalog)}, "venue": {"latency_ms": 0.0},
                                              "strategy": {"instrument_id": "SEI/USDC.SEI"}}), tape)
    strategy = Scripted(ScriptConfig(instrument_id=tape.instrument.id, actions=AUDIT_SCENARIO))
    engine.add_strategy(strategy)
    audit_path = tmp_path / AUDIT_FILE
    audit_path.write_text('{"event": "from an earlier run"}\n')
    engine.add_actor(AuditLog(AuditLogConfig(path=str(audit_path))))
    try:
        stream(engine, tape, tape.start_ns, tape.end_ns, 15, progress=False)
        engine.end()
        # Still running, file still open: every line is already on disk (flushed per line).
        lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
        assert lines[0] == {"event": "from an earlier run"}  # appended, not truncated
        by_tag = {tag: [(r["event"], r["side"], r["price"], r["qty"]) for r in lines[1:]
                        if r["client_order_id"] == coid.value] for tag, coid in strategy.tags.items()}
        assert by_tag == {
            "a": [("submit", "BUY", "0.4000", "50.0"), ("accept", "BUY", "0.4000", "50.0"),
                  ("fill", "BUY", "0.4000", "50.0")],
            "b": [("submit", "BUY", "0.3990", "50.0"), ("accept", "BUY", "0.3990", "50.0"),
                  ("cancel_request", "BUY", "0.3990", "50.0"), ("cancel", "BUY", "0.3990", "50.0")],
            "c": [("submit", "SELL", "0.3995", "10.0"), ("reject", "SELL", "0.3995", "10.0")],
        }
        for r in lines[1:]:
            assert (r["strategy_id"] == "Scripted-000" and r["instrument_id"] == "SEI/USDC.SEI"
                    and r["ts"].startswith("2026-01-05"))
            assert (r["venue_order_id"] is None) == (r["event"] in ("submit", "reject")), r
        fill = next(r for r in lines if r["event"] == "fill")
        assert (fill["liquidity"], fill["trade_id"] is not None) == ("MAKER", True)
        assert "POST_ONLY" in next(r for r in lines if r["event"] == "reject")["reason"]

        # A venue reject whose text carries key material (say, an echoed request) is scrubbed.
        secret = f"{HEX_KEY[:-8]}{os.getpid():08x}"  # unique to this process: the registry is global
        register_secret(secret)
        coid = strategy.tags["c"]
        engine.kernel.msgbus.publish(topic="events.order.Scripted-000", msg=OrderRejected(
            trader_id=engine.kernel.trader_id, strategy_id=strategy.id, instrument_id=tape.instrument.id,
            client_order_id=coid, account_id=AccountId("SEI-001"), reason=f"bad signature for {secret.upper()}",
            event_id=UUID4(), ts_event=tape.end_ns, ts_init=tape.end_ns))
        last = json.loads(audit_path.read_text().splitlines()[-1])
        assert (last["event"], last["reason"]) == ("reject", "bad signature for [REDACTED]")
        assert secret not in audit_path.read_text().lower()
    finally:
        engine.dispose()
    assert audit_path.read_text().count("\n") == len(lines) + 1


LEAKY_NODE = r'''
import asyncio, logging, os, sys
from pathlib import Path
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from app.live.logs import node_logging_config, register_key_secrets

session, key_file = Path(sys.argv[1]), sys.argv[2]
register_key_secrets("FLASHMM_SEI_MNEMONIC", key_file)   # what the node does before it builds
mnemonic, hex_key = os.environ["FLASHMM_SEI_MNEMONIC"], Path(key_file).read_text().strip()

class Leaky(Actor):
    def on_start(self):
        self.log.info("probe-1 " + mnemonic.replace(" ", "\n"))
        try:
            raise ValueError(f"cannot use key {hex_key.upper()}")
        except ValueError as exc:
            self.log.exception("probe-2", exc)
        logging.getLogger("adapters.sei.rpc").warning("probe-3 %s", "0x" + hex_key)
        raise RuntimeError(f"probe-4 {mnemonic}")   # NautilusTrader logs it with its traceback

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
node = TradingNode(config=TradingNodeConfig(logging=node_logging_config(session, "INFO")), loop=loop)
node.trader.add_actor(Leaky())
node.build()

async def main():
    loop.create_task(node.run_async())
    await asyncio.sleep(1.0)
    await node.stop_async()

loop.run_until_complete(main())
node.dispose()
raise RuntimeError(f"probe-5 {hex_key}")
'''


def test_node_json_log_is_json_lines_and_never_contains_the_key(tmp_path):
    """A real TradingNode whose actor puts the key in messages, exceptions and tracebacks."""
    session = tmp_path / "session"
    session.mkdir()
    key_file = tmp_path / "sei.key"
    key_file.write_text(HEX_KEY + "\n")
    key_file.chmod(0o600)
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY_NODE)
    env = {**os.environ, "FLASHMM_SEI_MNEMONIC": MNEMONIC, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script), str(session), str(key_file)], capture_output=True,
                         text=True, env=env, timeout=60, cwd=ROOT)
    assert out.returncode == 1 and "RuntimeError: probe-5 [REDACTED]" in out.stderr, out.stderr[-2000:]
    records = [json.loads(line) for line in (session / "node.json").read_text().splitlines()]
    assert {"timestamp", "trader_id", "level", "component", "message"} <= set(records[0])
    probes = {m: r for r in records for m in ("probe-1", "probe-2", "probe-3", "probe-4") if m in r["message"]}
    assert set(probes) == {"probe-1", "probe-2", "probe-3", "probe-4"}
    assert probes["probe-3"]["component"] == "adapters.sei.rpc"  # stdlib logging reaches the node's log
    assert "Traceback" in probes["probe-2"]["message"]
    assert all("[REDACTED]" in r["message"] for r in probes.values())
    everything = ((session / "node.json").read_text() + out.stdout + out.stderr).lower()
    assert "abandon" not in everything and HEX_KEY not in everything


def test_deploy_guide_steps_name_what_the_files_define():
    deploy = (ROOT / "docs/deploy.md").read_text()
    c, env, service = compose(), env_example(), unit()["Service"]
    for volume in c["volumes"]:  # docker compose names volumes <project>_<volume>
        assert f"{c['name']}_{volume}" in deploy
    assert "-o 10001 -g 10001" in deploy and "--uid 10001" in (ROOT / "Dockerfile").read_text()
    assert f"/run/secrets/{Path(c['services']['node']['environment']['FLASHMM_KEY_FILE']).name}" in deploy
    assert f"secrets/{Path(c['services']['node']['environment']['FLASHMM_KEY_FILE']).name}" in deploy
    for path in (service["EnvironmentFile"], env["FLASHMM_KEY_FILE"], env["FLASHMM_STATE_DIR"], env["FLASHMM_CONFIG"]):
        assert path in deploy, path
    assert f"-u {service['User']} {service['ExecStart'].split()[0]} live status" in deploy
    assert f"{NodeSection().ops_host}:{NodeSection().ops_port}/health" in deploy
    assert "pip install -c deploy/constraints.txt ." in deploy and "torch==2.13.0" in deploy


@pytest.mark.parametrize("mode", ["live", "paper"])
@pytest.mark.parametrize("exclude", [True, False])
def test_the_node_tells_the_data_client_whether_to_leave_out_its_own_orders(mode, exclude):
    """A contract older than v1.2 has no `book.exclude_owner`: `[sei] exclude_own_orders = false`."""
    from app.live.config import LiveConfig, NodeSection, SeiSection
    from app.live.node import _client_configs

    config = LiveConfig(node=NodeSection(mode=mode), strategy={"instrument_id": "SEI/USDC.SEI"},
                        sei=SeiSection(contract="sei1contract", exclude_own_orders=exclude))
    data, _, _ = _client_configs(config)
    assert data.exclude_own_orders is exclude
    assert LiveConfig().sei.exclude_own_orders  # on unless turned off


def test_order_by_order_logging_follows_log_orders():
    """The strategy's per-order [CMD]/[EVT] log lines are off unless `[node] log_orders` asks for them
    (the audit trail has every order event); the rest of the strategy's config is untouched."""
    path = ROOT / "app/configs/live_monaco_local.toml"
    quiet, chatty = load_live_config(path), load_live_config(path, {"node.log_orders": True})
    assert (quiet.strategy_config().log_events, quiet.strategy_config().log_commands) == (False, False)
    assert (chatty.strategy_config().log_events, chatty.strategy_config().log_commands) == (True, True)
    assert msgspec.structs.replace(quiet.strategy_config(), log_events=True, log_commands=True) == \
        chatty.strategy_config()
