"""The signal of a backtest computed ahead of the engine, chunk by chunk, and replayed to it.

Inside the engine each book batch costs the online actor its features, a model call and the
message: ~200 us on the sample, most of a backtest's time. A backtest knows its tape in advance,
so `SignalPrecompute` runs the online path over each chunk just before the engine gets it, outside
the engine's loop (the same `OnlineFeatures` on the same stream, the same `SignalEngine` with its
fallback and breaker), and `SignalReplayActor` publishes the result at each batch. The strategy
sees byte for byte the signal the online actor would have sent (tests/test_signal_replay.py).

The model is asked once per chunk for all its rows. That is exact because FlashMM's models are
evaluated batch-invariantly (models/kernel.py): a row's probabilities are the same bits in a batch
as alone, as the live node computes them. A model the kernel does not take is called row by row.

On a machine with a core to spare the precompute runs in a forked worker process (`PrecomputeWorker`),
a chunk ahead of the engine, so its cost leaves the run's wall time. It computes the same rows: the
same code on the same plain values (`PlainChunk`), with the model the run loaded before forking.
Only models the kernel evaluates go to a worker, so the worker never runs torch after a fork.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import DataType, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from data.levels import BookLevels, DeltaColumns, PackedColumns
from models.features import OnlineFeatures
from models.runtime import SignalEngine
from models.signal_data import SignalData


class PlainChunk(NamedTuple):
    """What the precompute reads of a chunk, as plain values (no NautilusTrader object, so it can
    go to another process): the chunk's deltas as columns and its stream in the engine's order,
    a batch's prints first. A stream item is (TRADE, ts_init, size, aggressor side as an int) or
    (BATCH, ts_init, first row, end row)."""

    # DeltaColumns' lists (actions .. size_raws), or the arrays they unpack from where the run
    # read them from the catalog (what goes to a worker: pickled at a fraction of the lists' cost)
    columns: tuple[list, list, list, list, list, list] | PackedColumns
    stream: list[tuple[int, int, float | int, int]]


TRADE, BATCH = 0, 1
RESULT_TIMEOUT_S = 600.0  # a worker silent this long is stuck (a chunk takes it well under a second)


def plain_chunk(batches: list[OrderBookDeltas], trades: list[TradeTick], columns: DeltaColumns | None,
                packed: bool = False) -> PlainChunk:
    """A chunk's `PlainChunk`, from its batches and trades and, where the run has them, its delta
    columns (decoded from the batches' objects otherwise). With `packed`, the columns go as the
    arrays they were read from where there are any (for another process: cheaper to send); in this
    process the lists already unpacked from them serve."""
    spans = [columns.span(batch) for batch in batches] if columns is not None else None
    if spans is None or None in spans:
        columns = DeltaColumns.of_batches(batches)
        spans = [columns.span(batch) for batch in batches]
    # merge_stream's order (by time; at equal times a block's prints before its batch), merged
    # in one pass: both lists are in time order.
    prints = [(TRADE, t.ts_init, t.size.as_double(), int(t.aggressor_side)) for t in trades]
    stream, j, n = [], 0, len(prints)
    for batch, (start, end) in zip(batches, spans, strict=True):
        ts = batch.ts_init
        while j < n and prints[j][1] <= ts:
            stream.append(prints[j])
            j += 1
        stream.append((BATCH, ts, start, end))
    stream += prints[j:]
    if packed and columns.packed is not None:
        return PlainChunk(columns.packed, stream)
    cols = (columns.actions, columns.sides, columns.raws, columns.prices, columns.sizes, columns.size_raws)
    return PlainChunk(cols, stream)


class SignalPrecompute:
    """The online actor's features and signal over a tape, fed one chunk at a time, in order."""

    def __init__(self, instrument_id: InstrumentId, engine: SignalEngine) -> None:
        self.instrument_id = instrument_id
        self.engine = engine
        self.features = OnlineFeatures()
        self.book = BookLevels()  # the features' top levels, without copying a deep book per batch

    def rows(self, chunk: PlainChunk) -> list[tuple | None]:
        """One entry per book batch of the chunk, in order: its signal's values (`SignalData`'s
        fields up to `fallback`), or None where the book gave no row."""
        packed = chunk.columns
        cols = DeltaColumns.of_packed(packed) if isinstance(packed, PackedColumns) else DeltaColumns(*packed)
        features, book = self.features, self.book
        rows: list[tuple[int, np.ndarray | None]] = []
        for kind, ts, a, b in chunk.stream:
            if kind == TRADE:
                features.on_print(ts, a, b)
                continue
            book.apply_span(cols, a, b)
            rows.append((ts, features.on_book(ts, book)))
        scored = [x for _, x in rows if x is not None]
        if not scored:
            return [None] * len(rows)
        # The model is asked once for the whole chunk (loaded first where the first row would
        # load it); each row then goes through the engine's breaker and fallback in order.
        model = self.engine.ready(next(ts for ts, x in rows if x is not None))
        precomputed = iter(())
        if model is not None:
            t0 = time.perf_counter_ns()
            probs = model.predict_many(np.vstack(scored))
            each_us = (time.perf_counter_ns() - t0) / 1_000 / len(scored)  # measured, spread over the rows
            precomputed = iter([(p, each_us) for p in probs])
        out: list[tuple | None] = []
        for ts, x in rows:
            if x is None:
                out.append(None)
                continue
            o = self.engine.evaluate(x, ts, next(precomputed, None))
            p = o.probs
            out.append((float(p[0]), float(p[1]), float(p[2]), o.expected_move_bps, o.confidence, o.horizon_s,
                        o.model_id, o.latency_us, o.fallback))
        return out


class _LogLines:
    """The worker's stand-in for a logger: its lines go back to the run's log with the next chunk."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))


def _serve(precompute: SignalPrecompute, conn, run_end) -> None:
    """The worker process: chunks in, rows out, until the run closes the pipe or sends None."""
    # The fork copied the run's end of the pipe too: closed here, the run's exit (however it
    # ends) is an end of file to this process, which then exits instead of waiting forever.
    run_end.close()
    log = precompute.engine.log = _LogLines()
    try:
        while (chunk := conn.recv()) is not None:
            rows = precompute.rows(chunk)
            conn.send(("rows", rows, log.lines))
            log.lines = []
        engine = precompute.engine
        conn.send(("done", engine.stats, engine.latencies_us, engine.open_until_ns, engine.slow_streak))
    except (EOFError, BrokenPipeError):
        pass  # the run went away
    except BaseException:  # the run must hear why, whatever it was
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass  # ...unless it is gone
    finally:
        conn.close()


class PrecomputeWorker:
    """A `SignalPrecompute` in a forked process, working a chunk ahead of the engine on the other
    core: the run sends it chunk k+1 before the engine runs chunk k, and collects its rows just
    before the engine needs them. The rows are what the precompute computes in the run's own
    process (the same code on the same values, and a forked copy of the same loaded model)."""

    def __init__(self, precompute: SignalPrecompute) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(precompute, child, self._conn), name="flashmm-signal",
                                        daemon=True)
        self._process.start()
        child.close()
        self._engine = precompute.engine
        self._sent = 0

    def submit(self, chunk: PlainChunk) -> None:
        try:
            self._conn.send(chunk)
        except OSError as exc:  # BrokenPipeError: nobody reads the other end any more
            raise self._died() from exc
        self._sent += 1

    def collect(self) -> list[tuple | None]:
        """The rows of the oldest chunk submitted and not yet collected."""
        if self._sent == 0:
            raise RuntimeError("signal worker: no chunk submitted to collect")
        message = self._receive()
        if message[0] != "rows":
            raise RuntimeError(f"signal worker: expected a chunk's rows, got {message[0]!r}")
        self._sent -= 1
        if self._engine.log is not None:
            for level, line in message[2]:
                getattr(self._engine.log, level)(line)
        return message[1]

    def close(self) -> None:
        """Stop the worker after its last chunk and take its engine's state (stats, latencies,
        breaker) into the run's engine, whose summary the run reports."""
        if self._sent:
            raise RuntimeError(f"signal worker: closed with {self._sent} chunk(s) not collected")
        try:
            self._conn.send(None)
        except OSError as exc:
            raise self._died() from exc
        _, stats, latencies, open_until_ns, slow_streak = self._receive()
        engine = self._engine
        engine.stats, engine.latencies_us, engine.open_until_ns, engine.slow_streak = (
            stats, latencies, open_until_ns, slow_streak)
        self.terminate()

    def terminate(self, wait_s: float = 5.0) -> None:
        """Stop the process, done or not (idempotent): it exits by itself once the pipe closes;
        after `wait_s` it is killed."""
        self._conn.close()
        self._process.join(timeout=wait_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _receive(self) -> tuple:
        try:
            if not self._conn.poll(RESULT_TIMEOUT_S):
                self.terminate(wait_s=0.0)
                raise RuntimeError(f"signal worker (pid {self._process.pid}) sent nothing for {RESULT_TIMEOUT_S:g} s "
                                   "(a chunk takes it well under a second): stopped")
            message = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        if message[0] == "error":
            raise RuntimeError(f"signal worker failed:\n{message[1]}")
        return message

    def _died(self) -> RuntimeError:
        self._process.join(timeout=5)
        return RuntimeError(f"signal worker (pid {self._process.pid}) died (exit code {self._process.exitcode}) "
                            "before sending its result")


def can_fork_worker() -> bool:
    """Whether a run may fork a signal worker here: Linux, a second core to run it on, and a
    process allowed children (a daemon process may not have any). Sweeps turn the worker off
    for their points themselves: they already run a point per core."""
    return (sys.platform.startswith("linux")  # fork after torch or NautilusTrader is unsafe on macOS
            and len(os.sched_getaffinity(0)) >= 2  # the cores this process may run on
            and not multiprocessing.current_process().daemon)


class SignalReplayActorConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId


class SignalReplayActor(Actor):
    """Publishes the precomputed signal of each book batch when the engine dispatches it: the same
    moment, and the same position before the strategy, as the online `SignalActor`.

    The run hands it each chunk twice: `prepare` as soon as the chunk is read from the tape (a
    chunk ahead of the engine), `deliver` just before the engine gets it. With a worker
    (`start_worker`) the signal is computed in the worker between the two; without, at `deliver`.
    """

    def __init__(self, config: SignalReplayActorConfig, precompute: SignalPrecompute) -> None:
        super().__init__(config)
        self.precompute = precompute
        self.engine = precompute.engine  # its stats are the run's signal summary
        self.pending: deque[SignalData | None] = deque()
        self.data_type = DataType(SignalData)
        self.worker: PrecomputeWorker | None = None
        self._prepared: deque[PlainChunk] = deque()
        # Who keeps a record of what this actor publishes (a backtest's recorder): handed each
        # chunk's signal rows at `deliver`, in publication order, instead of subscribing to them.
        self.on_rows: Callable[[list[tuple]], None] | None = None

    def start_worker(self) -> bool:
        """Compute the signal in a forked worker, if the model is one the worker can run without
        torch (FlashMM's exported models: models/kernel.py) and this process may fork one.
        Returns whether it did; otherwise the signal is computed in this process."""
        if self.worker is None and can_fork_worker() and self.engine.preload() and self.engine.model.kernel:
            self.worker = PrecomputeWorker(self.precompute)
        return self.worker is not None

    def prepare(self, batches: list[OrderBookDeltas], trades: list[TradeTick], columns: DeltaColumns | None) -> None:
        """A chunk read from the tape, in tape order, ahead of the engine."""
        chunk = plain_chunk(batches, trades, columns, packed=self.worker is not None)
        if self.worker is not None:
            self.worker.submit(chunk)
        else:
            self._prepared.append(chunk)

    def deliver(self, batches: list[OrderBookDeltas]) -> None:
        """The oldest prepared chunk's signal, ready for the engine's run of `batches`."""
        rows = self.worker.collect() if self.worker is not None else self.precompute.rows(self._prepared.popleft())
        if len(rows) != len(batches):
            raise RuntimeError(f"precomputed {len(rows)} signals for a chunk of {len(batches)} book batches")
        iid = self.precompute.instrument_id
        signals = [None if row is None else SignalData(iid, *row, batch.ts_event, batch.ts_init)
                   for row, batch in zip(rows, batches, strict=True)]
        self.pending.extend(signals)
        if self.on_rows is not None:  # the rows of the signals published for this chunk, in order
            self.on_rows([data.row() for data in signals if data is not None])

    def finish(self) -> None:
        """The tape has ended: stop the worker, taking its engine's state into `engine`."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            try:
                worker.close()
            finally:
                worker.terminate()

    def abandon(self) -> None:
        """The run failed: stop the worker without waiting for its state."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.terminate()

    def on_start(self) -> None:
        self.engine.log = self.log
        self.subscribe_order_book_deltas(self.precompute.instrument_id, book_type=BookType.L2_MBP)

    def on_order_book_deltas(self, deltas) -> None:
        if not self.pending:
            raise RuntimeError(f"no precomputed signal for the book batch at {deltas.ts_init}: fed out of step")
        data = self.pending.popleft()
        if data is None:
            return
        if data.ts_init != deltas.ts_init:
            raise RuntimeError(f"precomputed signal for {data.ts_init} met the book batch at {deltas.ts_init}")
        self.publish_data(self.data_type, data)
