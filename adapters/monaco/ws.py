"""Monaco's WebSocket (`/ws`, [TS] NETWORK_PRESETS) over aiohttp, kept connected.

One socket carries every channel of a node: the public book and trades, and, once authenticated,
our orders. After each (re)connection it authenticates (when it has a session), sends its
subscriptions again, and calls `on_connected`, which the venue uses to reconcile: what happened
while the socket was down is read back from REST, so a dropped socket never costs a fill.

Reconnects back off exponentially with seeded jitter ([TS] mach1 WEBSOCKET_CONFIG: 1 s doubling to
30 s; ours starts lower, a local venue comes back at once). Frames are handed over raw with their
receive time (`time.time_ns()` as the frame is read, the node's one clock); parsing, and dropping
junk, is the venue's job. A binary frame is junk too, counted and dropped.

After each frame the reader yields to the event loop. aiohttp hands over frames already buffered
without suspending, so a burst of frames (tens at once on a busy tape) would otherwise run back to
back, every book update's reaction included, while the orders the first reaction sent wait behind
them: the execution client's send tasks start on the loop's next pass. Measured on the real
ETHUSDT tape, the busiest stretch of the loop was such a burst (20 ms).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp

from adapters.monaco.errors import AuthFailed, VenueError
from adapters.monaco.wire import Codec, WireError

log = logging.getLogger(__name__)

FrameHandler = Callable[[str, int], None]


class MonacoSocket:
    def __init__(
        self, url: str, codec: Codec, on_frame: FrameHandler, *, heartbeat_s: float = 10.0,
        reconnect_base_s: float = 0.2, reconnect_max_s: float = 30.0, auth_timeout_s: float = 5.0, seed: int = 0,
    ) -> None:
        self.url = url
        self.codec = codec
        self.on_frame = on_frame
        self.heartbeat_s = heartbeat_s
        self.reconnect_base_s, self.reconnect_max_s = reconnect_base_s, reconnect_max_s
        self.auth_timeout_s = auth_timeout_s
        self._rng = random.Random(seed)
        self.subscriptions: list[dict] = []
        # Called before the subscriptions go out (None: a public socket). Returns the auth frame's
        # fields, or raises AuthFailed; `refresh_auth` is awaited after the venue refused one.
        self.auth_fields: Callable[[], dict] | None = None
        self.refresh_auth: Callable[[], Awaitable[None]] | None = None
        self.on_connected: list[Callable[[bool], Awaitable[None]]] = []  # arg: is this a reconnect
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self.down_since: float | None = None  # monotonic time the socket went down, while it is
        self.failure: BaseException | None = None  # why the reconnecting loop died, if it did
        self.stats = {"connects": 0, "reconnects": 0, "frames": 0, "binary_frames": 0}

    async def start(self) -> None:
        """Connect (raising if the first connection fails), then keep the socket up in the background."""
        self._session = aiohttp.ClientSession()
        try:
            await self._connect(reconnect=False)
        except BaseException:
            await self._session.close()
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name="monaco-ws")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("the websocket loop died: %r", self.failure)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.connected.clear()

    async def send(self, frame: dict) -> None:
        if self._ws is None or self._ws.closed:
            raise VenueError("the websocket is not connected")
        await self._ws.send_str(self.codec.dumps(frame).decode())

    async def subscribe(self, frame: dict) -> None:
        """Subscribe now (if connected) and after every reconnection."""
        self.subscriptions.append(frame)
        if self._ws is not None and not self._ws.closed:
            await self.send(frame)

    async def drop(self) -> None:
        """Close the socket as if the network had (tests, and a venue that stopped answering)."""
        if self._ws is not None:
            await self._ws.close()

    # -- internals --------------------------------------------------------------------------------

    async def _connect(self, reconnect: bool) -> None:
        url = self.url
        if self.auth_fields is not None and self.codec.wire.ws_auth == "query":
            url = f"{url}{'&' if '?' in url else '?'}token={self.auth_fields().get('token', '')}"
        self._ws = await self._session.ws_connect(url, heartbeat=self.heartbeat_s, autoping=True,
                                                  max_msg_size=16 << 20)
        try:
            if self.auth_fields is not None and self.codec.wire.ws_auth == "frame":
                await self._authenticate()
            for frame in self.subscriptions:
                await self.send(frame)
        except BaseException:
            await self._ws.close()
            raise
        self.stats["connects"] += 1
        self.down_since = None
        self.connected.set()
        for callback in self.on_connected:
            await callback(reconnect)

    async def _authenticate(self) -> None:
        for attempt in range(2):
            await self.send(self.codec.auth_frame(**self.auth_fields()))
            answer = await self._ws.receive(timeout=self.auth_timeout_s)
            if answer.type != aiohttp.WSMsgType.TEXT:
                raise VenueError(f"websocket closed during authentication ({answer.type.name})")
            try:
                kind, _, frame = self.codec.read_frame(answer.data)
            except WireError as exc:
                raise VenueError(f"websocket authentication: {exc}") from None
            if kind == "authenticated":
                return
            reason = self.codec.read_error_frame(frame) if kind == "error" else f"unexpected {kind!r} frame"
            if attempt == 0 and self.refresh_auth is not None:
                log.warning("websocket authentication refused (%s): refreshing the session", reason)
                await self.refresh_auth()
                continue
            raise AuthFailed(f"websocket authentication refused: {reason}")

    async def _run(self) -> None:
        attempt = 0
        while True:
            await self._read()
            self.connected.clear()
            if self.down_since is None:
                self.down_since = time.monotonic()
            while True:
                attempt += 1
                delay = min(self.reconnect_max_s, self.reconnect_base_s * 2 ** min(attempt - 1, 16))
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
                try:
                    await self._connect(reconnect=True)
                except (aiohttp.ClientError, OSError, TimeoutError, VenueError) as exc:
                    log.warning("websocket reconnect %d failed: %s", attempt, _reason(exc))
                    continue
                self.stats["reconnects"] += 1
                log.info("websocket reconnected after %d attempt(s)", attempt)
                attempt = 0
                break

    async def _read(self) -> None:
        ws = self._ws
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.stats["frames"] += 1
                    try:
                        self.on_frame(msg.data, time.time_ns())
                    except Exception:  # noqa: BLE001 - a handler's bug must not stop the socket
                        log.exception("a websocket frame's handler failed")
                    await asyncio.sleep(0)  # what this frame's reaction scheduled runs before the next frame
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.stats["binary_frames"] += 1  # Monaco's frames are JSON text: junk
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("websocket read failed: %r", exc)
        log.warning("websocket to %s closed (code %s)", self.url.split("?", 1)[0], ws.close_code)


def _reason(exc: BaseException) -> str:
    """Why a connection failed, without the request's headers that aiohttp's errors carry."""
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else f": {exc}" if isinstance(exc, VenueError)
                                      else "")
