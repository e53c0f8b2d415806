"""The live node runs its timers on the event loop. NautilusTrader 1.221 fires a live clock's timer
callback on a thread of its own: the strategy's requote timer would then run while the strategy
handles a book update on the loop (a dict changed while being iterated stopped a node), and the
status writer would read the node's state while the loop changes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

PROBE = r'''
import sys, tempfile, threading, tomllib
from pathlib import Path
from app.live.config import load_live_config
from app.live.monaco_run import monaco_node_config, start_local_monaco
from app.live import node, status
from data.catalog import open_tape
from strategies.market_maker import MarketMaker

seen = set()
on_timer, write = MarketMaker._on_timer, status.StatusWriter.write
MarketMaker._on_timer = lambda self, event: (seen.add(("requote", threading.current_thread().name)),
                                             on_timer(self, event))
status.StatusWriter.write = lambda self: (seen.add(("status", threading.current_thread().name)), write(self))
venue = start_local_monaco(open_tape("data/sample"), None, None)
try:
    strategy = tomllib.loads(Path("app/configs/live_monaco_local.toml").read_text())["strategy"]
    config = monaco_node_config(venue, Path(tempfile.mkdtemp()), {**strategy, "use_signal": False},
                                mode="paper", node={"status_interval_secs": 0.1})
    node.run_live(load_live_config(config), duration_secs=4)
finally:
    venue.stop()
print(sorted(seen))
'''


def test_the_requote_timer_and_the_status_writer_run_on_the_event_loop(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[('requote', 'MainThread'), ('status', 'MainThread')]"
