"""Running a TradingNode until SIGINT/SIGTERM, a deadline or a fatal fault, then stopping it gracefully.

A node that cannot see the chain must not sit there looking alive: NautilusTrader's `run_async`
keeps running with no trader when the clients never connect, and a block stream that dies leaves
the strategy quoting blind. `fatal` is polled while the node runs; once it names a reason the node
is stopped as on a signal (quotes pulled, `cancel_all` sent) and the reason is returned, so the
caller exits non-zero and the supervisor (systemd, compose) starts a node that reconciles afresh.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

from nautilus_trader.live.node import TradingNode

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WATCH_INTERVAL_S = 0.5


@dataclass(frozen=True)
class RunOutcome:
    connected: bool  # every client had connected by the time the stop came
    failure: str | None  # why the node was stopped, if it was a fault rather than a signal or the deadline


async def run_until_stopped(
    node: TradingNode, duration_secs: float, fatal: Callable[[], str | None] = lambda: None
) -> RunOutcome:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failure: list[str] = []

    async def watch() -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            reason = fatal()
            if reason is not None:
                failure.append(reason)
                stop.set()
                return

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if duration_secs > 0:
        loop.call_later(duration_secs, stop.set)
    runner = loop.create_task(node.run_async())
    stopper = loop.create_task(stop.wait())
    watcher = loop.create_task(watch())
    await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    watcher.cancel()
    kernel = node.kernel
    connected = kernel.data_engine.check_connected() and kernel.exec_engine.check_connected()
    if failure:
        kernel.logger.error(f"stopping the node: {failure[0]}")
    await node.stop_async()
    stopper.cancel()
    try:
        await asyncio.wait_for(runner, timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        runner.cancel()
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)
    return RunOutcome(connected, failure[0] if failure else None)
