"""The node's status file: what an operator (or the app's Live page) reads while it runs.

Written atomically (temp file + rename) every `interval`, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig

STATUS_FILE = "status.json"


class StatusWriterConfig(ActorConfig, frozen=True):
    path: str
    interval_secs: float = 1.0


class StatusWriter(Actor):
    def __init__(self, config: StatusWriterConfig) -> None:
        super().__init__(config)
        self.path = Path(config.path)
        self.interval = config.interval_secs
        self.collect: Callable[[], dict] = dict
        # Where the timer's writes run. A live clock fires on its own thread, while `collect` reads the
        # node's state: the node hands the writes to its event loop (`loop.call_soon_threadsafe`).
        self.run_on: Callable[[Callable[[], None]], object] = lambda fn: fn()

    def on_start(self) -> None:
        self.clock.set_timer("status", interval=pd.Timedelta(seconds=self.interval),
                             callback=lambda _: self.run_on(self.write))
        self.write()

    def on_stop(self) -> None:
        self.write()

    def write(self) -> None:
        write_json_atomic(self.path, self.collect())


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
