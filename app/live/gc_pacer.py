"""Garbage collection between reactions, not inside them.

CPython collects when allocations pass a threshold, that is, in the middle of whatever allocates,
and a book update's reaction is the node's busiest allocator. Traced on the local Monaco (the
sample, signal on, 120 s): a gen-0 collection took 0.07 ms (p50), a gen-1 0.8 ms (up to 2.2 ms,
the tail of that session's tick-to-order) and a gen-2 62-111 ms, five times (start-up included),
because a full collection walks every object the process holds: torch, NautilusTrader, every module.

The pacer freezes what exists when the node starts trading (`gc.freeze`: moved to a permanent
generation that collections never walk again), turns the automatic collector off and collects
from a loop timer instead, the generations CPython would have: gen 0 once its allocation count
passes the threshold, gen 1 every `threshold1`-th gen 0, a full collection every `threshold2`-th
gen 1. A frame that arrives during a collection waits for it, as it would for any callback; a
reaction no longer contains one. `stop` unfreezes and hands collection back to CPython.
"""

from __future__ import annotations

import asyncio
import gc

TICK_S = 0.05  # how often the pacer looks: a gen-0 threshold's worth of allocations takes ~0.2 s here


class GcPacer:
    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float = TICK_S) -> None:
        self._loop = loop
        self._tick_s = tick_s
        self._handle: asyncio.TimerHandle | None = None
        self.collections = [0, 0, 0]  # by generation

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self._handle = self._loop.call_later(self._tick_s, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        gc.unfreeze()
        gc.enable()

    def _tick(self) -> None:
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()  # a collection of gen g zeroes the counts below it and adds one to g + 1's
        generation = 2 if c2 >= t2 else 1 if c1 >= t1 else 0 if c0 >= t0 else None
        if generation is not None:
            gc.collect(generation)
            self.collections[generation] += 1
        self._handle = self._loop.call_later(self._tick_s, self._tick)
