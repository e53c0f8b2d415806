"""A backtest's signal, precomputed chunk by chunk and replayed, is the online actor's signal.

Per book batch the replayed SignalData must equal what the online SignalActor publishes inside the
engine (same features, model calls, fallback and breaker), so the runs are the same byte for byte.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nautilus_trader.model.identifiers import InstrumentId

from backtests.config import load_config
from backtests.runner import run_backtest
from models.replay import PlainChunk, PrecomputeWorker, SignalPrecompute, can_fork_worker
from models.runtime import SignalEngine

ROOT = Path(__file__).resolve().parent.parent
FILES = ("signal.parquet", "fills.parquet", "orders.parquet", "quotes.parquet", "equity.parquet")


WAYS = {"worker": {"signal.replay": True, "signal.worker": True},  # precomputed in a forked process
        "inline": {"signal.replay": True, "signal.worker": False},  # precomputed in the run's process
        "online": {"signal.replay": False}}  # the online actor inside the engine, as a live node


def every_way(tmp_path: Path, config: Path, overrides: dict) -> dict[str, Path]:
    runs = {}
    for name, way in WAYS.items():
        cfg = load_config(config, {**overrides, **way, "strategy.use_signal": True,
                                   "run.chunk_minutes": 2})  # several chunks: the precompute's state carries over
        runs[name] = run_backtest(cfg, out=tmp_path / name).run_dir
    return runs


def metrics_of(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("wall_seconds")
    return metrics


@pytest.mark.parametrize("config, window", [
    ("backtests/configs/sample.toml", {"run.start": "+130min", "run.end": "+140min"}),  # seeded mid-tape
    ("backtests/configs/ethusdt_real.toml", {"run.start": "+60s", "run.end": "+150s",  # a deep real book
                                              "signal.model": str(ROOT / "models/artifacts/ethusdt")}),
])
def test_replayed_signal_is_the_online_signal(tmp_path, config, window):
    runs = every_way(tmp_path, ROOT / config, window)
    for way in ("worker", "inline"):
        for name in FILES:
            assert (runs[way] / name).read_bytes() == (runs["online"] / name).read_bytes(), (way, name)
    metrics = {way: metrics_of(run) for way, run in runs.items()}
    assert [metrics[way].pop("signal_worker") for way in WAYS] == [can_fork_worker(), False, False]
    assert metrics["worker"] == metrics["inline"] == metrics["online"]  # the signal summary included
    assert metrics["worker"]["signal"]["model_blocks"] > 500 and metrics["worker"]["fill_count"] > 0


IID = InstrumentId.from_str("SEI/USDC.SEI")
EMPTY = PlainChunk(([], [], [], [], [], []), [])


class Failing(SignalPrecompute):
    def rows(self, chunk):
        raise ValueError("no rows for this chunk")


class Dying(SignalPrecompute):
    def rows(self, chunk):
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_error_reaches_the_run_with_its_traceback():
    worker = PrecomputeWorker(Failing(IID, SignalEngine(None)))
    worker.submit(EMPTY)
    with pytest.raises(RuntimeError, match=r"(?s)signal worker failed:.*ValueError: no rows for this chunk"):
        worker.collect()
    worker.terminate()
    assert not worker._process.is_alive()


def test_a_dead_worker_is_an_error_not_a_hang():
    worker = PrecomputeWorker(Dying(IID, SignalEngine(None)))
    worker.submit(EMPTY)
    with pytest.raises(RuntimeError, match=r"died \(exit code -9\)"):
        worker.collect()
    with pytest.raises(RuntimeError, match="died"):  # and nothing more can be sent to it
        worker.submit(EMPTY)
    worker.terminate()


def test_a_worker_hands_back_its_engine_state_at_close():
    engine = SignalEngine(None)
    worker = PrecomputeWorker(SignalPrecompute(IID, engine))
    worker.submit(EMPTY)
    assert worker.collect() == []
    with pytest.raises(RuntimeError, match="1 chunk"):  # a chunk in flight is never dropped silently
        worker.submit(EMPTY)
        worker.close()
    assert worker.collect() == []
    engine.stats["model_blocks"] = 99  # the run's copy; the worker's own is what close brings back
    worker.close()
    assert engine.stats["model_blocks"] == 0 and not worker._process.is_alive()


def _report_can_fork(queue) -> None:
    queue.put(can_fork_worker())


def test_no_worker_inside_a_daemon_process():
    """A daemon process may not have children: a run there computes the signal itself."""
    assert can_fork_worker() == (len(os.sched_getaffinity(0)) >= 2)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_report_can_fork, args=(queue,), daemon=True)
    process.start()
    assert queue.get(timeout=30) is False
    process.join()


def test_chunks_larger_than_the_pipe_do_not_deadlock_the_worker(tmp_path):
    """An hour's chunk and its signal are each megabytes, far over a pipe's buffer: the run and
    its worker must never both be writing. Run in a child process so that a deadlock fails the
    test at the timeout instead of hanging the suite."""
    overrides = {"run.start": "+0s", "run.end": "+150min", "run.chunk_minutes": 60, "signal.worker": True}
    script = (
        "import json\n"
        "from backtests.config import load_config\n"
        "from backtests.runner import run_backtest\n"
        f"cfg = load_config({str(ROOT / 'backtests/configs/sample.toml')!r}, {overrides!r})\n"
        "m = run_backtest(cfg, write=False).metrics\n"
        "print(json.dumps([m['signal_worker'], m['signal']['model_blocks']]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    worker, blocks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert worker == can_fork_worker() and blocks > 20_000  # three chunks of 60 min, a block every 400 ms


def _gone(pid: int) -> bool:
    """The process has exited (no longer exists, or is a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split()[1:2] == ["Z"] for line in status if line.startswith("State:"))
    except FileNotFoundError:
        return True


def test_a_worker_outlives_no_run_that_was_killed():
    """A run killed outright (no finally, no atexit) must not leave its worker waiting forever."""
    script = (
        "import sys, time\n"
        "from nautilus_trader.model.identifiers import InstrumentId\n"
        "from models.replay import PrecomputeWorker, SignalPrecompute\n"
        "from models.runtime import SignalEngine\n"
        "w = PrecomputeWorker(SignalPrecompute(InstrumentId.from_str('SEI/USDC.SEI'), SignalEngine(None)))\n"
        "print(w._process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    worker_pid = int(run.stdout.readline())
    assert not _gone(worker_pid)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 30
    while not _gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker_pid)


def test_a_stuck_worker_is_stopped_and_reported(monkeypatch):
    """Alive but silent (stopped, or blocked on a lock a fork copied): the run does not wait forever."""
    import models.replay as replay

    monkeypatch.setattr(replay, "RESULT_TIMEOUT_S", 1.0)
    worker = PrecomputeWorker(SignalPrecompute(IID, SignalEngine(None)))
    os.kill(worker._process.pid, signal.SIGSTOP)
    worker.submit(EMPTY)
    with pytest.raises(RuntimeError, match="sent nothing for 1 s"):
        worker.collect()
    assert not worker._process.is_alive()
