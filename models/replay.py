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
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import DataType, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from data.catalog import merge_stream
from data.levels import BookLevels, ColumnFeed
from models.features import OnlineFeatures
from models.runtime import SignalEngine
from models.signal_data import SignalData


class SignalPrecompute:
    """The online actor's features and signal over a tape, fed one chunk at a time, in order."""

    def __init__(self, instrument_id: InstrumentId, engine: SignalEngine, feed: ColumnFeed | None = None) -> None:
        self.instrument_id = instrument_id
        self.engine = engine
        self.features = OnlineFeatures()
        self.book = BookLevels(feed)  # the features' top levels, without copying a deep book per batch

    def chunk(self, batches: list[OrderBookDeltas], trades: list[TradeTick]) -> list[SignalData | None]:
        """One entry per book batch, in order: its signal, or None where the book gave no row."""
        rows: list[tuple[OrderBookDeltas, np.ndarray | None]] = []
        for item in merge_stream(batches, trades):  # the engine's order: a batch's prints first
            if isinstance(item, TradeTick):
                self.features.on_trade(item)
                continue
            self.book.apply_deltas(item)
            rows.append((item, self.features.on_book(item.ts_init, self.book)))
        scored = [(batch, x) for batch, x in rows if x is not None]
        if not scored:
            return [None] * len(rows)
        # The model is asked once for the whole chunk (loaded first where the first row would
        # load it); each row then goes through the engine's breaker and fallback in order.
        model = self.engine.ready(scored[0][0].ts_init)
        precomputed = iter(())
        if model is not None:
            t0 = time.perf_counter_ns()
            probs = model.predict_many(np.vstack([x for _, x in scored]))
            each_us = (time.perf_counter_ns() - t0) / 1_000 / len(scored)  # measured, spread over the rows
            precomputed = iter([(p, each_us) for p in probs])
        out: list[SignalData | None] = []
        for batch, x in rows:
            if x is None:
                out.append(None)
                continue
            output = self.engine.evaluate(x, batch.ts_init, next(precomputed, None))
            out.append(SignalData.from_output(self.instrument_id, output, batch))
        return out


class SignalReplayActorConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId


class SignalReplayActor(Actor):
    """Publishes the precomputed signal of each book batch when the engine dispatches it: the same
    moment, and the same position before the strategy, as the online `SignalActor`."""

    def __init__(self, config: SignalReplayActorConfig, precompute: SignalPrecompute) -> None:
        super().__init__(config)
        self.precompute = precompute
        self.engine = precompute.engine  # its stats are the run's signal summary
        self.pending: deque[SignalData | None] = deque()
        self.data_type = DataType(SignalData)

    def feed(self, batches: list[OrderBookDeltas], trades: list[TradeTick]) -> None:
        """Compute the next chunk's signal; call it just before the engine gets that chunk."""
        self.pending.extend(self.precompute.chunk(batches, trades))

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
