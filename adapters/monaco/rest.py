"""Monaco's REST API over aiohttp: authentication, the client's own rate limit, and honest errors.

Every call goes through `call(route, ...)` with a route name from `wire.Routes`. Around it:

- a token bucket (`requests_per_s`, `burst`) keeps this client under the venue's limit on its own;
  a 429 closes the bucket for the venue's `Retry-After` (or an exponential backoff with seeded
  jitter when it names none), so a burst of 429s produces one wait, never a storm of retries;
- a session about to expire is refreshed first, and a 401 triggers one fresh login and one retry;
- idempotent calls (reads, cancels) are retried on connection errors, timeouts, 5xx and 429,
  a bounded number of times; a create or replace is never re-sent (it could fill twice): its
  failure is raised as `FateUnknown` or `RateLimited`/`NotSent`/`Rejected` for the caller to decide.

`sent_ns` of a call's trace is when its request headers went on the wire (aiohttp's
`on_request_headers_sent`): the execution client measures tick-to-order with it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp

from adapters.monaco.auth import MonacoAuth
from adapters.monaco.errors import AuthFailed, FateUnknown, NotSent, RateLimited, Rejected, VenueError
from adapters.monaco.wire import Codec, WireError

log = logging.getLogger(__name__)


class TokenBucket:
    """`rate` requests a second, up to `burst` at once; `hold(s)` closes it for s seconds."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("requests_per_s must be > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.closed_until = 0.0
        self.waits = 0

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            if now < self.closed_until:
                self.waits += 1
                await asyncio.sleep(self.closed_until - now)
                continue
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            self.waits += 1
            await asyncio.sleep((1 - self.tokens) / self.rate)

    def hold(self, seconds: float) -> None:
        self.closed_until = max(self.closed_until, time.monotonic() + seconds)
        self.tokens = 0.0

    @property
    def cooling_s(self) -> float:
        return max(0.0, self.closed_until - time.monotonic())


class MonacoRest:
    def __init__(
        self, base_url: str, codec: Codec, *, timeout_s: float = 5.0, requests_per_s: float = 20.0, burst: int = 40,
        max_retries: int = 4, backoff_base_s: float = 0.25, backoff_max_s: float = 30.0, seed: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.codec = codec
        self.auth: MonacoAuth | None = None
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.bucket = TokenBucket(requests_per_s, burst)
        self.max_retries = max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._backoff_level = 0  # consecutive 429s without a Retry-After
        self.on_sent: Callable[[str, int], None] | None = None  # (route, sent_ns) as its headers go out
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0, "server_errors": 0, "timeouts": 0,
                      "unauthorized": 0}

    async def start(self) -> None:
        if self._session is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(self._headers_sent)
            self._session = aiohttp.ClientSession(timeout=self.timeout, trace_configs=[trace],
                                                  connector=aiohttp.TCPConnector(limit=16, keepalive_timeout=30))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _headers_sent(self, session, ctx, params) -> None:
        request_ctx = ctx.trace_request_ctx
        if isinstance(request_ctx, dict):
            sent_ns = request_ctx["sent_ns"] = time.time_ns()
            if self.on_sent is not None:
                self.on_sent(request_ctx.get("route", ""), sent_ns)

    # -- one call ---------------------------------------------------------------------------------

    async def call(
        self, route: str, *, params: dict[str, str] | None = None, query: dict[str, str] | None = None,
        body: Any = None, auth: bool = True, idempotent: bool | None = None, refreshing: bool = False,
    ) -> Any:
        """JSON of a 2xx answer; raises the errors of `adapters.monaco.errors`."""
        if self._session is None:
            raise NotSent("the REST client is not started")
        method, path = self.codec.wire.method_path(route, **(params or {}))
        if idempotent is None:
            idempotent = method in ("GET", "DELETE")
        path_q = f"{path}?{urlencode(query)}" if query else path
        data = b"" if body is None else self.codec.dumps(body)
        attempt = 0
        relogged = False
        while True:
            await self.bucket.take()
            headers = {"Content-Type": "application/json"} if body is not None else {}
            generation = 0
            if auth:
                if self.auth is None:
                    raise AuthFailed("this client has no wallet key: it cannot call authenticated endpoints")
                if not refreshing:
                    await self.auth.ensure_fresh(self)
                generation = self.auth.generation
                headers.update(self.auth.headers(method, path_q, data))
            ctx = {"route": route}
            self.stats["requests"] += 1
            try:
                async with self._session.request(method, self.base_url + path_q, data=data or None, headers=headers,
                                                 trace_request_ctx=ctx) as resp:
                    status = resp.status
                    payload = await resp.read()
                    retry_after = resp.headers.get(self.codec.wire.retry_after_header)
            except aiohttp.ClientConnectorError as exc:
                error: VenueError = NotSent(f"{method} {path}: cannot connect ({exc.os_error or exc})")
            except TimeoutError:
                self.stats["timeouts"] += 1
                error = FateUnknown(f"{method} {path}: no answer within {self.timeout.total:g} s")
            except (aiohttp.ClientError, OSError) as exc:
                error = (NotSent if "sent_ns" not in ctx else FateUnknown)(
                    f"{method} {path}: connection lost ({type(exc).__name__})")
            else:
                if 200 <= status < 300:
                    self._backoff_level = 0
                    if not payload:
                        return {}
                    try:
                        return self.codec.loads(payload, f"{method} {path}")
                    except WireError as exc:
                        raise FateUnknown(str(exc)) from None
                api = self.codec.read_error(status, payload)
                if status == 401 and auth and not refreshing:
                    self.stats["unauthorized"] += 1
                    if relogged:
                        raise AuthFailed(f"{method} {path}: 401 after a fresh login: {api.message}")
                    relogged = True
                    await self.auth.relogin(self, generation)
                    continue  # the same request once more, under the new session
                if status == 401:
                    raise AuthFailed(f"{method} {path}: {api.message}")
                if status == 429:
                    self.stats["rate_limited"] += 1
                    wait = self._retry_after(retry_after)
                    self.bucket.hold(wait)
                    log.warning("Monaco rate limit (429) on %s %s: waiting %.2f s", method, path, wait)
                    error = RateLimited(wait, api.message)
                elif status >= 500:
                    self.stats["server_errors"] += 1
                    error = FateUnknown(f"{method} {path}: HTTP {status} {api.code}: {api.message}")
                else:
                    raise Rejected(api)
            if not idempotent or attempt >= self.max_retries:
                raise error
            attempt += 1
            self.stats["retries"] += 1
            if not isinstance(error, RateLimited):  # a 429 already holds the bucket
                await asyncio.sleep(self._backoff(attempt))

    def _retry_after(self, header: str | None) -> float:
        try:
            wait = float(header) if header is not None else None
        except ValueError:
            wait = None
        if wait is None or not 0 <= wait <= 3600:
            self._backoff_level += 1
            return self._backoff(self._backoff_level)
        return max(wait, 0.05)

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return base * (0.5 + self._rng.random() / 2)
