"""Shared fixtures: run dirs and a sweep made once per test session by the real CLI, and the list of
test artifacts (screenshots) printed at the end so that CI output shows where they are."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SAMPLE_CONFIG = ROOT / "backtests/configs/sample.toml"
_SESSION_START = time.time()

# 2 x 2 points on two 5-minute windows of the bundled sample, signal off: 8 short backtests.
DEMO_SWEEP = f"""
base = "{SAMPLE_CONFIG}"
name = "demo"
metric = "pnl_total"

[fixed]
"strategy.use_signal" = false

[grid]
"strategy.half_spread_bps" = [2.0, 4.0]
"strategy.linear_skew_bps" = [1.0, 6.0]

[walk_forward]
windows = [["+0min", "+5min"], ["+5min", "+10min"]]
"""


@dataclass(frozen=True)
class DemoRuns:
    root: Path  # what `flashmm app --runs` is given
    plain: Path  # 10 minutes (the sample's first out-of-sample ones), signal off
    signal: Path  # 5 minutes, signal on
    sweep: Path  # the sweep dir
    sweep_file: Path
    sweep_stdout: str


def flashmm(*args: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, f"flashmm {' '.join(args)} failed:\n{out.stderr[-3000:]}"
    return out.stdout


def _run_dir(stdout: str) -> Path:
    return Path(stdout.rsplit("Run written to ", 1)[1].strip())


def _build(base: Path) -> dict:
    root = base / "runs"
    plain = _run_dir(flashmm("backtest", "--config", str(SAMPLE_CONFIG), "--end", "+130min", "--signal", "off",
                             "--out", str(root), "--quiet", cwd=base))
    signal = _run_dir(flashmm("backtest", "--config", str(SAMPLE_CONFIG), "--end", "+125min", "--signal", "on",
                              "--out", str(root), "--quiet", cwd=base))
    sweep_file = base / "demo_sweep.toml"
    sweep_file.write_text(DEMO_SWEEP)
    sweep = root / "demo"
    stdout = flashmm("sweep", "--config", str(sweep_file), "--out", str(sweep), "--workers", "2", "--quiet", cwd=base)
    return {"root": str(root), "plain": str(plain), "signal": str(signal), "sweep": str(sweep),
            "sweep_file": str(sweep_file), "sweep_stdout": stdout}


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory) -> DemoRuns:
    """Built once per test session even under pytest-xdist: the first worker builds it under a file
    lock in the directory the workers share; the others wait and read what it wrote.

    Tests must not modify it; copy it first."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    base = shared / "flashmm-demo-runs"
    base.mkdir(exist_ok=True)
    done = base / "done.json"
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            done.write_text(json.dumps(_build(base)))
        fcntl.flock(lock, fcntl.LOCK_UN)
    paths = json.loads(done.read_text())
    return DemoRuns(**{k: v if k == "sweep_stdout" else Path(v) for k, v in paths.items()})


def pytest_terminal_summary(terminalreporter):
    made = sorted(p for p in ARTIFACTS.glob("*") if p.stat().st_mtime >= _SESSION_START) if ARTIFACTS.is_dir() else []
    if made:
        terminalreporter.section("test artifacts")
        for path in made:
            terminalreporter.write_line(str(path))


# -- a real redis-server for the node's persisted cache ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: `sudo apt-get install redis-server` (scripts/test.sh installs it)"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


# -- a busy market for the live node's tests ---------------------------------------------------


@pytest.fixture(scope="session")
def busy_catalog(tmp_path_factory) -> Path:
    """A busy synthetic market (about one aggressive order per block), so that a short live
    session sees fills; the bundled sample trades about once every two seconds."""
    from data.synth import SynthParams, generate

    out = tmp_path_factory.mktemp("busy") / "tape"
    generate(hours=0.05, seed=11, out=out, params=SynthParams(regime_trade_rate=(0.8, 1.0, 1.2)))
    return out


@pytest.fixture(scope="session")
def busy_tape(busy_catalog):
    from data.catalog import open_tape

    return open_tape(busy_catalog)
