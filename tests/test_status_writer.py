"""The live node's status file: written off the event loop, in order, the stop's write last; a
failed write is reported on the next one and does not stop the writing."""

from __future__ import annotations

import json
import threading

from app.live import status
from app.live.status import StatusWriter, StatusWriterConfig


class _Log:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)


class _Writer(StatusWriter):
    """The node's writer without a kernel or timer: the test calls `write` as the timer would."""

    log = property(lambda self: self._test_log)

    def __init__(self, path) -> None:
        super().__init__(StatusWriterConfig(path=str(path), interval_secs=1.0))
        self._test_log = _Log()
        self.n = 0

        def collect() -> dict:
            self.n += 1
            return {"n": self.n}

        self.collect = collect


def test_writes_run_on_the_writer_thread_in_order_and_the_stop_writes_last(tmp_path, monkeypatch):
    written: list[tuple[str, int]] = []
    write_bytes = status.write_bytes_atomic

    def recording(path, data):
        written.append((threading.current_thread().name, json.loads(data)["n"]))
        write_bytes(path, data)

    monkeypatch.setattr(status, "write_bytes_atomic", recording)
    writer = _Writer(tmp_path / "status.json")
    writer.open_writer()
    for _ in range(200):
        writer.write()
    writer.on_stop()

    assert [n for _, n in written] == list(range(1, 202))  # every write landed, in order
    assert all(name.startswith("status-writer") for name, _ in written[:200])  # none on the caller's thread
    assert written[-1][0] == threading.current_thread().name  # the stop's write waits for them, then writes
    assert json.loads((tmp_path / "status.json").read_text()) == {"n": 201}
    assert writer.log.errors == []


def test_a_failed_write_is_reported_on_the_next_and_writing_goes_on(tmp_path):
    folder = tmp_path / "state"
    writer = _Writer(folder / "status.json")  # the folder does not exist yet: the first write fails
    writer.open_writer()
    writer.write()
    writer._writer.submit(lambda: None).result()  # the writer thread is done with it
    assert writer.write_error is not None and writer.log.errors == []

    folder.mkdir()
    writer.write()
    writer.on_stop()
    assert len(writer.log.errors) == 1 and str(folder / "status.json") in writer.log.errors[0]
    assert writer.write_error is None
    assert json.loads((folder / "status.json").read_text()) == {"n": 3}
