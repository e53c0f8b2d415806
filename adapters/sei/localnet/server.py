"""The localnet's network face: CometBFT 0.35 JSON-RPC over a websocket, a block timer, event
subscriptions and fault switches, around a `chain.Chain`.

FlashMM's transport talks to this exactly as it talks to a Sei RPC node, over a real socket, so
everything between the bytes on the wire and the strategy is exercised: framing, ids, the
subscription limit, pushes that reuse the subscribe request's id, NewBlock before the block's Tx
events, reconnects. The fault switches (`flashmm_fault`) make the failures a live node must
survive happen on demand: dropped sockets, stalled blocks, rejected and silently lost txs, txs
accepted whose answer is lost with the socket, a sequence taken by another signer, malformed
pushes, and history pruned away (a node restored from a snapshot).

The chain is single-threaded and runs on the server's event loop, so a block is produced and
published between two request handlers, never during one. Each connection has an outbox drained
by its own writer task: responses and pushes leave in the order they were produced, and a client
that stops reading is disconnected once its outbox is full (CometBFT drops such subscribers too)
instead of growing the server's memory.

Junk from a client (invalid JSON, wrong shapes, oversized requests) is answered with a JSON-RPC
error and never ends the connection or the server; only a frame above the websocket limit
(`MAX_FRAME_BYTES`) is refused by the websocket layer itself, which closes that one connection.

`LocalnetThread` runs a whole localnet inside a test process; `run_localnet` is the
`flashmm localnet` command.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.sei.keys import Signer
from adapters.sei.localnet.chain import (
    BackgroundLiquidity,
    Block,
    BlockUnavailable,
    Chain,
    ChainConfig,
    MempoolFull,
    account_signer,
    derive_key,
)

log = logging.getLogger("flashmm.localnet")

WEBSOCKET_PATH = "/websocket"
MAX_SUBSCRIPTIONS_PER_CLIENT = 5  # CometBFT's max_subscriptions_per_client
MAX_REQUEST_BYTES = 1 << 20  # CometBFT's max_body_bytes
MAX_FRAME_BYTES = 4 << 20  # above this the websocket layer closes the connection (1009)
MAX_QUERY_LENGTH = 512  # CometBFT's limit on a subscription query
OUTBOX_LIMIT = 10_000  # messages queued for one client before it is dropped as too slow
DEFAULT_BLOCK_INTERVAL_MS = 400

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
_ERROR_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

FAULT_SWITCHES = ("drop_connections", "refuse_ms", "stall_ms", "reject_txs", "code", "sequence_skew", "swallow_txs",
                  "malformed", "prune_history", "unanswered_txs")

_CONDITION = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:'([^']*)'|([0-9]+))\s*")
_AND = re.compile(r"AND(?=\s)")
_DROP = object()  # outbox sentinel: close the socket once everything before it is sent


class RpcError(Exception):
    """A request answered with a JSON-RPC error; `data` says what is wrong."""

    def __init__(self, code: int, data: str) -> None:
        super().__init__(data)
        self.code, self.data = code, data


# -- subscription queries -----------------------------------------------------------------------


def parse_query(query: str) -> tuple[tuple[str, str], ...]:
    """The subset of CometBFT's query language FlashMM uses: `key='value'` and `key=number`
    conditions joined by AND. Anything else is refused rather than half-understood."""
    if not isinstance(query, str) or not query.strip():
        raise RpcError(INVALID_PARAMS, "query: must be a non-empty string")
    if len(query) > MAX_QUERY_LENGTH:
        raise RpcError(INVALID_PARAMS, f"query: {len(query)} characters, at most {MAX_QUERY_LENGTH}")
    conditions = []
    position = 0
    while True:
        match = _CONDITION.match(query, position)
        if match is None:
            raise RpcError(INVALID_PARAMS, (
                f"query: cannot parse {query[position:position + 60]!r}; the localnet supports key='value' "
                "and key=number conditions joined by AND"
            ))
        key, text, number = match.groups()
        conditions.append((key, text if text is not None else str(int(number))))
        position = match.end()
        if position == len(query):
            return tuple(conditions)
        joiner = _AND.match(query, position)
        if joiner is None:
            raise RpcError(INVALID_PARAMS, f"query: expected AND at {query[position:position + 60]!r}")
        position = joiner.end()


def _matches(conditions: tuple[tuple[str, str], ...], events: dict[str, list[str]]) -> bool:
    return all(value in events.get(key, ()) for key, value in conditions)


# -- connections --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Subscription:
    conditions: tuple[tuple[str, str], ...]
    id_json: str  # the subscribe request's id, already JSON
    query_json: str


@dataclass(slots=True, eq=False)  # identity, not value: clients live in a set
class _Client:
    ws: ServerConnection
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)

    def send(self, item: str | bytes | object) -> None:
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("dropping client %s: %d messages queued, it is not reading", self.ws.remote_address,
                        OUTBOX_LIMIT)
            self.ws.transport.abort()


class LocalnetServer:
    """Serves one chain on `ws://host:port/websocket` and produces a block every interval."""

    def __init__(
        self,
        chain: Chain,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        block_interval_ms: float = DEFAULT_BLOCK_INTERVAL_MS,
    ) -> None:
        if block_interval_ms <= 0:
            raise ValueError(f"block_interval_ms must be > 0, got {block_interval_ms}")
        self.chain = chain
        self.host = host
        self.port = port
        self.block_interval_ms = block_interval_ms
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._blocks: asyncio.Task | None = None
        self._stalled_until = 0.0
        self._refusing_until = 0.0  # new connections get HTTP 503 until then (an unreachable node)
        self._unanswered = 0  # accepted txs whose answer is never sent (the socket drops instead)
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        # Handlers take (client, params, request id); only `subscribe` needs the id.
        self._methods: dict[str, Callable[[_Client, dict[str, Any], Any], Any]] = {
            "status": lambda c, p, i: self._no_params(p, self.chain.status),
            "health": lambda c, p, i: self._no_params(p, dict),
            "subscribe": self._subscribe,
            "unsubscribe": lambda c, p, i: self._unsubscribe(c, p),
            "unsubscribe_all": lambda c, p, i: self._unsubscribe_all(c, p),
            "broadcast_tx_sync": lambda c, p, i: self._broadcast_tx_sync(c, p),
            "abci_query": lambda c, p, i: self._abci_query(p),
            "block": lambda c, p, i: self._stored(self.chain.block, p),
            "block_results": lambda c, p, i: self._stored(self.chain.block_results, p),
            "flashmm_fault": lambda c, p, i: self._fault(p),
        }

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WEBSOCKET_PATH}"

    async def start(self) -> None:
        self._server = await serve(
            self._connection, self.host, self.port, process_request=self._process_request,
            max_size=MAX_FRAME_BYTES, compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._blocks = asyncio.create_task(self._produce_blocks(), name="localnet-blocks")

    async def stop(self) -> None:
        if self._blocks is not None:
            self._blocks.cancel()
            await asyncio.gather(self._blocks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- blocks -------------------------------------------------------------------------------

    async def _produce_blocks(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.block_interval_ms / 1000
        next_at = loop.time() + interval
        try:
            while True:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                now = loop.time()
                if now < self._stalled_until:
                    next_at = self._stalled_until
                    continue
                # Keep the cadence, but after a stall or a slow block never fire a burst.
                next_at = max(next_at + interval, now)
                # Wall-clock block times, as a live chain has; the chain only needs them to increase.
                block = self.chain.produce_block(max(time.time_ns(), self.chain.time_ns + 1))
                self._publish(block)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a chain or replay bug: stop loudly rather than serve a frozen chain
            log.exception("block production failed at height %d", self.chain.height + 1)
            self.failure = exc
            self.failed.set()

    def _publish(self, block: Block) -> None:
        """NewBlock first, then the block's Tx events in order, as CometBFT publishes them."""
        subscribed = [(c, s) for c in self._clients for s in c.subscriptions.values()]
        if not subscribed:
            return
        events = [block.new_block_event()] + [block.tx_event(i) for i in range(len(block.txs))]
        for data, composite in events:
            receivers = [(c, s) for c, s in subscribed if _matches(s.conditions, composite)]
            if not receivers:
                continue
            tail = f',"data":{_dumps(data)},"events":{_dumps(composite)}}}}}'
            for client, sub in receivers:
                client.send(f'{{"jsonrpc":"2.0","id":{sub.id_json},"result":{{"query":{sub.query_json}{tail}')

    # -- connections --------------------------------------------------------------------------

    async def _connection(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        self._clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            async for message in ws:
                response, after = self._dispatch(client, message)
                if response is not None:
                    client.send(response)
                if after is not None:
                    after()
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            writer.cancel()

    async def _write(self, client: _Client) -> None:
        try:
            while True:
                item = await client.outbox.get()
                if item is _DROP:
                    # No close frame: to the client this is a dropped TCP connection (1006).
                    client.ws.transport.close()
                    return
                await client.ws.send(item)
        except ConnectionClosed:
            pass

    # -- JSON-RPC -----------------------------------------------------------------------------

    def _dispatch(self, client: _Client, message: str | bytes) -> tuple[str, Callable[[], None] | None]:
        """One request in, one response out; `after` runs once the response is queued."""
        request_id: Any = None
        try:
            if len(message) > MAX_REQUEST_BYTES:
                raise RpcError(INVALID_REQUEST, f"request of {len(message)} bytes, at most {MAX_REQUEST_BYTES}")
            try:
                request = json.loads(message)
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
                raise RpcError(PARSE_ERROR, f"not a JSON text: {str(exc)[:200]}") from None
            if not isinstance(request, dict):
                raise RpcError(INVALID_REQUEST, (
                    f"expected a JSON-RPC request object, got a JSON {type(request).__name__} "
                    "(batches are not supported over the websocket)"
                ))
            candidate = request.get("id")
            if isinstance(candidate, bool) or not isinstance(candidate, (int, str)):
                raise RpcError(INVALID_REQUEST, "id: must be an integer or a string")
            request_id = candidate
            if request.get("jsonrpc") != "2.0":
                raise RpcError(INVALID_REQUEST, 'jsonrpc: must be "2.0"')
            method = request.get("method")
            if not isinstance(method, str):
                raise RpcError(INVALID_REQUEST, "method: must be a string")
            handler = self._methods.get(method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"method {method[:100]!r} is not served by the localnet")
            params = request.get("params")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params: must be an object (named parameters)")
            result = handler(client, params, request_id)
        except RpcError as e:
            return _error(request_id, e.code, e.data), None
        except Exception as exc:  # a bug must cost one request, never the server
            log.exception("request handler failed")
            return _error(request_id, INTERNAL_ERROR, f"internal error: {type(exc).__name__}"), None
        after = None
        if isinstance(result, _Deferred):
            result, after = result.result, result.after
            if result is None:
                return None, after
        return _dumps({"jsonrpc": "2.0", "id": request_id, "result": result}), after

    @staticmethod
    def _no_params(params: dict[str, Any], answer: Callable[[], Any]) -> Any:
        _only(params)
        return answer()

    def _subscribe(self, client: _Client, params: dict[str, Any], request_id: Any) -> dict:
        _only(params, "query")
        query = params.get("query")
        conditions = parse_query(query)
        if query in client.subscriptions:
            raise RpcError(INTERNAL_ERROR, "already subscribed")
        if len(client.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CLIENT:
            raise RpcError(INTERNAL_ERROR, f"max_subscriptions_per_client {MAX_SUBSCRIPTIONS_PER_CLIENT} reached")
        # Pushes reuse the subscribe request's id, as CometBFT's do.
        client.subscriptions[query] = _Subscription(conditions, _dumps(request_id), _dumps(query))
        return {}

    def _unsubscribe(self, client: _Client, params: dict[str, Any]) -> dict:
        _only(params, "query")
        query = params.get("query")
        if not isinstance(query, str):
            raise RpcError(INVALID_PARAMS, "query: must be a string")
        if client.subscriptions.pop(query, None) is None:
            raise RpcError(INTERNAL_ERROR, "subscription not found")
        return {}

    def _unsubscribe_all(self, client: _Client, params: dict[str, Any]) -> dict:
        _only(params)
        client.subscriptions.clear()
        return {}

    def _broadcast_tx_sync(self, client: _Client, params: dict[str, Any]) -> dict | _Deferred:
        _only(params, "tx")
        tx = params.get("tx")
        if not isinstance(tx, str):
            raise RpcError(INVALID_PARAMS, "tx: must be a base64 string")
        try:
            raw = base64.b64decode(tx, validate=True)
        except (binascii.Error, ValueError):
            raise RpcError(INVALID_PARAMS, "tx: not valid base64") from None
        try:
            checked = self.chain.check_tx(raw)
        except MempoolFull as e:
            raise RpcError(INTERNAL_ERROR, str(e)) from None
        if self._unanswered and checked.code == 0:
            # In the mempool, but the answer is lost with the connection: the sender cannot know.
            self._unanswered -= 1
            return _Deferred(None, lambda: client.send(_DROP))
        return checked.to_json()

    def _abci_query(self, params: dict[str, Any]) -> dict:
        _only(params, "path", "data", "height", "prove")
        path = params.get("path")
        if not isinstance(path, str):
            raise RpcError(INVALID_PARAMS, "path: must be a string")
        data = params.get("data", "")
        if not isinstance(data, str):
            raise RpcError(INVALID_PARAMS, "data: must be a hex string")
        try:
            payload = bytes.fromhex(data)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "data: not a hex string") from None
        if not isinstance(params.get("prove", False), bool):
            raise RpcError(INVALID_PARAMS, "prove: must be a boolean")
        height = _height(params.get("height", "0"))
        return self.chain.abci_query(path, payload, height or 0)

    def _stored(self, read: Callable[[int | None], dict], params: dict[str, Any]) -> dict:
        _only(params, "height")
        try:
            return read(_height(params.get("height")))
        except BlockUnavailable as e:
            raise RpcError(INTERNAL_ERROR, str(e)) from None

    def _process_request(self, connection: ServerConnection, request):
        if request.path.split("?", 1)[0] != WEBSOCKET_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"the CometBFT websocket endpoint is {WEBSOCKET_PATH}\n")
        if asyncio.get_running_loop().time() < self._refusing_until:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "localnet fault: refusing connections\n")
        return None

    # -- faults -------------------------------------------------------------------------------

    def _fault(self, params: dict[str, Any]) -> _Deferred:
        applied, after = self.apply_fault(params)
        return _Deferred({"applied": applied}, after)

    def apply_fault(self, switches: dict[str, Any]) -> tuple[list[str], Callable[[], None]]:
        """Validate every switch, then apply them; returns the applied names and the part that
        must wait until the caller's response is queued (malformed pushes, dropped sockets)."""
        unknown = sorted(set(switches) - set(FAULT_SWITCHES))
        if unknown:
            raise RpcError(INVALID_PARAMS, f"unknown fault switches {unknown}; known: {list(FAULT_SWITCHES)}")
        if not switches:
            raise RpcError(INVALID_PARAMS, f"no fault switch given; known: {list(FAULT_SWITCHES)}")
        drop = switches.get("drop_connections", False)
        if not isinstance(drop, bool):
            raise RpcError(INVALID_PARAMS, "drop_connections: must be a boolean")
        prune = switches.get("prune_history", False)
        if not isinstance(prune, bool):
            raise RpcError(INVALID_PARAMS, "prune_history: must be a boolean")
        stall_ms = _count(switches, "stall_ms")
        refuse_ms = _count(switches, "refuse_ms")
        reject = _count(switches, "reject_txs")
        if ("code" in switches) != (reject is not None):
            raise RpcError(INVALID_PARAMS, "reject_txs and code go together: reject_txs=N, code=C (C > 0)")
        code = _count(switches, "code")
        if reject is not None and not code:
            raise RpcError(INVALID_PARAMS, "code: must be > 0 (0 means accepted)")
        skew = switches.get("sequence_skew")
        if skew is not None:
            if not isinstance(skew, dict) or set(skew) != {"address", "by"}:
                raise RpcError(INVALID_PARAMS, 'sequence_skew: must be {"address": A, "by": K}')
            by = _count(skew, "by")
            if not by or not isinstance(skew["address"], str) or self.chain.account(skew["address"]) is None:
                raise RpcError(INVALID_PARAMS, "sequence_skew: needs a localnet account address and by >= 1")
        swallow = _count(switches, "swallow_txs")
        malformed = _count(switches, "malformed")
        unanswered = _count(switches, "unanswered_txs")

        if refuse_ms:
            self._refusing_until = asyncio.get_running_loop().time() + refuse_ms / 1000
        if stall_ms:
            self._stalled_until = asyncio.get_running_loop().time() + stall_ms / 1000
        if reject is not None:
            self.chain.reject_next(reject, code)
        if skew is not None:
            self.chain.skew_sequence(skew["address"], by)
        if swallow is not None:
            self.chain.swallow_next(swallow)
        if prune:
            self.chain.prune_history()
        if unanswered is not None:
            self._unanswered = unanswered
        clients = list(self._clients)

        def after() -> None:
            if malformed:
                for client in clients:
                    subs = list(client.subscriptions.values())
                    if subs:
                        for i in range(malformed):
                            client.send(_malformed_push(i, subs[i % len(subs)], self.chain.height + 1))
            if drop:
                for client in clients:
                    client.send(_DROP)

        applied = [name for name in FAULT_SWITCHES
                   if name in switches and name != "code" and switches[name] is not False]
        log.info("fault injected: %s", {k: switches[k] for k in switches})
        return applied, after


@dataclass(frozen=True, slots=True)
class _Deferred:
    result: dict[str, Any] | None  # None: no response at all
    after: Callable[[], None]




def _only(params: dict[str, Any], *allowed: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RpcError(INVALID_PARAMS, f"unknown params {unknown[:10]}; this method takes {list(allowed)}")


def _height(value: Any) -> int | None:
    """CometBFT accepts heights as JSON strings (its own int64 encoding) or numbers."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise RpcError(INVALID_PARAMS, "height: must be a non-negative integer or integer string")


def _count(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000_000:
        raise RpcError(INVALID_PARAMS, f"{name}: must be a non-negative integer")
    return value


def _error(request_id: Any, code: int, data: str) -> str:
    return _dumps({"jsonrpc": "2.0", "id": request_id,
                   "error": {"code": code, "message": _ERROR_MESSAGES[code], "data": data}})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _malformed_push(i: int, sub: _Subscription, height: int) -> str | bytes:
    """The i-th of a fixed cycle of broken pushes, each addressed to a real subscription, each
    wrong in a different layer: framing, JSON, envelope shape, payload shape, payload encoding."""
    head = f'{{"jsonrpc":"2.0","id":{sub.id_json},"result":'
    kinds = [
        lambda: head + '{"query":' + sub.query_json + ',"data":{"type":"tendermint/event/Tx","val',
        lambda: b"\xff\xfe\x00binary frame",
        lambda: head + '"not an object"}',
        lambda: head + _dumps({"query": json.loads(sub.query_json), "data": {"type": "tendermint/event/NewBlock"},
                               "events": {}}) + "}",
        lambda: head + _dumps({"query": json.loads(sub.query_json), "data": {
            "type": "tendermint/event/NewBlock",
            "value": {"block": {"header": {"chain_id": 7, "height": "not-a-height", "time": "yesterday"},
                                "data": {"txs": "nope"}}},
        }, "events": {"tm.event": "NewBlock"}}) + "}",
        lambda: head + _dumps({"query": json.loads(sub.query_json), "data": {"type": "tendermint/event/Tx", "value": {
            "TxResult": {"height": str(height), "index": 0, "tx": "%%% not base64 %%%", "result": {"events": [
                {"type": "wasm-filled", "attributes": [{"key": "@@not-base64@@", "value": "////"}]},
            ]}},
        }}, "events": {"tm.event": ["Tx"]}}) + "}",
        lambda: head + _dumps({"query": json.loads(sub.query_json), "data": {"type": "tendermint/event/Tx", "value": {
            "TxResult": {"height": -1, "index": "zero", "tx": None, "result": []},
        }}, "events": []}) + "}",
        lambda: ('{"jsonrpc":"2.0","id":' + sub.id_json + ',"result":{"query":' + sub.query_json + ',"data":'
                 + "[" * 5000 + "]" * 5000 + "}}"),
    ]
    return kinds[i % len(kinds)]()


# -- in-process runner --------------------------------------------------------------------------


class LocalnetThread:
    """A localnet in its own thread and event loop, for tests: `with LocalnetThread() as net:`
    then connect to `net.url`. Port 0 picks a free port."""

    def __init__(
        self,
        config: ChainConfig | None = None,
        *,
        replay: BackgroundLiquidity | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        block_interval_ms: float = DEFAULT_BLOCK_INTERVAL_MS,
    ) -> None:
        self.config = config or ChainConfig()
        self._replay = replay
        self._host, self._port, self._interval = host, port, block_interval_ms
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: LocalnetServer | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    def __enter__(self) -> LocalnetThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="localnet", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            chain = Chain(self.config, self._replay)
            self._server = LocalnetServer(chain, host=self._host, port=self._port, block_interval_ms=self._interval)
            await self._server.start()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.stop()

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        self._thread = None

    def call(self, fn: Callable[[Chain], Any]) -> Any:
        """Run `fn(chain)` on the localnet's loop (the chain is not thread-safe) and return its result."""
        async def run() -> Any:
            return fn(self._server.chain)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def fault(self, **switches: Any) -> list[str]:
        """The `flashmm_fault` switches, applied in-process; see `LocalnetServer.apply_fault`."""
        async def run() -> list[str]:
            applied, after = self._server.apply_fault(switches)
            after()
            return applied
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    @property
    def failure(self) -> BaseException | None:
        return self._server.failure if self._server else None

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def chain_id(self) -> str:
        return self.config.chain_id

    @property
    def contract(self) -> str:
        return self._server.chain.contract

    @property
    def dev_signer(self) -> Signer:
        return account_signer(self.config.seed, "dev")

    @property
    def dev_key_hex(self) -> str:
        """The dev account's private key as `keys.load_signer` reads it (a localnet-only key,
        derived from the public seed)."""
        return derive_key(self.config.seed, "dev").hex()


# -- the `flashmm localnet` command --------------------------------------------------------------


def write_key_file(path: Path, key: bytes) -> None:
    """Write a private key as hex, readable by its owner only (what `keys.load_signer` demands).
    The mode is set on the descriptor, so the key is never readable by others, even briefly,
    and an existing file's looser mode is tightened; a symlink is refused rather than followed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        f.write(key.hex() + "\n")


def run_localnet(
    *,
    catalog: str | Path,
    host: str = "127.0.0.1",
    port: int = 26657,
    block_interval_ms: float = DEFAULT_BLOCK_INTERVAL_MS,
    seed: int = 0,
    key_file: Path,
    start: str | None = None,
    end: str | None = None,
    maker_fee: str = "0",
    taker_fee: str = "0.0005",
    announce: Callable[[str], None] = lambda text: print(text, flush=True),
) -> int:
    """Serve a localnet replaying `catalog` until SIGINT or SIGTERM; returns the exit status."""
    from adapters.sei.localnet.replay import TapeReplay
    from data.catalog import open_tape, parse_time

    tape = open_tape(catalog)
    config = ChainConfig(seed=seed, maker_fee_rate=_rate(maker_fee, "--maker-fee"),
                         taker_fee_rate=_rate(taker_fee, "--taker-fee"), genesis_time_ns=time.time_ns())
    try:
        config.market()  # a bad fee rate fails here, before anything is bound or written
    except ValueError as e:
        raise ValueError(f"--maker-fee {maker_fee} / --taker-fee {taker_fee}: {e}") from None
    replay = TapeReplay(
        tape, maker=account_signer(seed, "maker").address, taker=account_signer(seed, "taker").address,
        start_ns=parse_time(start, tape, "--start"), end_ns=parse_time(end, tape, "--end"),
    )
    chain = Chain(config, replay)
    return asyncio.run(_serve(chain, host, port, block_interval_ms, Path(key_file).expanduser(), tape.path, announce))


async def _serve(chain: Chain, host: str, port: int, block_interval_ms: float, key_file: Path, catalog: Path,
                 announce: Callable[[str], None]) -> int:
    server = LocalnetServer(chain, host=host, port=port, block_interval_ms=block_interval_ms)
    try:
        await server.start()
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    try:
        write_key_file(key_file, derive_key(chain.config.seed, "dev"))
    except OSError as e:
        await server.stop()
        raise ValueError(f"cannot write the key file {key_file}: {e.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce(
        f"localnet {chain.chain_id} serving {server.url}\n"
        f"  contract     {chain.contract}\n"
        f"  dev address  {chain.dev.address}\n"
        f"  dev key file {key_file}\n"
        f"  blocks every {block_interval_ms:g} ms, background liquidity from {catalog}\n"
        f"stop with Ctrl-C"
    )
    stopping = asyncio.create_task(stop.wait())
    failing = asyncio.create_task(server.failed.wait())
    await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    failing.cancel()
    await server.stop()
    if server.failure is not None:
        announce(f"localnet stopped: block production failed at height {chain.height + 1}: {server.failure}")
        return 1
    announce(f"localnet stopped at height {chain.height}")
    return 0


def _rate(text: str, flag: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{flag} = {text!r} is not a decimal number like 0.0005") from None
