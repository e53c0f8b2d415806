"""Flat memory on long runs: closed orders (and their events) leave the cache as the run goes.

NautilusTrader's cache keeps every order ever sent, with all its events, and every account state:
about 35 MB per hour of a busy tape, so a week of tape would not fit in memory. A run needs closed
orders only for the report, and the recorder takes each order's row as it closes, so a timer
purges what closed more than `buffer_secs` ago (NautilusTrader 1.221's `Cache.purge_*`).
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pandas as pd
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig


def _malloc_trim():
    """glibc's malloc_trim, where the C library has it (Linux/glibc); None elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


class CachePurgerConfig(ActorConfig, frozen=True):
    interval_secs: float = 60.0
    buffer_secs: int = 60  # keep what closed in the last minute: a late cancel-reject still finds it


class CachePurger(Actor):
    def __init__(self, config: CachePurgerConfig | None = None) -> None:
        super().__init__(config or CachePurgerConfig())
        self.purges = 0

    def on_start(self) -> None:
        self.clock.set_timer("purge", interval=pd.Timedelta(seconds=self.config.interval_secs), callback=self._purge)

    def _purge(self, event) -> None:
        now = self.clock.timestamp_ns()
        self.cache.purge_closed_orders(now, self.config.buffer_secs)
        self.cache.purge_closed_positions(now, self.config.buffer_secs)
        self.cache.purge_account_events(now, self.config.buffer_secs)
        self.purges += 1
        if _TRIM is not None and self.purges % 10 == 0:
            _TRIM(0)  # hand freed heap back to the OS: what was purged would otherwise stay resident
