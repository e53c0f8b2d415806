"""The node's status file: what an operator (or the app's Live page) reads while it runs.

Written atomically (temp file + rename) every `interval`, so a reader never sees half a file.
The node's state is read and encoded on the event loop (a consistent snapshot, with the C JSON
encoder: no indent); the file write and rename, a millisecond of system calls, run on a writer
thread so they never delay a book update's reaction (they were the live tick-to-order's p99 tail).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
        self._writer: ThreadPoolExecutor | None = None  # one thread: the writes land in order
        self.write_error: BaseException | None = None  # the writer thread's last failure, reported on the loop

    def on_start(self) -> None:
        self.open_writer()
        self.clock.set_timer("status", interval=pd.Timedelta(seconds=self.interval),
                             callback=lambda _: self.run_on(self.write))
        self.write()

    def open_writer(self) -> None:
        """From now on, writes go to the writer thread."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-writer")

    def on_stop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)
        self.write()  # the last word, after every earlier write has landed

    def write(self) -> None:
        data = encode_json(self.collect())
        error, self.write_error = self.write_error, None
        if error is not None:
            self.log.error(f"could not write {self.path}: {error}")
        if self._writer is None:
            write_bytes_atomic(self.path, data)
        else:
            self._writer.submit(write_bytes_atomic, self.path, data).add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        if future.exception() is not None:
            self.write_error = future.exception()


def encode_json(payload: dict) -> bytes:
    return (json.dumps(payload, default=str) + "\n").encode()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: dict) -> None:
    write_bytes_atomic(path, encode_json(payload))
