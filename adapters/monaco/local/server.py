"""The local Monaco's network face: Monaco's REST API and `/ws` on one aiohttp port, in the dialect
of `adapters.monaco.wire`, around a `LocalExchange`.

It checks what Monaco checks as far as the sources tell: the wallet's signature over the login
challenge (EIP-191, or EIP-712 when the wire says so), the session on every private call (bearer
tokens that expire and rotate on refresh, or ed25519 request signatures within a clock skew), and
a per-client request rate (429 with Retry-After). Every route and field comes from the same `Wire`
the client uses, so the two cannot drift; a `Wire` given to both changes both.

Fault switches (`POST /_flashmm/fault`, a local-only path Monaco does not have, or `fault()` in a
test) make the failures a live node must survive happen on demand:

    drop_ws         close every WebSocket abruptly (no close frame), as a network cut
    refuse_ws_ms    refuse new WebSocket connections (HTTP 503) for that long
    http_5xx        answer the next N REST requests with 503, unprocessed
    http_429        answer the next N REST requests with 429 (Retry-After: retry_after_s)
    slow_ms         hold the next `slow_requests` REST requests (of `slow_route` only, if given:
                    a route name of wire.Routes) this long before handling them
    stale_sequence  send the last book update N more times (a sequence already seen)
    skip_sequence   let the book sequence jump, so the next update shows a gap
    expire_tokens   end every session now (the next private call is a 401)
    junk_frames     send N malformed frames to every WebSocket client
    error_frame     send an error frame with this text to every WebSocket client (a venue that
                    echoes what it was sent, a token included, in its errors)

Junk from a client is answered with an error (HTTP 400, or an error frame) and never ends the
server; a client that stops reading is disconnected once its outbox is full.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
from aiohttp import WSMsgType, web
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from adapters.monaco.keys import EvmSigner
from adapters.monaco.local.exchange import ExchangeConfig, LocalExchange, OrderNotFound, OrderRefused
from adapters.monaco.wire import (
    SESSION_HEADERS,
    ApiError,
    Codec,
    Level,
    Order,
    Routes,
    Session,
    Trade,
    Wire,
    WireError,
    iso,
)
from adapters.monaco.wire import signing_string as request_signing_string

log = logging.getLogger("flashmm.monaco_local")

SEI_TESTNET_CHAIN_ID = 1328  # [SEI] atlantic-2; every non-mainnet Monaco environment settles there ([TS] sdk.ts)
FAULT_PATH = "/_flashmm/fault"
FAULT_SWITCHES = ("drop_ws", "refuse_ws_ms", "http_5xx", "http_429", "retry_after_s", "slow_ms", "slow_requests",
                  "slow_route", "stale_sequence", "skip_sequence", "expire_tokens", "junk_frames", "error_frame")
MAX_BODY_BYTES = 1 << 20
OUTBOX_LIMIT = 10_000
CLOCK_SKEW_MS = 30_000  # a session signature's timestamp may be this far from ours (UNCONFIRMED on Monaco)
CHALLENGE_TTL_S = 300


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    chain_id: int = SEI_TESTNET_CHAIN_ID
    token_ttl_s: float = 900.0
    refresh_ttl_s: float = 86_400.0
    requests_per_s: float = 50.0
    burst: int = 100
    match_delay_ms: float = 0.0


@dataclass
class _Session:
    user_id: str
    address: str
    expires_ns: int
    access_token: str | None = None
    refresh_token: str | None = None
    refresh_expires_ns: int = 0
    public_key: bytes | None = None


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    transport: Any
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    user: str | None = None  # wallet address once authenticated
    channels: set[str] = field(default_factory=set)

    def send(self, text: str | None) -> None:
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("dropping a websocket client that is not reading")
            self.transport.close()


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, float(burst), float(burst), time.monotonic()

    def wait_s(self) -> float:
        """0 if a request may go now (and takes its token), else how long until it may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class LocalMonaco:
    """Serves one `LocalExchange` on `http://host:port` (REST) and `ws://host:port/ws`."""

    def __init__(self, exchange: LocalExchange, config: ServerConfig | None = None, wire: Wire | None = None) -> None:
        self.exchange = exchange
        self.config = config or ServerConfig()
        self.codec = Codec(wire)
        self.port = self.config.port
        self._runner: web.AppRunner | None = None
        self._replay: asyncio.Task | None = None
        self._conns: set[_Conn] = set()
        self._challenges: dict[str, tuple[str, str | None, str, float]] = {}  # nonce -> (address, key, msg, until)
        self._sessions_by_token: dict[str, _Session] = {}
        self._sessions_by_refresh: dict[str, _Session] = {}
        self._sessions_by_key: dict[bytes, _Session] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._faults = {"http_5xx": 0, "http_429": 0, "retry_after_s": 1.0, "slow_ms": 0.0, "slow_requests": 0,
                        "slow_route": None}
        self._refusing_ws_until = 0.0
        self._last_book_frame: str | None = None
        # Every REST request: (monotonic time, route, status), for tests that count what a client sent.
        self.requests: deque[tuple[float, str, int]] = deque(maxlen=100_000)
        self.issued_tokens: list[str] = []  # every access and refresh token handed out (tests look for leaks)
        self.failure: BaseException | None = None
        exchange.on_book = self._on_book
        exchange.on_trade = self._on_trade
        exchange.on_order = self._on_order

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{self.codec.wire.routes.websocket}"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        routes = self.codec.wire.routes
        handlers = {
            "challenge": self._challenge, "verify": self._verify, "refresh": self._refresh, "revoke": self._revoke,
            "trading_pairs": self._pairs, "orderbook": self._orderbook, "create_order": self._create,
            "replace_order": self._replace, "cancel_order": self._cancel, "get_order": self._get_order,
            "list_orders": self._list_orders, "balances": self._balances,
        }
        for name, handler in handlers.items():
            method, path = routes.split(name)
            app.router.add_route(method, path, self._endpoint(name, handler))
        app.router.add_get(routes.websocket, self._websocket)
        app.router.add_post(FAULT_PATH, self._fault_endpoint)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.exchange.start_clock()
        self._replay = asyncio.get_running_loop().create_task(self._run_tape(), name="monaco-local-tape")

    async def stop(self) -> None:
        if self._replay is not None:
            self._replay.cancel()
            await asyncio.gather(self._replay, return_exceptions=True)
        for conn in list(self._conns):
            conn.send(None)
        if self._runner is not None:
            await self._runner.cleanup()
        self.exchange.close()

    async def _run_tape(self) -> None:
        try:
            while True:
                due = self.exchange.next_due_ns()
                if due is None:
                    log.info("the tape has ended: the book stays as it is")
                    return
                delay = (due - time.time_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                self.exchange.apply_due(time.time_ns())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a replay bug: stop the market loudly rather than serve a frozen one
            log.exception("tape replay failed at block %d", self.exchange.tape_index + 1)
            self.failure = exc

    # -- REST plumbing ---------------------------------------------------------------------------

    def _endpoint(self, name: str, handler: Callable) -> Callable:
        async def endpoint(request: web.Request) -> web.Response:
            status = 500
            try:
                body = await request.read()
                identity = request.headers.get("Authorization") or request.headers.get(SESSION_HEADERS[0]) \
                    or (request.remote or "?")
                await self._gate(identity, name)
                answer = await handler(request, body)
                status = 200
                return self._json(answer)
            except _HttpError as e:
                status = e.status
                return self._json(self.codec.error(ApiError(e.status, e.code, e.message)), e.status, e.headers)
            except WireError as e:
                status = 400
                return self._json(self.codec.error(ApiError(400, "INVALID_REQUEST", str(e))), 400)
            except Exception:  # a bug must cost one request, never the server
                log.exception("request %s failed", name)
                return self._json(self.codec.error(ApiError(500, "INTERNAL", "internal error")), 500)
            finally:
                self.requests.append((time.monotonic(), name, status))
        return endpoint

    async def _gate(self, identity: str, route: str) -> None:
        """Faults first, then the per-client rate limit; both answer before any processing."""
        f = self._faults
        if f["http_429"] > 0:
            f["http_429"] -= 1
            raise _HttpError(429, "RATE_LIMITED", "fault: rate limited",
                             {self.codec.wire.retry_after_header: _seconds(f["retry_after_s"])})
        if f["http_5xx"] > 0:
            f["http_5xx"] -= 1
            raise _HttpError(503, "UNAVAILABLE", "fault: service unavailable")
        if f["slow_requests"] > 0 and f["slow_route"] in (None, route):
            f["slow_requests"] -= 1
            await asyncio.sleep(f["slow_ms"] / 1000)
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._buckets[identity] = _Bucket(self.config.requests_per_s, self.config.burst)
        wait = bucket.wait_s()
        if wait > 0:
            raise _HttpError(429, "RATE_LIMITED", f"more than {self.config.requests_per_s:g} requests/s",
                             {self.codec.wire.retry_after_header: _seconds(wait)})

    def _json(self, obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(body=self.codec.dumps(obj), status=status, content_type="application/json",
                            headers=headers)

    def _body(self, body: bytes, what: str) -> Any:
        if not body:
            raise _HttpError(400, "INVALID_REQUEST", f"{what}: a JSON body is required")
        return self.codec.loads(body, what)

    def _user(self, request: web.Request, body: bytes) -> _Session:
        """The session a private request proves, or 401."""
        now = time.time_ns()
        if self.codec.wire.request_auth == "bearer":
            header = request.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else ""
            session = self._sessions_by_token.get(token)
            if session is None:
                raise _HttpError(401, "UNAUTHORIZED", "authentication required")
        else:
            pk, ts, sig = (request.headers.get(h, "") for h in SESSION_HEADERS)
            session = self._session_for_signature(request.method, request.raw_path, pk, ts, sig, body)
        if session.expires_ns <= now:
            raise _HttpError(401, "SESSION_EXPIRED", "the session has expired")
        return session

    def _session_for_signature(self, method: str, path_qs: str, pk: str, ts: str, sig: str, body: bytes) -> _Session:
        try:
            key = bytes.fromhex(pk)
            ts_ms = int(ts)
            signature = self.codec.read_session_signature(sig)
        except (ValueError, WireError):
            raise _HttpError(401, "UNAUTHORIZED", "missing or malformed X-Monaco-* headers") from None
        session = self._sessions_by_key.get(key)
        if session is None:
            raise _HttpError(401, "UNAUTHORIZED", "unknown session key")
        if abs(time.time_ns() // 1_000_000 - ts_ms) > CLOCK_SKEW_MS:
            raise _HttpError(401, "STALE_TIMESTAMP", "X-Monaco-Timestamp is too far from the server's clock")
        try:
            nacl.signing.VerifyKey(key).verify(request_signing_string(method, path_qs, ts_ms, body), signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            raise _HttpError(401, "INVALID_SIGNATURE", "the request signature does not verify") from None
        return session

    # -- auth ------------------------------------------------------------------------------------

    async def _challenge(self, request: web.Request, body: bytes) -> dict:
        address, _, public_key = self.codec.read_challenge_request(self._body(body, "challenge"))
        if not _is_address(address):
            raise _HttpError(400, "INVALID_ADDRESS", "address must be 0x and 40 hex digits")
        nonce = secrets.token_hex(16)
        message = (f"Sign this message to authenticate with Monaco Protocol (local).\n\nWallet: {address}\n"
                   f"Nonce: {nonce}\nChain: {self.config.chain_id}")
        if public_key:
            message += f"\nSession key: {public_key}"
        until = time.time() + CHALLENGE_TTL_S
        self._challenges[nonce] = (address.lower(), public_key, message, until)
        if len(self._challenges) > 10_000:  # forget expired challenges
            self._challenges = {n: c for n, c in self._challenges.items() if c[3] > time.time()}
        return self.codec.challenge(message, nonce, int(until * 1e9))

    async def _verify(self, request: web.Request, body: bytes) -> dict:
        req = self.codec.read_verify_request(self._body(body, "verify"))
        found = self._challenges.pop(req["nonce"], None)
        if found is None or found[3] < time.time() or found[0] != req["address"].lower():
            raise _HttpError(401, "INVALID_CHALLENGE", "unknown, used or expired nonce for this address")
        address, public_key, message, _ = found
        if (req["session_public_key"] or None) != public_key:
            raise _HttpError(401, "INVALID_CHALLENGE", "session_public_key differs from the challenge's")
        if self.codec.wire.login_signature == "eip712":
            signed = encode_typed_data(full_message=self.codec.login_typed_data(
                req["address"], req["nonce"], self.config.chain_id, public_key))
        else:
            signed = encode_defunct(text=message)
        try:
            recovered = Account.recover_message(signed, signature=req["signature"])
        except Exception:  # noqa: BLE001 - any malformed signature is a refused login
            raise _HttpError(401, "INVALID_SIGNATURE", "the signature does not recover") from None
        if recovered.lower() != address:
            raise _HttpError(401, "INVALID_SIGNATURE", "the signature is not the wallet's")
        now = time.time_ns()
        session = _Session(str(uuid.uuid5(uuid.NAMESPACE_URL, f"monaco-local/{address}")), address,
                           now + int(self.config.token_ttl_s * 1e9))
        if self.codec.wire.request_auth == "bearer":
            self._issue_tokens(session, now)
        else:
            try:
                session.public_key = bytes.fromhex(public_key or "")
                nacl.signing.VerifyKey(session.public_key)
            except (ValueError, TypeError, nacl.exceptions.CryptoError):
                raise _HttpError(400, "INVALID_SESSION_KEY",
                                 "session_public_key is not an ed25519 key in hex") from None
            self._sessions_by_key[session.public_key] = session
        return self._session_answer("verify_response", session)

    def _issue_tokens(self, session: _Session, now: int) -> None:
        session.access_token = secrets.token_urlsafe(32)
        session.refresh_token = secrets.token_urlsafe(32)
        session.expires_ns = now + int(self.config.token_ttl_s * 1e9)
        session.refresh_expires_ns = now + int(self.config.refresh_ttl_s * 1e9)
        self._sessions_by_token[session.access_token] = session
        self._sessions_by_refresh[session.refresh_token] = session
        self.issued_tokens += [session.access_token, session.refresh_token]

    def _session_answer(self, message: str, s: _Session) -> dict:
        return self.codec.session(message, Session(s.access_token, s.refresh_token, s.expires_ns, s.user_id), s.address)

    async def _refresh(self, request: web.Request, body: bytes) -> dict:
        now = time.time_ns()
        if self.codec.wire.request_auth == "bearer":
            token = self.codec.read_refresh_request(self._body(body, "refresh"))
            session = self._sessions_by_refresh.pop(token or "", None)
            if session is None or session.refresh_expires_ns <= now:
                raise _HttpError(401, "INVALID_REFRESH_TOKEN", "unknown or expired refresh token")
            self._sessions_by_token.pop(session.access_token, None)  # tokens rotate ([RS] 0.8.1 test)
            self._issue_tokens(session, now)
            return self._session_answer("refresh_response", session)
        session = self._user(request, body)
        session.expires_ns = now + int(self.config.token_ttl_s * 1e9)
        return self.codec.obj("refresh_response", expires_at=session.expires_ns // 1_000_000)

    async def _revoke(self, request: web.Request, body: bytes) -> dict:
        if body:
            raise _HttpError(400, "INVALID_REQUEST", "Revoke request body must be empty")  # [TS] the venue's text
        session = self._user(request, body)
        self._sessions_by_token.pop(session.access_token or "", None)
        self._sessions_by_refresh.pop(session.refresh_token or "", None)
        self._sessions_by_key.pop(session.public_key or b"", None)
        return {}

    # -- market ----------------------------------------------------------------------------------

    async def _pairs(self, request: web.Request, body: bytes) -> dict:
        page = _query_int(request, "page", 1)
        size = _query_int(request, "page_size", 20)
        pairs = [self.exchange.pair]
        return self.codec.pairs_page(pairs[(page - 1) * size: page * size], page, size, len(pairs))

    async def _orderbook(self, request: web.Request, body: bytes) -> dict:
        pair_id = request.match_info["pair_id"]
        self._check_pair(pair_id)
        depth = _query_int(request, "depth", self.codec.wire.book_depth)
        bids, asks, sequence = self.exchange.book_state()
        return self.codec.book_snapshot(pair_id, bids[:depth], asks[:depth], sequence, time.time_ns())

    def _check_pair(self, pair_id: str) -> None:
        if pair_id != self.exchange.pair.id:
            raise _HttpError(404, "PAIR_NOT_FOUND", f"no trading pair {pair_id[:64]}")

    # -- orders ----------------------------------------------------------------------------------

    async def _create(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        pair_id, order_type, side, price, quantity, tif = self.codec.read_create_order(self._body(body, "order"))
        self._check_pair(pair_id)
        if order_type != "LIMIT" or tif != "GTC":
            raise _HttpError(400, "UNSUPPORTED_ORDER", "the local Monaco takes LIMIT GTC orders only")
        if self.config.match_delay_ms:
            await asyncio.sleep(self.config.match_delay_ms / 1000)
        try:
            ack = self.exchange.place(session.address, side, price, quantity, time.time_ns())
        except OrderRefused as e:
            raise _HttpError(400, e.code, str(e)) from None
        return self.codec.ack(ack)

    async def _replace(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        price, quantity = self.codec.read_replace_order(self._body(body, "replace"))
        if self.config.match_delay_ms:
            await asyncio.sleep(self.config.match_delay_ms / 1000)
        try:
            ack = self.exchange.replace(session.address, request.match_info["order_id"], price, quantity,
                                        time.time_ns())
        except OrderNotFound:
            raise _HttpError(404, "ORDER_NOT_FOUND", "no such order of this wallet") from None
        except OrderRefused as e:
            raise _HttpError(400, e.code, str(e)) from None
        return self.codec.ack(ack)

    async def _cancel(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        order_id = request.match_info["order_id"]
        try:
            self.exchange.cancel(session.address, order_id, time.time_ns())
        except OrderNotFound:
            raise _HttpError(404, "ORDER_NOT_FOUND", "no such order of this wallet") from None
        except OrderRefused as e:
            raise _HttpError(400, e.code, str(e)) from None
        return self.codec.obj("order_ack", order_id=order_id, status="SUCCESS", message="Order cancelled")

    async def _get_order(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        try:
            return self.codec.order(self.exchange.order(session.address, request.match_info["order_id"]))
        except OrderNotFound:
            raise _HttpError(404, "ORDER_NOT_FOUND", "no such order of this wallet") from None

    async def _list_orders(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        page = _query_int(request, "page", 1)
        size = min(_query_int(request, "page_size", 20), 100)
        pair = request.query.get("trading_pair")
        if pair is not None:
            self._check_pair(pair)
        rows = self.exchange.orders_of(session.address, request.query.get("status") or None)
        pages = max(1, math.ceil(len(rows) / size))
        return self.codec.orders_page(rows[(page - 1) * size: page * size], page, pages)

    async def _balances(self, request: web.Request, body: bytes) -> dict:
        session = self._user(request, body)
        return self.codec.balances(self.exchange.balances(session.address))

    # -- WebSocket -------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._refusing_ws_until:
            return web.Response(status=503, text="local Monaco fault: refusing connections\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY_BYTES, heartbeat=None)
        await ws.prepare(request)
        conn = _Conn(ws, request.transport)
        self._conns.add(conn)
        writer = asyncio.get_running_loop().create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.send(self._error_frame("binary frames are not understood: send JSON text"))
        finally:
            self._conns.discard(conn)
            writer.cancel()
        return ws

    async def _write(self, conn: _Conn) -> None:
        try:
            while True:
                text = await conn.outbox.get()
                if text is None:
                    await conn.ws.close()
                    return
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    def _error_frame(self, reason: str) -> str:
        return self.codec.dumps(self.codec.ack_frame("error", None, error=reason)).decode()

    def _on_client_frame(self, conn: _Conn, data: str) -> None:
        try:
            kind, channel, frame = self.codec.read_frame(data)
            if kind == "auth":
                self._ws_auth(conn, frame)
                conn.send(self.codec.dumps(self.codec.ack_frame("authenticated")).decode())
            elif kind in ("subscribe", "unsubscribe"):
                if channel is None:
                    raise WireError(f"{kind}: no known channel")
                self._ws_subscribe(conn, kind, channel, frame)
            else:
                raise WireError(f"a client may send auth, subscribe or unsubscribe, not {kind!r}")
        except (WireError, _HttpError) as e:
            conn.send(self._error_frame(e.message if isinstance(e, _HttpError) else str(e)))

    def _ws_auth(self, conn: _Conn, frame: dict) -> None:
        key = self.codec.key
        if self.codec.wire.request_auth == "bearer":
            session = self._sessions_by_token.get(frame.get(key("ws", "token")) or "")
            if session is None:
                raise _HttpError(401, "UNAUTHORIZED", "unknown token")
        else:
            session = self._session_for_signature(
                "GET", self.codec.wire.routes.websocket, str(frame.get(key("ws", "public_key"), "")),
                str(frame.get(key("ws", "timestamp"), "")), str(frame.get(key("ws", "signature"), "")), b"")
        if session.expires_ns <= time.time_ns():
            raise _HttpError(401, "SESSION_EXPIRED", "the session has expired")
        conn.user = session.address

    def _ws_subscribe(self, conn: _Conn, kind: str, channel: str, frame: dict) -> None:
        pair_id = frame.get(self.codec.key("ws", "trading_pair_id"))
        if channel in ("orderbook", "trades", "orders") and pair_id != self.exchange.pair.id:
            raise WireError(f"{channel}: unknown or missing tradingPairId")
        if channel in ("orders", "balances") and conn.user is None:
            raise WireError(f"{channel}: authenticate first")
        if kind == "unsubscribe":
            conn.channels.discard(channel)
            return
        conn.channels.add(channel)
        conn.send(self.codec.dumps(self.codec.ack_frame("subscribed", channel, trading_pair_id=pair_id)).decode())
        if channel == "orderbook":
            bids, asks, sequence = self.exchange.book_state()
            depth = self.codec.wire.book_depth
            p = self.exchange.pair
            conn.send(self.codec.dumps(self.codec.book_frame("snapshot", p.id, bids[:depth], asks[:depth], sequence,
                                                             time.time_ns(), p.base_decimals,
                                                             p.quote_decimals)).decode())

    def _broadcast(self, channel: str, text: str, user: str | None = None) -> None:
        for conn in self._conns:
            if channel in conn.channels and (user is None or conn.user == user):
                conn.send(text)

    def _on_book(self, bids: list[Level], asks: list[Level], sequence: int, ts_ns: int) -> None:
        p = self.exchange.pair
        self._last_book_frame = self.codec.dumps(self.codec.book_frame(
            "update", p.id, bids, asks, sequence, ts_ns, p.base_decimals, p.quote_decimals)).decode()
        self._broadcast("orderbook", self._last_book_frame)

    def _on_trade(self, trade: Trade, quantity_raw: int) -> None:
        self._broadcast("trades", self.codec.dumps(self.codec.trade_frame(trade, quantity_raw)).decode())

    def _on_order(self, owner: str, order: Order) -> None:
        self._broadcast("orders", self.codec.dumps(self.codec.order_frame(order)).decode(), user=owner)

    # -- faults ----------------------------------------------------------------------------------

    async def _fault_endpoint(self, request: web.Request) -> web.Response:
        try:
            switches = self.codec.loads(await request.read(), "fault")
            if not isinstance(switches, dict):
                raise WireError("fault: expected a JSON object of switches")
            return self._json({"applied": self.apply_fault(switches)})
        except (WireError, ValueError) as e:
            return self._json({"error": str(e)}, 400)

    def apply_fault(self, switches: dict[str, Any]) -> list[str]:
        """Validate every switch, then apply them (see the module docstring)."""
        unknown = sorted(set(switches) - set(FAULT_SWITCHES))
        if unknown or not switches:
            raise ValueError(f"unknown or no fault switches {unknown}; known: {list(FAULT_SWITCHES)}")
        numbers = {}
        for name in ("refuse_ws_ms", "http_5xx", "http_429", "retry_after_s", "slow_ms", "slow_requests",
                     "stale_sequence", "junk_frames"):
            value = switches.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e9:
                    raise ValueError(f"{name}: must be a non-negative number")
                numbers[name] = value
        for name in ("drop_ws", "skip_sequence", "expire_tokens"):
            if not isinstance(switches.get(name, False), bool):
                raise ValueError(f"{name}: must be a boolean")
        error_text = switches.get("error_frame")
        if error_text is not None and not isinstance(error_text, str):
            raise ValueError("error_frame: must be a string")
        route = switches.get("slow_route")
        if route is not None and route not in Routes.__struct_fields__:
            raise ValueError(f"slow_route: must be one of {list(Routes.__struct_fields__)}")
        f = self._faults
        for name in ("http_5xx", "http_429", "slow_requests"):
            if name in numbers:
                f[name] = int(numbers[name])
        if "retry_after_s" in numbers:
            f["retry_after_s"] = float(numbers["retry_after_s"])
        if "slow_ms" in numbers:
            f["slow_ms"] = float(numbers["slow_ms"])
            f["slow_requests"] = max(f["slow_requests"], 1) if "slow_requests" not in numbers else f["slow_requests"]
            f["slow_route"] = route
        if "refuse_ws_ms" in numbers:
            self._refusing_ws_until = time.monotonic() + numbers["refuse_ws_ms"] / 1000
        if switches.get("expire_tokens"):
            now = time.time_ns()
            for session in (*self._sessions_by_token.values(), *self._sessions_by_key.values()):
                session.expires_ns = now
        if switches.get("skip_sequence"):
            self.exchange.book_sequence += 1
        for _ in range(int(numbers.get("stale_sequence", 0))):
            if self._last_book_frame is not None:
                self._broadcast("orderbook", self._last_book_frame)
        for i in range(int(numbers.get("junk_frames", 0))):
            for conn in self._conns:
                conn.send(_junk_frame(i, self.exchange.pair.id))
        if error_text is not None:
            for conn in self._conns:
                conn.send(self._error_frame(error_text))
        if switches.get("drop_ws"):
            for conn in list(self._conns):
                conn.transport.close()
        applied = [n for n in FAULT_SWITCHES if n in switches and switches[n] is not False]
        log.info("fault injected: %s", switches)
        return applied


_JUNK = [
    '{"type":"update","channel":"orderbook","tradingPairId":"PAIR","sequence":',  # cut short
    "not json at all",
    "[1, 2, 3]",
    '{"type":"update","channel":"orderbook","tradingPairId":"PAIR","sequence":"x","bids":[["a","b"]]}',
    '{"type":"update","channel":"orderbook","tradingPairId":"PAIR","sequence":-1,"bids":{"price":1}}',
    '{"type":"event","channel":"trades","tradingPairId":"PAIR","data":{"price":"1e999","quantity":"-2"}}',
    '{"type":"event","channel":"orders","orderId":7,"eventType":"FILLED","side":"SIDEWAYS"}',
    '{"type":"nonsense"}',
    '{"type":"update","channel":"orderbook","tradingPairId":"PAIR","bids":' + "[" * 3000 + "]" * 3000 + "}",
]


def _junk_frame(i: int, pair_id: str) -> str:
    return _JUNK[i % len(_JUNK)].replace("PAIR", pair_id)


def _seconds(wait: float) -> str:
    """Retry-After is whole seconds (RFC 9110), at least 1."""
    return str(max(1, math.ceil(wait)))


def _query_int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise _HttpError(400, "INVALID_REQUEST", f"{name} must be an integer in 1..10000")
    return int(text)


def _is_address(text: str) -> bool:
    return len(text) == 42 and text[:2] == "0x" and all(c in "0123456789abcdefABCDEF" for c in text[2:])


# -- in-process runner --------------------------------------------------------------------------


def dev_key(seed: int, role: str = "dev") -> bytes:
    """A local wallet's private key: public knowledge for a seed, so tests and the CLI agree on it."""
    counter = 0
    while True:
        key = hashlib.sha256(f"flashmm-monaco-local/{seed}/{role}/{counter}".encode()).digest()
        if 0 < int.from_bytes(key, "big") < 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141:
            return key
        counter += 1


DEV_FUNDS = (Decimal(100_000), Decimal(100_000))  # base, quote the dev wallet starts with


class MonacoLocalThread:
    """A local Monaco in its own thread and loop, for tests and `flashmm parity`:
    `with MonacoLocalThread(tape) as venue:` then connect to `venue.url`."""

    def __init__(self, tape, exchange_config: ExchangeConfig | None = None, server_config: ServerConfig | None = None,
                 wire: Wire | None = None) -> None:
        self.exchange_config = exchange_config or ExchangeConfig()
        self.dev = EvmSigner(dev_key(self.exchange_config.seed))
        self.exchange_config.funded.setdefault(self.dev.address, DEV_FUNDS)
        self._tape, self._server_config, self._wire = tape, server_config or ServerConfig(), wire
        self.server: LocalMonaco | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> MonacoLocalThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="monaco-local", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.server = LocalMonaco(LocalExchange(self._tape, self.exchange_config), self._server_config, self._wire)
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        self._thread = None

    def call(self, fn: Callable[[LocalMonaco], Any]) -> Any:
        """`fn(server)` on the venue's loop (its state is not thread-safe); returns its result."""
        async def run() -> Any:
            return fn(self.server)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def fault(self, **switches: Any) -> list[str]:
        return self.call(lambda server: server.apply_fault(switches))

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def pair(self):
        return self.server.exchange.pair

    @property
    def failure(self) -> BaseException | None:
        return self.server.failure if self.server else None


# -- the `flashmm monaco-local` command ----------------------------------------------------------


def run_monaco_local(
    *, catalog: str | Path, host: str = "127.0.0.1", port: int = 8080, seed: int = 0, key_file: Path,
    start: str | None = None, end: str | None = None, speed: float = 1.0, maker_fee_bps: str = "0",
    taker_fee_bps: str = "5", records: Path | None = None, wire: Wire | None = None, requests_per_s: float = 50.0,
    match_delay_ms: float = 0.0, announce: Callable[[str], None] = lambda text: print(text, flush=True),
) -> int:
    """Serve a local Monaco replaying `catalog` until SIGINT or SIGTERM; returns the exit status."""
    from data.catalog import open_tape, parse_time

    tape = open_tape(catalog)
    dev = EvmSigner(dev_key(seed))
    config = ExchangeConfig(seed=seed, start_ns=parse_time(start, tape, "--start"),
                            end_ns=parse_time(end, tape, "--end"),
                            speed=speed, maker_fee_bps=_bps(maker_fee_bps, "--maker-fee-bps"),
                            taker_fee_bps=_bps(taker_fee_bps, "--taker-fee-bps"), records_dir=records,
                            funded={dev.address: DEV_FUNDS})
    exchange = LocalExchange(tape, config)
    server = LocalMonaco(exchange, ServerConfig(host=host, port=port, requests_per_s=requests_per_s,
                                                burst=int(2 * requests_per_s), match_delay_ms=match_delay_ms), wire)
    return asyncio.run(_serve(server, dev, key_file, tape.path, records, announce))


async def _serve(server: LocalMonaco, dev: EvmSigner, key_file: Path, catalog: Path, records: Path | None,
                 announce: Callable[[str], None]) -> int:
    from adapters.sei.localnet.server import write_key_file

    try:
        await server.start()
    except OSError as e:
        raise ValueError(f"cannot listen on {server.config.host}:{server.config.port}: {e.strerror}") from None
    try:
        write_key_file(Path(key_file).expanduser(), dev_key(server.exchange.config.seed))
    except OSError as e:
        await server.stop()
        raise ValueError(f"cannot write the key file {key_file}: {e.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pair = server.exchange.pair
    announce(
        f"local Monaco serving {server.url} (REST) and {server.ws_url}\n"
        f"  pair         {pair.symbol} ({pair.id}), tick {pair.tick_size}, lot {pair.lot_size}\n"
        f"  dev wallet   {dev.address} ({DEV_FUNDS[0]} {pair.base_token}, {DEV_FUNDS[1]} {pair.quote_token})\n"
        f"  dev key file {Path(key_file).expanduser()}\n"
        f"  the market   {catalog}, replayed from {iso(server.exchange.tape_origin_ns)}\n"
        + (f"  records      {records}/orders.jsonl, fills.jsonl\n" if records else "")
        + "stop with Ctrl-C"
    )
    await stop.wait()
    await server.stop()
    announce(f"local Monaco stopped after tape block {server.exchange.tape_index}")
    return 0 if server.failure is None else 1


def _bps(text: str, flag: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{flag} = {text!r} is not a number of basis points like 5") from None
    if not value.is_finite() or not 0 <= value <= 10_000:
        raise ValueError(f"{flag} = {text!r} must be between 0 and 10000 basis points")
    return value
