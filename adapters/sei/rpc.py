"""A CometBFT 0.35 JSON-RPC client over one WebSocket, as Sei's nodes serve it at `/websocket`.

FlashMM needs requests (status, broadcast, queries, blocks) and event subscriptions (NewBlock, the
contract's Tx events) at the same time, with the lowest latency a public node allows. One socket
carries both: requests are matched to their responses by integer id, and CometBFT pushes each
event with the id of the `subscribe` call that asked for it, so that id routes the push to its
subscription (the push's `result.query` is the fallback for nodes that answer otherwise).

A public node is untrusted and connections drop. The reader task therefore never dies on what it
receives: anything that is not a well-formed response or event is counted in `malformed`, logged
with a short preview, and skipped. When the socket drops, calls in flight fail with
`ConnectionError` at once (their fate is unknown; the caller decides whether to retry), the client
reconnects with exponential backoff and jitter drawn from a seeded RNG (reproducible runs), sends
`subscribe` again for every live query (new ids), and only then runs the `on_reconnect` callbacks,
so a callback that backfills what was missed cannot race the resumed stream. Subscription
iterators survive reconnects and end only when the subscription or the client is closed. A node
that vanishes without closing the socket is noticed by websockets' keepalive (a ping every 20 s,
dropped after 20 s without a pong), which turns it into an ordinary connection loss.

CometBFT allows at most 5 subscriptions per client and refuses a query the client already holds;
both are checked before anything is sent, so a mistake is reported locally, naming the queries.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

log = logging.getLogger(__name__)

# CometBFT's own default for a JSON-RPC message; a Sei block with many EVM txs exceeds the 1 MiB
# that websockets accepts by default.
MAX_MESSAGE_BYTES = 64 * 2**20
# JSON-RPC's parse-error code, used for a response that arrived but cannot be read.
PARSE_ERROR = -32700
PREVIEW_CHARS = 160
# Ids of calls that timed out, remembered so their late responses are not mistaken for junk.
_LATE_IDS_KEPT = 256

Callback = Callable[[], Awaitable[None]]


class RpcError(Exception):
    """The node answered a call with a JSON-RPC error (or with a response that cannot be read,
    code `PARSE_ERROR`)."""

    def __init__(self, code: int, message: str, data: str | None = None, *, method: str = "") -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        detail = f": {data[:300]}" if data else ""
        super().__init__(f"{method or 'call'}: RPC error {code} ({message}){detail}")


class NotSentError(ConnectionError):
    """The call never left this client (closed, reconnecting, or the socket failed while sending),
    so the node cannot have acted on it; any other ConnectionError or TimeoutError of a call leaves
    its fate unknown."""


class SubscriptionError(RuntimeError):
    """A subscription CometBFT would refuse: over the per-connection limit, or a duplicate query."""


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait before reconnection attempt `attempt` (0-based): `initial * 2**attempt`
    capped at `maximum`, then scaled by a random factor in [0.5, 1) so that clients dropped
    together do not reconnect in lockstep, while the wait still grows with every failure."""
    base = min(maximum, initial * 2.0 ** min(attempt, 62))
    return base * (0.5 + 0.5 * rng.random())


class Subscription:
    """The events of one query, as an async iterator of `result["data"]` dicts
    (`{"type": ..., "value": ...}`). It ends when `unsubscribe()` or the client's `close()` is
    called; a reconnect does not end it.

    Made with a `sink` queue, it is not iterated: it puts `(subscription, data)` into the sink,
    and `(subscription, None)` when it ends. Subscriptions sharing a sink keep the order in which
    the node sent their events (NewBlock before its Tx events), which separate iterators cannot.
    """

    _END = object()

    def __init__(self, client: CometRpc, query: str, sink: asyncio.Queue | None = None) -> None:
        self.query = query
        self._client = client
        self._sink = sink
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ended = False
        # The connection generation this query is subscribed on (or being subscribed on).
        self._generation = -1

    def __aiter__(self) -> AsyncIterator[dict]:
        return self

    async def __anext__(self) -> dict:
        if self._sink is not None:
            raise TypeError(f"subscription {self.query!r} delivers into its sink and cannot be iterated")
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is self._END:
            raise StopAsyncIteration
        return item

    async def unsubscribe(self) -> None:
        """Stop this subscription and free its slot."""
        await self._client._unsubscribe(self)

    def _deliver(self, data: dict) -> None:
        if self._ended:
            return
        if self._sink is not None:
            self._sink.put_nowait((self, data))
        else:
            self._queue.put_nowait(data)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._sink is not None:
            self._sink.put_nowait((self, None))
        else:
            self._queue.put_nowait(self._END)

    def __repr__(self) -> str:
        return f"Subscription({self.query!r})"


class CometRpc:
    """One WebSocket to a CometBFT node: calls, subscriptions, reconnection.

    `connected`, `reconnects` and `malformed` (messages received and skipped) are for metrics.
    """

    def __init__(
        self,
        url: str,
        *,
        request_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_subscriptions: int = 5,
        seed: int = 0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"CometBFT websocket url must start with ws:// or wss://, got {url!r}")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout!r}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial!r} and {backoff_max!r}")
        if isinstance(max_subscriptions, bool) or not isinstance(max_subscriptions, int) or max_subscriptions < 1:
            raise ValueError(f"max_subscriptions must be a positive integer, got {max_subscriptions!r}")
        self.url = url
        self.request_timeout = request_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_subscriptions = max_subscriptions
        self.connected = False
        self.reconnects = 0
        self.malformed = 0
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._generation = 0
        self._pending: dict[int, tuple[str, asyncio.Future[dict]]] = {}
        self._late: OrderedDict[int, str] = OrderedDict()
        self._subscriptions: list[Subscription] = []
        self._by_id: dict[int, Subscription] = {}
        self._callbacks: list[Callback] = []
        self._runner: asyncio.Task[None] | None = None
        self._resume: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection; raises ConnectionError naming the url if the node cannot
        be reached (no retry: a wrong url should fail fast, not back off forever)."""
        if self._closed:
            raise ConnectionError(f"client for {self.url} is closed")
        if self._runner is not None:
            raise RuntimeError(f"client for {self.url} is already connected")
        self._ws = await self._open()
        self._generation += 1
        self.connected = True
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"comet-rpc {self.url}")
        self._runner.add_done_callback(self._runner_done)

    async def close(self) -> None:
        """End every subscription, fail calls in flight, close the socket. Safe to call twice."""
        if not self._closed:
            self._shut(f"client for {self.url} closed")
        current = asyncio.current_task()
        tasks = [t for t in (self._runner, self._resume) if t is not None and t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    def on_reconnect(self, callback: Callback) -> None:
        """Run `callback` after every reconnection, once all live queries are subscribed again.
        Callbacks run one after another; if the connection drops again meanwhile, the one running
        is cancelled and all of them run again after the next reconnection."""
        self._callbacks.append(callback)

    # -- calls -------------------------------------------------------------------------------

    async def call(self, method: str, params: dict) -> dict:
        """The `result` of `method`. Raises RpcError for an error answer, ConnectionError when
        not connected or when the connection drops before the answer, TimeoutError after
        `request_timeout` seconds."""
        if not isinstance(params, dict):
            raise TypeError(f"{method}: params must be a dict, got {type(params).__name__}")
        return await self._request(next(self._ids), method, params)

    async def _request(self, ident: int, method: str, params: dict) -> dict:
        text = json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        if self._closed:
            raise NotSentError(f"{method}: client for {self.url} is closed")
        if not self.connected or self._ws is None:
            raise NotSentError(f"{method}: not connected to {self.url} (reconnecting)")
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (method, future)
        try:
            try:
                await self._ws.send(text)
            except ConnectionClosed as exc:
                raise NotSentError(f"{method}: connection to {self.url} lost while sending") from exc
            try:
                return await asyncio.wait_for(future, self.request_timeout)
            except TimeoutError:
                raise TimeoutError(f"{method}: no answer from {self.url} within {self.request_timeout:g} s") from None
        finally:
            if self._pending.pop(ident, None) is not None:
                # Timed out or cancelled: an answer may still come and is not junk.
                self._late[ident] = method
                while len(self._late) > _LATE_IDS_KEPT:
                    self._late.popitem(last=False)

    # -- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, query: str, *, sink: asyncio.Queue | None = None) -> Subscription:
        """Subscribe to `query` (CometBFT query language) and return its event iterator, or
        deliver its events into `sink` (see `Subscription`)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"subscription query must be a non-empty string, got {query!r}")
        if self._closed:
            raise ConnectionError(f"subscribe {query!r}: client for {self.url} is closed")
        held = [sub.query for sub in self._subscriptions]
        if query in held:
            raise SubscriptionError(f"already subscribed to {query!r}; CometBFT refuses a duplicate query per client")
        if len(held) >= self.max_subscriptions:
            raise SubscriptionError(
                f"cannot subscribe to {query!r}: at most {self.max_subscriptions} subscriptions per connection "
                f"(CometBFT max_subscriptions_per_client), already subscribed to {held}"
            )
        sub = Subscription(self, query, sink)
        self._subscriptions.append(sub)
        try:
            await self._subscribe_on_wire(sub)
        except BaseException:
            # Never handed out, so nothing waits for its end (close() may have dropped it already).
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)
            raise
        return sub

    async def _subscribe_on_wire(self, sub: Subscription) -> None:
        ident = next(self._ids)
        # Registered before sending: the first event may be read right after the answer, before
        # this coroutine resumes.
        self._by_id[ident] = sub
        sub._generation = self._generation
        try:
            await self._request(ident, "subscribe", {"query": sub.query})
        except BaseException:
            self._by_id.pop(ident, None)
            sub._generation = -1
            raise

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subscriptions:
            return
        self._subscriptions.remove(sub)
        for ident in [i for i, s in self._by_id.items() if s is sub]:
            del self._by_id[ident]
        sub._end()
        if self.connected:
            try:
                await self.call("unsubscribe", {"query": sub.query})
            except ConnectionError:
                pass  # the node forgets a connection's subscriptions with the connection

    # -- reading -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            assert self._ws is not None
            reason = await self._read(self._ws)
            self._connection_lost(reason)
            self._ws = await self._reconnect()
            self._generation += 1
            self.connected = True
            self.reconnects += 1
            log.info("reconnected to %s (reconnection %d)", self.url, self.reconnects)
            self._resume = asyncio.get_running_loop().create_task(self._resubscribe(),
                                                                  name=f"comet-rpc resume {self.url}")

    async def _read(self, ws: ClientConnection) -> str:
        try:
            async for raw in ws:
                self._dispatch(raw)
        except ConnectionClosed as exc:
            return str(exc)
        return f"closed by the node (code {ws.close_code})"

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return self._junk("not JSON", raw)
        if not isinstance(msg, dict):
            return self._junk(f"a JSON {type(msg).__name__}, not an object", raw)
        ident = msg.get("id")
        result = msg.get("result")
        if isinstance(result, dict) and "query" in result and "data" in result:
            return self._event(ident, result, raw)
        if not _is_id(ident):
            return self._junk("a response without a usable id", raw)
        entry = self._pending.pop(ident, None)
        if entry is None:
            if self._late.pop(ident, None) is not None:
                log.debug("late answer to request %r from %s ignored", ident, self.url)
                return None
            return self._junk(f"an answer to unknown request id {ident!r:.40}", raw)
        method, future = entry
        answer = self._answer(method, msg)
        if answer is None:
            self._junk(f"an unreadable answer to {method}", raw)
            answer = RpcError(PARSE_ERROR, "unreadable response", _preview(raw), method=method)
        if future.done():  # the caller was cancelled
            return None
        if isinstance(answer, RpcError):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return None

    @staticmethod
    def _answer(method: str, msg: dict) -> dict | RpcError | None:
        """The result dict or the RpcError a response carries; None when it is neither."""
        if "error" in msg and "result" not in msg:
            error = msg["error"]
            if not isinstance(error, dict):
                return None
            code, message, data = error.get("code"), error.get("message"), error.get("data")
            if not _is_int(code) or not isinstance(message, str):
                return None
            if data is not None and not isinstance(data, str):
                data = json.dumps(data)
            return RpcError(code, message, data, method=method)
        if "result" in msg and "error" not in msg and isinstance(msg["result"], dict):
            return msg["result"]
        return None

    def _event(self, ident: Any, result: dict, raw: str | bytes) -> None:
        data = result["data"]
        if not isinstance(data, dict):
            return self._junk("an event whose data is not an object", raw)
        sub = self._by_id.get(ident) if _is_id(ident) else None
        if sub is None and isinstance(result["query"], str):
            sub = next((s for s in self._subscriptions if s.query == result["query"]), None)
        if sub is None:
            return self._junk(f"an event for no live subscription (id {ident!r:.40})", raw)
        sub._deliver(data)
        return None

    def _junk(self, what: str, raw: str | bytes) -> None:
        self.malformed += 1
        log.warning("skipped %s from %s: %s", what, self.url, _preview(raw))

    # -- reconnection ------------------------------------------------------------------------

    def _connection_lost(self, reason: str) -> None:
        self.connected = False
        self._by_id.clear()
        self._late.clear()
        if self._resume is not None:
            self._resume.cancel()  # it only ever waits on this connection
            self._resume = None
        self._fail_pending(f"connection to {self.url} lost before the answer ({reason})")
        log.warning("connection to %s lost (%s); reconnecting", self.url, reason)

    async def _reconnect(self) -> ClientConnection:
        attempt = 0
        while True:
            await asyncio.sleep(backoff_delay(attempt, self.backoff_initial, self.backoff_max, self._rng))
            try:
                return await self._open()
            except ConnectionError as exc:
                attempt += 1
                log.warning("reconnection attempt %d failed: %s", attempt, exc)

    async def _resubscribe(self) -> None:
        generation = self._generation
        try:
            for sub in list(self._subscriptions):
                if sub._generation != generation and sub in self._subscriptions:
                    await self._subscribe_on_wire(sub)
        except ConnectionError:
            return  # dropped again; the next reconnection resumes
        except (RpcError, TimeoutError) as exc:
            # Resuming without every query would silently lose events: start over.
            log.warning("resubscribing on %s failed (%s); reconnecting", self.url, exc)
            if self._ws is not None:
                await self._ws.close()
            return
        for callback in list(self._callbacks):
            try:
                await callback()
            except Exception:  # noqa: BLE001 - one callback's bug must not stop the others
                log.exception("on_reconnect callback %r failed", callback)

    # -- helpers -----------------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        try:
            return await connect(self.url, max_size=MAX_MESSAGE_BYTES, open_timeout=self.request_timeout)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConnectionError(f"cannot connect to {self.url}: {exc}") from exc

    def _shut(self, reason: str) -> None:
        self._closed = True
        self.connected = False
        for sub in self._subscriptions:
            sub._end()
        self._subscriptions.clear()
        self._by_id.clear()
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for method, future in pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"{method}: {reason}"))

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        # Only a bug gets here. Ending every iterator makes the failure visible to consumers
        # instead of leaving them waiting on a client that no longer reads.
        if not task.cancelled() and task.exception() is not None:
            log.error("reader of %s stopped; client closed", self.url, exc_info=task.exception())
            self._shut(f"reader of {self.url} stopped: {task.exception()!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    # Floats are refused: 1.0 would otherwise match request 1 as a dict key.
    return _is_int(value) or isinstance(value, str)


def _preview(raw: str | bytes) -> str:
    return repr(raw[:PREVIEW_CHARS]) + ("..." if len(raw) > PREVIEW_CHARS else "")
