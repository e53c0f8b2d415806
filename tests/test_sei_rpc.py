"""CometRpc against a scripted CometBFT 0.35 websocket server on a real socket: request/response
matching, error answers, timeouts, the subscription limit, reconnection with resubscription, and a
reader that survives any junk the node sends.

`CometServer` is the test fixture (not a stand-in for our code): it speaks CometBFT's wire format,
pushes events with the id of the subscribe call as CometBFT does, and enforces CometBFT's
per-client subscription rules. test_sei_feed.py builds a chain on top of it."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.sei.rpc import PARSE_ERROR, CometRpc, RpcError, Subscription, SubscriptionError, backoff_delay

Handler = Callable[[dict], Awaitable[dict]]
TEST_TIMEOUT_S = 10.0


class ServerError(Exception):
    """Raised by a handler to answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class CometServer:
    """A CometBFT-like JSON-RPC websocket endpoint whose methods and pushes the test scripts."""

    def __init__(self, *, max_subscriptions: int = 5) -> None:
        self.max_subscriptions = max_subscriptions
        self.handlers: dict[str, Handler] = {"health": _empty}
        self.requests: list[tuple[str, Any, Any]] = []  # (method, id, params) in arrival order
        self.subscriptions: dict[ServerConnection, dict[str, Any]] = {}  # connection -> query -> id
        self.accepting = True
        self.refuse_subscribes = 0  # answer this many subscribe calls with an error
        self.url = ""
        self._server = None
        self._answering: set[asyncio.Task] = set()

    async def __aenter__(self) -> CometServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, process_request=self._admit)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/websocket"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.drop()
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._answering):
            task.cancel()

    def _admit(self, connection: ServerConnection, request: Any):
        if not self.accepting:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "node restarting\n")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        self.subscriptions[ws] = {}
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    parse_error = {"code": -32700, "message": "Parse error"}
                    await self._reply(ws, {"jsonrpc": "2.0", "id": None, "error": parse_error})
                    continue
                # Each request on its own task, so a slow method does not hold the others back.
                task = asyncio.get_running_loop().create_task(self._answer(ws, msg))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
        except ConnectionClosed:
            pass
        finally:
            self.subscriptions.pop(ws, None)

    async def _answer(self, ws: ServerConnection, msg: dict) -> None:
        method, ident, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        self.requests.append((method, ident, params))
        subs = self.subscriptions.get(ws)
        if subs is None:
            return
        try:
            if method == "subscribe":
                query = params["query"]
                if self.refuse_subscribes > 0:
                    self.refuse_subscribes -= 1
                    raise ServerError(-32603, "Internal error", "event bus is not running")
                if query in subs:
                    raise ServerError(-32603, "Internal error", "already subscribed")
                if len(subs) >= self.max_subscriptions:
                    limit = f"max_subscriptions_per_client {self.max_subscriptions} reached"
                    raise ServerError(-32603, "Internal error", limit)
                subs[query] = ident
                result: dict = {}
            elif method == "unsubscribe":
                if subs.pop(params["query"], None) is None:
                    raise ServerError(-32603, "Internal error", "subscription not found")
                result = {}
            elif method in self.handlers:
                result = await self.handlers[method](params)
            else:
                raise ServerError(-32601, "Method not found")
        except ServerError as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            await self._reply(ws, {"jsonrpc": "2.0", "id": ident, "error": error})
            return
        await self._reply(ws, {"jsonrpc": "2.0", "id": ident, "result": result})

    async def _reply(self, ws: ServerConnection, msg: dict) -> None:
        try:
            await ws.send(json.dumps(msg))
        except ConnectionClosed:
            pass

    def subscribers(self, query: str) -> list[tuple[ServerConnection, Any]]:
        return [(ws, subs[query]) for ws, subs in self.subscriptions.items() if query in subs]

    @staticmethod
    def push_message(query: str, data: dict, ident: Any, events: dict | None = None) -> dict:
        return {"jsonrpc": "2.0", "id": ident, "result": {"query": query, "data": data, "events": events or {}}}

    async def publish(self, data: dict, events: dict[str, list[str]]) -> int:
        """Push an event to every subscription whose query its composite events match, as
        CometBFT's event bus does; how many pushes were sent."""
        sent = 0
        for ws, subs in list(self.subscriptions.items()):
            for query, ident in list(subs.items()):
                if query_matches(query, events):
                    await self._reply(ws, self.push_message(query, data, ident, events))
                    sent += 1
        return sent

    async def push(self, query: str, data: dict, events: dict | None = None) -> int:
        """Send an event to every connection subscribed to `query`; how many got it."""
        targets = self.subscribers(query)
        for ws, ident in targets:
            await self._reply(ws, self.push_message(query, data, ident, events))
        return len(targets)

    async def send_raw(self, message: str | bytes) -> None:
        for ws in list(self.subscriptions):
            try:
                await ws.send(message)
            except ConnectionClosed:
                pass

    def drop(self) -> None:
        """Cut every connection at the TCP level (no close frame), as a crashed node would."""
        for ws in list(self.subscriptions):
            ws.transport.abort()
        self.subscriptions.clear()

    def subscribe_ids(self) -> list[Any]:
        return [ident for method, ident, _ in self.requests if method == "subscribe"]


def query_matches(query: str, events: dict[str, list[str]]) -> bool:
    """CometBFT's query subset the localnet supports: `key='value'` (or `key=number`) conditions
    joined by AND, each met when the key has that value among the events."""
    for condition in query.split(" AND "):
        key, _, value = condition.partition("=")
        if value.strip().strip("'") not in events.get(key.strip(), []):
            return False
    return True


async def _empty(params: dict) -> dict:
    return {}


async def _hang(params: dict) -> dict:
    await asyncio.Event().wait()
    return {}


def run(coro) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT_S))


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def next_event(sub: Subscription, timeout: float = 2.0) -> dict:
    return await asyncio.wait_for(anext(sub), timeout)


def fast_client(url: str, **kwargs: Any) -> CometRpc:
    options = {"request_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05, "seed": 7}
    options.update(kwargs)
    return CometRpc(url, **options)


# ---- calls -----------------------------------------------------------------------------------


def test_concurrent_calls_get_their_own_answers_when_answered_out_of_order():
    async def scenario():
        async with CometServer() as server:
            async def echo(params: dict) -> dict:
                await asyncio.sleep(params["delay"])
                return {"tag": params["tag"]}

            server.handlers["echo"] = echo
            rpc = fast_client(server.url)
            await rpc.connect()
            rng = random.Random(3)
            delays = [rng.uniform(0.0, 0.05) for _ in range(30)]
            answers = await asyncio.gather(*(rpc.call("echo", {"tag": i, "delay": d}) for i, d in enumerate(delays)))
            assert answers == [{"tag": i} for i in range(30)]
            ids = [ident for method, ident, _ in server.requests if method == "echo"]
            assert len(set(ids)) == 30 and all(type(i) is int for i in ids)
            assert rpc.malformed == 0
            await rpc.close()

    run(scenario())


def test_error_answers_become_rpc_errors_with_code_message_and_data():
    async def scenario():
        async with CometServer() as server:
            async def block(params: dict) -> dict:
                too_high = f"height {params['height']} must be less than or equal to the current blockchain height 5"
                raise ServerError(-32603, "Internal error", too_high)

            server.handlers["block"] = block
            rpc = fast_client(server.url)
            await rpc.connect()
            with pytest.raises(RpcError) as info:
                await rpc.call("block", {"height": "9"})
            assert (info.value.code, info.value.message, info.value.method) == (-32603, "Internal error", "block")
            assert info.value.data == "height 9 must be less than or equal to the current blockchain height 5"
            assert "block" in str(info.value) and "height 9" in str(info.value)
            with pytest.raises(RpcError) as info:
                await rpc.call("no_such_method", {})
            assert (info.value.code, info.value.message, info.value.data) == (-32601, "Method not found", None)
            assert rpc.connected and rpc.malformed == 0
            await rpc.close()

    run(scenario())


def test_an_unreadable_answer_fails_its_call_at_once_and_is_counted():
    async def scenario():
        async with CometServer() as server:
            server.handlers["weird"] = _hang
            rpc = fast_client(server.url)
            await rpc.connect()
            call = asyncio.ensure_future(rpc.call("weird", {}))
            await eventually(lambda: any(m == "weird" for m, _, _ in server.requests), "the request")
            ident = server.requests[-1][1]
            await server.send_raw(json.dumps({"jsonrpc": "2.0", "id": ident, "result": ["not", "an", "object"]}))
            with pytest.raises(RpcError) as info:
                await call
            assert info.value.code == PARSE_ERROR and info.value.method == "weird"
            assert rpc.malformed == 1
            assert await rpc.call("health", {}) == {}
            await rpc.close()

    run(scenario())


def test_timeout_names_the_method_and_a_late_answer_is_not_junk():
    async def scenario():
        async with CometServer() as server:
            release = asyncio.Event()

            async def slow(params: dict) -> dict:
                await release.wait()
                return {"late": True}

            server.handlers["slow"] = slow
            rpc = fast_client(server.url, request_timeout=0.1)
            await rpc.connect()
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimeoutError, match="slow: no answer from .* within 0.1 s"):
                await rpc.call("slow", {})
            assert 0.09 <= asyncio.get_running_loop().time() - started < 1.0
            release.set()
            await asyncio.sleep(0.05)  # the late answer arrives and is dropped quietly
            assert rpc.malformed == 0 and rpc.connected
            assert await rpc.call("health", {}) == {}
            await rpc.close()

    run(scenario())


def test_first_connect_failure_names_the_url():
    async def scenario():
        async with CometServer() as server:
            url = server.url
        rpc = CometRpc(url)
        with pytest.raises(ConnectionError, match=f"cannot connect to {url}"):
            await rpc.connect()
        with pytest.raises(ConnectionError, match="not connected"):
            await rpc.call("status", {})

    run(scenario())


def test_bad_arguments_are_refused_naming_what_is_wrong():
    with pytest.raises(ValueError, match="ws:// or wss://"):
        CometRpc("http://localhost:26657")
    with pytest.raises(ValueError, match="request_timeout"):
        CometRpc("ws://x/websocket", request_timeout=0)
    with pytest.raises(ValueError, match="backoff_initial <= backoff_max"):
        CometRpc("ws://x/websocket", backoff_initial=2, backoff_max=1)
    with pytest.raises(ValueError, match="max_subscriptions"):
        CometRpc("ws://x/websocket", max_subscriptions=0)


# ---- subscriptions ---------------------------------------------------------------------------


def test_events_are_routed_by_subscribe_id_then_by_query():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            blocks = await rpc.subscribe("tm.event='NewBlock'")
            txs = await rpc.subscribe("tm.event='Tx'")
            assert await server.push("tm.event='Tx'", {"type": "tendermint/event/Tx", "value": {"n": 1}}) == 1
            assert await server.push("tm.event='NewBlock'",
                                     {"type": "tendermint/event/NewBlock", "value": {"n": 2}}) == 1
            assert (await next_event(txs))["value"] == {"n": 1}
            assert (await next_event(blocks))["value"] == {"n": 2}
            # The id wins over the query: CometBFT routes by the subscribe call's id.
            tx_id = server.subscriptions[next(iter(server.subscriptions))]["tm.event='Tx'"]
            await server.send_raw(json.dumps(server.push_message("tm.event='NewBlock'", {"value": 3}, tx_id)))
            assert (await next_event(txs))["value"] == 3
            # An unknown id falls back to the query.
            await server.send_raw(json.dumps(server.push_message("tm.event='NewBlock'", {"value": 4}, "other-id")))
            assert (await next_event(blocks))["value"] == 4
            # Neither: junk.
            await server.send_raw(json.dumps(server.push_message("tm.event='Vote'", {"value": 5}, 999)))
            await eventually(lambda: rpc.malformed == 1, "the unroutable event to be counted")
            await rpc.close()

    run(scenario())


def test_sixth_subscription_is_refused_before_anything_is_sent():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            queries = [f"tm.event='Tx' AND tx.height={h}" for h in range(1, 6)]
            subs = [await rpc.subscribe(q) for q in queries]
            with pytest.raises(SubscriptionError,
                               match=r"at most 5 subscriptions .*max_subscriptions_per_client") as info:
                await rpc.subscribe("tm.event='NewBlock'")
            assert "tm.event='NewBlock'" in str(info.value) and queries[0] in str(info.value)
            with pytest.raises(SubscriptionError, match="already subscribed"):
                await rpc.subscribe(queries[0])
            assert len(server.subscribe_ids()) == 5
            # Unsubscribing frees the slot on both ends.
            await subs[0].unsubscribe()
            assert await anext(subs[0], "ended") == "ended"
            await rpc.subscribe("tm.event='NewBlock'")
            assert len(server.subscribe_ids()) == 6 and len(next(iter(server.subscriptions.values()))) == 5
            await rpc.close()

    run(scenario())


def test_a_subscription_the_node_refuses_raises_and_takes_no_slot():
    async def scenario():
        async with CometServer(max_subscriptions=1) as server:
            rpc = fast_client(server.url, max_subscriptions=2)
            await rpc.connect()
            await rpc.subscribe("tm.event='NewBlock'")
            with pytest.raises(RpcError, match="max_subscriptions_per_client 1 reached"):
                await rpc.subscribe("tm.event='Tx'")
            # Had the refused query kept its slot, this would fail locally with SubscriptionError.
            with pytest.raises(RpcError, match="max_subscriptions_per_client 1 reached"):
                await rpc.subscribe("tm.event='Vote'")
            await rpc.close()

    run(scenario())


# ---- reconnection and close ------------------------------------------------------------------


def test_reconnect_fails_calls_in_flight_resubscribes_then_runs_callbacks():
    async def scenario():
        async with CometServer() as server:
            server.handlers["hang"] = _hang
            rpc = fast_client(server.url)
            await rpc.connect()
            blocks = await rpc.subscribe("tm.event='NewBlock'")
            txs = await rpc.subscribe("tm.event='Tx'")
            first_ids = server.subscribe_ids()
            seen_at_callback: list[set[str]] = []

            async def callback() -> None:
                # Runs only once the node holds both queries again on the new connection.
                seen_at_callback.append({q for subs in server.subscriptions.values() for q in subs})

            rpc.on_reconnect(callback)
            in_flight = asyncio.ensure_future(rpc.call("hang", {}))
            await eventually(lambda: any(m == "hang" for m, _, _ in server.requests), "the hanging request")
            server.accepting = False
            server.drop()
            with pytest.raises(ConnectionError, match="hang: connection to .* lost"):
                await in_flight
            await eventually(lambda: not rpc.connected, "the client to notice")
            with pytest.raises(ConnectionError, match="not connected"):
                await rpc.call("health", {})
            await asyncio.sleep(0.1)  # several refused attempts
            assert rpc.reconnects == 0
            server.accepting = True
            await eventually(lambda: seen_at_callback != [], "the on_reconnect callback")
            assert seen_at_callback == [{"tm.event='NewBlock'", "tm.event='Tx'"}]
            assert rpc.connected and rpc.reconnects == 1
            new_ids = server.subscribe_ids()[2:]
            assert len(new_ids) == 2 and not set(new_ids) & set(first_ids)
            # The same iterators carry the resumed stream.
            await server.push("tm.event='Tx'", {"value": "after"})
            await server.push("tm.event='NewBlock'", {"value": "after"})
            assert (await next_event(txs))["value"] == "after"
            assert (await next_event(blocks))["value"] == "after"
            assert await rpc.call("health", {}) == {}
            await rpc.close()

    run(scenario())


def test_a_refused_resubscription_reconnects_again_and_a_failing_callback_hurts_no_other():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            sub = await rpc.subscribe("tm.event='NewBlock'")
            ran: list[str] = []

            async def broken() -> None:
                ran.append("broken")
                raise RuntimeError("callback bug")

            async def good() -> None:
                ran.append("good")

            rpc.on_reconnect(broken)
            rpc.on_reconnect(good)
            server.refuse_subscribes = 1
            server.drop()
            await eventually(lambda: ran == ["broken", "good"], "the callbacks")
            # The first reconnection could not resume the subscription, so it was abandoned.
            assert rpc.reconnects == 2 and len(server.subscribe_ids()) == 3
            await server.push("tm.event='NewBlock'", {"value": 1})
            assert (await next_event(sub))["value"] == 1
            await asyncio.sleep(0.05)
            assert ran == ["broken", "good"] and rpc.connected
            await rpc.close()

    run(scenario())


def test_a_clean_close_by_the_node_also_reconnects():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            sub = await rpc.subscribe("tm.event='NewBlock'")
            for ws in list(server.subscriptions):
                await ws.close()
            def resubscribed() -> bool:
                return rpc.reconnects == 1 and len(server.subscribers("tm.event='NewBlock'")) == 1

            await eventually(resubscribed, "resubscription")
            await server.push("tm.event='NewBlock'", {"value": 1})
            assert (await next_event(sub))["value"] == 1
            await rpc.close()

    run(scenario())


def test_close_is_idempotent_ends_iterators_and_fails_calls_even_while_reconnecting():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url, backoff_initial=0.05, backoff_max=0.2)
            await rpc.connect()
            sub = await rpc.subscribe("tm.event='NewBlock'")
            waiting = asyncio.ensure_future(anext(sub, "ended"))
            server.accepting = False
            server.drop()
            await eventually(lambda: not rpc.connected, "the drop")
            await rpc.close()
            await rpc.close()
            assert await asyncio.wait_for(waiting, 1) == "ended"
            assert await anext(sub, "ended") == "ended"
            assert rpc.closed and not rpc.connected
            with pytest.raises(ConnectionError, match="closed"):
                await rpc.call("health", {})
            with pytest.raises(ConnectionError, match="closed"):
                await rpc.subscribe("tm.event='Tx'")

    run(scenario())


def test_close_fails_a_call_in_flight():
    async def scenario():
        async with CometServer() as server:
            server.handlers["hang"] = _hang
            rpc = fast_client(server.url)
            await rpc.connect()
            call = asyncio.ensure_future(rpc.call("hang", {}))
            await eventually(lambda: any(m == "hang" for m, _, _ in server.requests), "the request")
            await rpc.close()
            with pytest.raises(ConnectionError, match="hang: client for .* closed"):
                await call

    run(scenario())


def test_backoff_grows_to_the_cap_with_seeded_jitter():
    delays = [backoff_delay(a, 0.1, 5.0, random.Random(42)) for a in range(12)]
    rng = random.Random(42)
    sequence = [backoff_delay(a, 0.1, 5.0, rng) for a in range(12)]
    rng_again = random.Random(42)
    assert sequence == [backoff_delay(a, 0.1, 5.0, rng_again) for a in range(12)]
    for attempt, delay in enumerate(sequence):
        base = min(5.0, 0.1 * 2**attempt)
        assert base / 2 <= delay < base
    assert sequence != [backoff_delay(a, 0.1, 5.0, random.Random(43)) for a in range(12)]
    # Same draw, growing base: the wait grows until the cap.
    assert delays == sorted(delays) and delays[-1] == delays[-2]
    assert backoff_delay(10_000, 0.1, 5.0, random.Random(0)) < 5.0


# ---- junk ------------------------------------------------------------------------------------

QUERY = "tm.event='NewBlock'"
REAL_EVENT = {"type": "tendermint/event/NewBlock", "value": {"block": {"header": {"height": "5"}}}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _leaf_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            paths += _leaf_paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            paths += _leaf_paths(value, prefix + (i,))
    return paths


def _replace(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = list(obj) if isinstance(obj, list) else dict(obj)
    copy[path[0]] = _replace(obj[path[0]], path[1:], value)
    return copy


def _real_push(ident: int) -> dict:
    return CometServer.push_message(QUERY, REAL_EVENT, ident, {"tm.event": ["NewBlock"]})


@st.composite
def junk_messages(draw) -> str | bytes:
    kind = draw(st.sampled_from(["json", "text", "bytes", "truncated", "retyped"]))
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    real = json.dumps(_real_push(1))
    if kind == "truncated":
        return real[: draw(st.integers(0, len(real) - 1))]
    path = draw(st.sampled_from(_leaf_paths(_real_push(1))))
    return json.dumps(_replace(_real_push(1), path, draw(json_values)))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(junk_messages(), min_size=1, max_size=8))
def test_junk_never_kills_the_reader_and_is_either_counted_or_delivered(junk):
    """Every junk message is skipped and counted, or (when it still is an event of the live
    subscription) delivered as one, never both, and the connection keeps working."""
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            sub = await rpc.subscribe(QUERY)
            for message in junk:
                await server.send_raw(message)
            await server.push(QUERY, {"marker": True})
            delivered = []
            while (event := await next_event(sub)) != {"marker": True}:
                delivered.append(event)
            assert all(isinstance(event, dict) for event in delivered)
            assert rpc.malformed + len(delivered) == len(junk)
            assert rpc.connected and rpc.reconnects == 0
            assert await rpc.call("health", {}) == {}
            await rpc.close()

    run(scenario())
