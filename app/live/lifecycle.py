"""Running a TradingNode until SIGINT/SIGTERM or a deadline, then stopping it gracefully."""

from __future__ import annotations

import asyncio
import signal

from nautilus_trader.live.node import TradingNode

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_stopped(node: TradingNode, duration_secs: float) -> bool:
    """Run `node`; returns whether every client had connected by the time the stop came."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if duration_secs > 0:
        loop.call_later(duration_secs, stop.set)
    runner = loop.create_task(node.run_async())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    kernel = node.kernel
    connected = kernel.data_engine.check_connected() and kernel.exec_engine.check_connected()
    await node.stop_async()
    stopper.cancel()
    try:
        await asyncio.wait_for(runner, timeout=10)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        runner.cancel()
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)
    return connected
