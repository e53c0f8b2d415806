"""The live node's reaction path: with direct dispatch, data reaches its subscribers and order
commands reach the execution engine before `send` returns (NautilusTrader's live engines, not
stand-ins); what a frame's reaction scheduled runs before the next frame of a burst (a real
WebSocket), and the Monaco execution client's order is on the wire before the next book update of
a burst is handled (the local Monaco); garbage is collected on the pacer's timer, not on allocation."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from aiohttp import web
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.execution.messages import SubmitOrder
from nautilus_trader.live.config import LiveDataEngineConfig, LiveExecEngineConfig, LiveRiskEngineConfig
from nautilus_trader.live.data_engine import LiveDataEngine
from nautilus_trader.live.execution_engine import LiveExecutionEngine
from nautilus_trader.live.risk_engine import LiveRiskEngine
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId, TraderId
from nautilus_trader.portfolio.portfolio import Portfolio
from nautilus_trader.test_kit.stubs.commands import TestCommandStubs
from nautilus_trader.test_kit.stubs.data import TestDataStubs
from nautilus_trader.test_kit.stubs.execution import TestExecStubs

from adapters.monaco.config import MonacoExecClientConfig
from adapters.monaco.execution import MonacoExecutionClient
from adapters.monaco.local.server import MonacoLocalThread
from adapters.monaco.venue import MonacoVenue
from adapters.monaco.wire import Codec, Wire
from adapters.monaco.ws import MonacoSocket
from app.live.dispatch import dispatch_directly
from app.live.gc_pacer import GcPacer
from data.catalog import open_tape
from tests.conftest import free_port


class _Kernel:
    """The three live engines of a node, as NautilusTrader's kernel holds them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        trader_id = TraderId("TESTER-001")
        clock = LiveClock()
        self.msgbus = MessageBus(trader_id, clock)
        self.cache = Cache()
        portfolio = Portfolio(self.msgbus, self.cache, clock)
        # A failure must stop the engines, not the test process (the default is os._exit).
        self.data_engine = LiveDataEngine(loop, self.msgbus, self.cache, clock,
                                          LiveDataEngineConfig(graceful_shutdown_on_exception=True))
        # Bypassed: the submit goes straight on to the execution engine (no instrument, no account here).
        self.risk_engine = LiveRiskEngine(loop, portfolio, self.msgbus, self.cache, clock,
                                          LiveRiskEngineConfig(bypass=True, graceful_shutdown_on_exception=True))
        self.exec_engine = LiveExecutionEngine(loop, self.msgbus, self.cache, clock,
                                               LiveExecEngineConfig(graceful_shutdown_on_exception=True))

    def engines(self):
        return self.data_engine, self.risk_engine, self.exec_engine


def _submit() -> SubmitOrder:
    return TestCommandStubs.submit_order_command(TestExecStubs.limit_order())


def test_data_and_commands_are_handled_before_send_returns_and_only_while_the_engines_run():
    loop = asyncio.new_event_loop()
    try:
        direct, queued = _Kernel(loop), _Kernel(loop)
        dispatch_directly(direct)
        for kernel in (direct, queued):
            seen: list = []
            kernel.msgbus.subscribe("data.*", seen.append)
            kernel.seen = seen
        # Not running yet: the queue takes it, as without direct dispatch.
        direct.msgbus.send("DataEngine.process", TestDataStubs.trade_tick())
        assert direct.seen == [] and direct.data_engine.data_count == 0
        for kernel in (direct, queued):
            for engine in kernel.engines():
                engine.start()
        loop.run_until_complete(asyncio.sleep(0.05))  # the queued tick is processed once the engine runs
        assert len(direct.seen) == 1
        for kernel in (direct, queued):
            kernel.msgbus.send("DataEngine.process", TestDataStubs.trade_tick())
            kernel.msgbus.send("RiskEngine.execute", _submit())  # the risk engine hands it to the execution engine
        # Direct: done by the time send returned. Queued: nothing until the loop runs.
        assert len(direct.seen) == 2 and direct.risk_engine.command_count == 1
        assert direct.exec_engine.command_count == 1
        assert queued.seen == [] and queued.risk_engine.command_count == 0 and queued.exec_engine.command_count == 0
        loop.run_until_complete(asyncio.sleep(0.05))
        assert len(queued.seen) == 1 and queued.exec_engine.command_count == 1
        for kernel in (direct, queued):
            for engine in kernel.engines():
                engine.stop()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()


def test_a_failing_handler_is_handled_as_the_engines_queue_would():
    loop = asyncio.new_event_loop()
    try:
        kernel = _Kernel(loop)
        dispatch_directly(kernel)

        def boom(data) -> None:
            raise RuntimeError("strategy bug")

        kernel.msgbus.subscribe("data.*", boom)
        kernel.data_engine.start()
        kernel.msgbus.send("DataEngine.process", TestDataStubs.trade_tick())  # does not raise into the client
        assert kernel.data_engine._shutdown_initiated  # the engine's own failure path ran
        kernel.data_engine.stop()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()


def test_what_a_frames_reaction_scheduled_runs_before_the_next_frame_of_a_burst():
    """Five frames sent at once; the first frame's handler takes long enough for all five to be
    buffered. Each handler schedules work with call_soon, as the execution client starts its
    send tasks: that work runs before the next frame is handled."""
    order: list[str] = []

    async def main() -> None:
        async def ws_handler(request):
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.receive()  # the subscription
            for i in range(5):
                await ws.send_str(f'{{"n": {i}}}')
            await ws.receive()  # until the client closes
            return ws

        app = web.Application()
        app.router.add_get("/ws", ws_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        loop = asyncio.get_running_loop()

        def on_frame(text: str, received_ns: int) -> None:
            n = text[-2]
            order.append(f"frame {n}")
            if n == "0":
                time.sleep(0.05)  # the rest of the burst arrives meanwhile
            loop.call_soon(order.append, f"sent {n}")

        sock = MonacoSocket(f"ws://127.0.0.1:{port}/ws", Codec(), on_frame)
        sock.subscriptions = [{"subscribe": "book"}]
        await sock.start()
        for _ in range(100):
            if len(order) == 10:
                break
            await asyncio.sleep(0.01)
        await sock.stop()
        await runner.cleanup()

    asyncio.run(main())
    assert order == [x for i in range(5) for x in (f"frame {i}", f"sent {i}")]


def test_a_book_updates_orders_are_on_the_wire_before_the_next_update_of_a_burst_is_handled():
    """The execution client against the local Monaco, reacting as direct dispatch runs a reaction:
    inside the book update's handling. Once an order of ours rests, an update's handler holds the
    loop for two seconds, so the venue's next updates (its sample tape's 400 ms blocks) arrive
    together, as a busy venue's do, and the socket reads them in one go. Of that burst, the first
    update's reaction submits a new order and the second's only cancels the resting one. Each
    request must go out before the burst's next update is handled: not behind the next reaction,
    and the lone cancel not held for a new order to pair with (the reaction is over)."""
    events: list[str] = []
    best_bid: list = []
    orders: list = []
    marks: dict[str, int] = {}

    async def main(local: MonacoLocalThread) -> int:
        loop = asyncio.get_running_loop()
        symbol = local.pair.symbol
        venue = MonacoVenue(api_url=local.url, ws_url=local.ws_url, symbol=symbol, instrument_id=f"{symbol}.MONACO",
                            wire=Wire(), chain_id=1328, client_id="flashmm-tests", requests_per_s=100.0, burst=100,
                            timeout_s=5.0, lost_after_s=30.0)
        venue.attach_signer(local.dev, refresh_before_s=60.0)
        clock = LiveClock()
        client = MonacoExecutionClient(
            loop, venue, MessageBus(TraderId("TESTER-001"), clock), Cache(), clock, venue.provider,
            MonacoExecClientConfig(api_url=local.url, ws_url=local.ws_url, symbol=symbol,
                                   instrument_id=f"{symbol}.MONACO", chain_id=1328))
        counted = venue.rest.on_sent

        def on_sent(route: str, sent_ns: int) -> None:
            events.append(f"sent {route}")
            counted(route, sent_ns)

        venue.rest.on_sent = on_sent

        def submit() -> None:
            instrument = client._cache.instrument(venue.provider.instrument_id)
            order = TestExecStubs.limit_order(
                instrument=instrument, order_side=OrderSide.BUY, post_only=True,
                price=instrument.make_price(float(best_bid[-1]) * (0.9 - 0.01 * len(orders))),
                quantity=instrument.make_qty(100), client_order_id=ClientOrderId(f"O-TEST-{len(orders)}"))
            client._cache.add_order(order)
            orders.append(order)
            client.submit_order(TestCommandStubs.submit_order_command(order))

        def on_book(book, received_ns: int) -> None:
            events.append(book.kind)
            if book.kind == "snapshot":
                best_bid.append(book.bids[0][0])
            elif not orders:
                submit()
            elif "burst" not in marks and client._live[orders[0].client_order_id].venue_id:
                marks["burst"] = len(events) - 1
                time.sleep(2.0)  # the next updates arrive meanwhile
            elif "burst" in marks and "submit" not in marks:
                marks["submit"] = len(events) - 1
                submit()
            elif "submit" in marks and "cancel" not in marks:
                marks["cancel"] = len(events) - 1
                client.cancel_order(TestCommandStubs.cancel_order_command(order=orders[0]))

        venue.book_listeners.append(on_book)
        await client._connect()
        # Idle connections in the pool, as a node that has traded a while holds: a request that
        # must open a new one waits for the TCP handshake, and the socket reads on meanwhile.
        await asyncio.gather(*(venue.rest.call("trading_pairs", auth=False) for _ in range(3)))
        for _ in range(500):
            if "cancel" in marks and events[marks["cancel"] + 1:].count("update") >= 1:
                break
            await asyncio.sleep(0.01)
        await client._disconnect()
        return len(client.stats.tick_to_order_ns)

    with MonacoLocalThread(open_tape("data/sample")) as local:
        samples = asyncio.run(asyncio.wait_for(main(local), timeout=60))
    submit_at, cancel_at = marks["submit"], marks["cancel"]
    assert cancel_at == submit_at + 2 and events[submit_at + 1] == "sent create_order", events[submit_at - 1:]
    assert events[cancel_at:cancel_at + 3] == ["update", "sent cancel_order", "update"], events[submit_at - 1:]
    assert samples == 3  # each reaction timed as its update's: tick-to-order


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_pacer_collects_on_its_timer_what_cpython_would_and_hands_back_on_stop():
    loop = asyncio.new_event_loop()
    thresholds = gc.get_threshold()
    gc.set_threshold(100, 2, 2)
    try:
        pacer = GcPacer(loop, tick_s=0.01)
        pacer.start()
        assert not gc.isenabled() and gc.get_freeze_count() > 0  # what existed before trading is frozen
        cycle = _Cycle()
        collected = weakref.ref(cycle)
        del cycle
        junk = [[i] for i in range(1_000)]  # past the gen-0 threshold: a collection is due
        assert collected() is not None  # nothing collects on allocation any more
        loop.run_until_complete(asyncio.sleep(0.2))
        assert collected() is None  # the pacer's collection found the cycle
        assert pacer.collections[0] >= 1
        for _ in range(12):  # every 2nd gen 0 a gen 1, every 2nd gen 1 a full collection
            junk.extend([i] for i in range(1_000))  # kept: net allocations are what the count counts
            loop.run_until_complete(asyncio.sleep(0.03))
        assert pacer.collections[1] >= 1 and pacer.collections[2] >= 1
        assert pacer.collections[0] >= pacer.collections[1] >= pacer.collections[2]
        pacer.stop()
        assert gc.isenabled() and gc.get_freeze_count() == 0
        del junk
    finally:
        gc.set_threshold(*thresholds)
        gc.enable()
        gc.unfreeze()
        loop.close()
