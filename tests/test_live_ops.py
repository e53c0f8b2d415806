"""The operator's view of a running node: /health, /metrics and `flashmm live status|halt|resume`,
against a real `flashmm live` trading the localnet. Halt must take every quote off the chain and
keep it off; resume must bring quotes back; the endpoints must report what the node knows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.live.localrun import node_config, read_back, run_node, start_localnet

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def cli(state_dir: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "app.cli", "live", *args, "--state-dir", state_dir],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_health_metrics_halt_and_resume_on_a_running_node(tmp_path, busy_tape):
    raw = tomllib.loads((ROOT / "backtests/configs/sample.toml").read_text())["strategy"]
    net, replay = start_localnet(busy_tape, None, None)
    seen: dict = {}

    def operate(proc) -> None:
        state_dir = tomllib.loads(config.read_text())["node"]["state_dir"]
        chain_orders = lambda: net.call(  # noqa: E731
            lambda c: c.clob.query({"open_orders": {"owner": c.dev.address}}, c.height)["orders"])
        deadline = time.monotonic() + 60
        while not chain_orders():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        time.sleep(1.5)
        status = cli(state_dir, "status")
        base = f"http://127.0.0.1:{status['ops_port']}"
        code, body = get(base + "/health")
        health = json.loads(body)
        seen["health"] = (code, health)
        m = metrics(get(base + "/metrics")[1])
        seen["metrics"], seen["status"] = m, status
        seen["halt"] = cli(state_dir, "halt", "--reason", "test")
        deadline = time.monotonic() + 10
        while chain_orders():  # halt pulls every quote and keeps them off
            assert time.monotonic() < deadline, "quotes still on the book after halt"
            time.sleep(0.2)
        time.sleep(2)
        seen["halted_orders"] = len(chain_orders())
        seen["halted_health"] = get(base + "/health")
        seen["halted_metrics"] = metrics(get(base + "/metrics")[1])
        seen["resume"] = cli(state_dir, "resume")
        deadline = time.monotonic() + 10
        while not chain_orders():
            assert time.monotonic() < deadline, "no quote came back after resume"
            time.sleep(0.2)

    try:
        config = node_config(net, tmp_path, {**raw, "use_signal": False, "order_size": 50.0})
        session_dir, output = run_node(config, duration_s=30, during=operate)
        run = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    code, health = seen["health"]
    status = seen["status"]
    assert code == 200 and health["ready"] and health["connected"] and not health["halted"]
    assert abs(health["last_block_height"] - status["last_block_height"]) <= 5
    m = seen["metrics"]
    assert m["flashmm_connected"] == 1 and m["flashmm_halted"] == 0
    assert m["flashmm_live_quotes"] >= 1
    assert m["flashmm_inventory"] == pytest.approx(status["inventory"])
    assert m["flashmm_txs_sent_total"] >= 1 and 0 <= m["flashmm_block_lag_seconds"] < 5
    assert seen["halt"]["halted"] is True and seen["halt"]["trading_state"] == "HALTED"
    assert seen["halted_orders"] == 0
    assert seen["halted_metrics"]["flashmm_halted"] == 1
    assert json.loads(seen["halted_health"][1])["halted"] is True
    assert seen["resume"]["trading_state"] == "ACTIVE"
    assert run.open_orders == []  # and the graceful stop still leaves nothing behind
    audit = [json.loads(line) for line in (session_dir / "audit.jsonl").read_text().splitlines()]
    assert {"submit", "accept", "cancel"} <= {a["event"] for a in audit}
    assert all(a["client_order_id"] for a in audit)



def compose_environment() -> dict[str, str]:
    """The node service's `environment:` entries in docker-compose.yml (a flat `KEY: value` list)."""
    env, inside = {}, False
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped == "environment:":
            inside = True
            continue
        if inside:
            if not stripped or stripped.startswith("#"):
                continue
            if not line.startswith("      ") or ":" not in stripped:
                break
            key, value = stripped.split(":", 1)
            env[key.strip()] = value.strip()
    return env


def test_container_entry_point_starts_the_node_from_the_environment_compose_gives_it(tmp_path, busy_tape, redis_url):
    """`flashmm serve` (the image's CMD) with the variables docker-compose.yml and .env.example set,
    only the addresses pointed at this machine's local Monaco (the default venue) and redis; SIGTERM
    (docker stop) stops it cleanly, leaving no order on the venue."""
    import os
    import signal
    import socket

    from app.live.monaco_run import monaco_node_config, start_local_monaco

    env_file = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                    if line and not line.startswith("#"))
    compose = compose_environment()
    assert {"FLASHMM_CONFIG", "FLASHMM_STATE_DIR", "FLASHMM_KEY_FILE", "FLASHMM_REDIS_URL"} <= set(compose)
    venue = start_local_monaco(busy_tape, None, None)
    proc = None
    try:
        config = monaco_node_config(venue, tmp_path, {})  # for its key file and short state dir
        node = tomllib.loads(config.read_text())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ops_port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHMM_")}
        env.update(env_file)
        env.update(compose)
        env.update({  # what differs between the container and this test machine
            "FLASHMM_CONFIG": str(ROOT / "deploy/node.toml"), "FLASHMM_STATE_DIR": node["node"]["state_dir"],
            "FLASHMM_KEY_FILE": node["monaco"]["key_file"], "FLASHMM_REDIS_URL": redis_url,
            "FLASHMM_API_URL": venue.url, "FLASHMM_CHAIN_ID": "1328",
            "FLASHMM_MODE": "live", "FLASHMM_OPS_HOST": "127.0.0.1", "FLASHMM_OPS_PORT": str(ops_port),
        })
        log = (tmp_path / "serve.log").open("w")  # a file, not a pipe nobody reads until the end
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                code, body = get(f"http://127.0.0.1:{ops_port}/health")
                if code == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the node never became healthy"
            time.sleep(0.3)
        health = json.loads(body)
        assert health["mode"] == "live" and health["connected"]
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        output = (tmp_path / "serve.log").read_text()
        left = venue.call(lambda s: [o for o in s.exchange.orders_of(venue.dev.address)
                                     if o.status in ("SUBMITTED", "PARTIALLY_FILLED")])
        placed = venue.call(lambda s: len(s.exchange.orders_of(venue.dev.address)))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        venue.stop()
    assert proc.returncode == 0, output[-3000:]
    assert placed > 0 and left == []
