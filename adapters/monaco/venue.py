"""One node's connection to Monaco, shared by its data and execution clients.

`MonacoVenue` owns the REST client, the session (when the node trades), the one WebSocket and the
instrument. It parses every frame once (`wire.Codec`) and hands the result to the listeners: book
and trades to the data client, our orders to the execution client. A frame that does not parse is
counted, logged and dropped; a listener that raises is logged and does not stop the socket.

It also carries what the two clients must share: the venue's own best bid and ask (the execution
client's post-only check reads them) and our resting orders (the data client leaves them out of
the book it publishes). The venue is lost, and the node stops, when the WebSocket has been down
for `lost_after_s` with every reconnect failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from urllib.parse import urlsplit

from adapters.monaco.auth import MonacoAuth
from adapters.monaco.errors import VenueError
from adapters.monaco.keys import EvmSigner
from adapters.monaco.providers import MonacoInstrumentProvider
from adapters.monaco.rest import MonacoRest
from adapters.monaco.wire import Book, Codec, Order, Trade, Wire, WireError
from adapters.monaco.ws import MonacoSocket

log = logging.getLogger(__name__)

# Whoever must keep secrets out of its output (the node's log redaction) registers here; every
# token and session key the auth layer receives is handed to each, before it is used.
SECRET_SINKS: list[Callable[[str], None]] = []


def _to_sinks(secret: str) -> None:
    for sink in SECRET_SINKS:
        sink(secret)


def ws_url_for(api_url: str, path: str) -> str:
    """[TS]: the WebSocket is the API host with ws(s):// and `/ws`."""
    parts = urlsplit(api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}"


class MonacoVenue:
    def __init__(
        self, *, api_url: str, ws_url: str, symbol: str, instrument_id: str, wire: Wire, chain_id: int,
        client_id: str, requests_per_s: float, burst: int, timeout_s: float, lost_after_s: float, seed: int = 0,
    ) -> None:
        self.codec = Codec(wire)
        self.api_url = api_url
        self.chain_id = chain_id
        self.client_id = client_id
        self.rest = MonacoRest(api_url, self.codec, timeout_s=timeout_s, requests_per_s=requests_per_s, burst=burst,
                               seed=seed)
        self.socket = MonacoSocket(ws_url or ws_url_for(api_url, wire.routes.websocket), self.codec, self._on_frame,
                                   seed=seed)
        self.socket.on_connected.append(self._socket_connected)
        self.provider = MonacoInstrumentProvider(self, symbol, instrument_id)
        self.auth: MonacoAuth | None = None
        self.lost_after_s = lost_after_s
        self.book_listeners: list[Callable[[Book, int], None]] = []
        self.trade_listeners: list[Callable[[Trade, int], None]] = []
        self.order_listeners: list[Callable[[Order, int], None]] = []
        # Called once the book listeners are done with an update: the execution client sends then
        # what the update's reaction asked for, before the socket reads the next frame.
        self.book_handled: list[Callable[[], None]] = []
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []  # run as tasks after each reconnection
        self._users = 0
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task | None = None
        self.failure: BaseException | None = None
        self.last_height = 0  # the book's last sequence (the node's status calls it a height)
        self.last_received_ns = 0  # any frame
        # The receive time of the book update being handled, while it is: a reaction that runs
        # inside it (the node's direct dispatch) is that update's, which tick-to-order measures.
        self.handling_book_ns: int | None = None
        self.blocks_seen = 0  # book messages
        self.malformed = 0
        self.error_frames = 0
        # Shared between the clients: the venue's best prices, and our orders resting on the book.
        self.best_bid: Decimal | None = None
        self.best_ask: Decimal | None = None
        self.own: dict[str, tuple[str, Decimal, Decimal]] = {}  # client order id -> (side, price, remaining)

    @property
    def owner(self) -> str | None:
        return self.auth.signer.address if self.auth else None

    def attach_signer(self, signer: EvmSigner, *, refresh_before_s: float) -> None:
        """Give the venue the wallet it logs in with (before `start`; data-only nodes never do)."""
        if self.auth is not None and self.auth.signer.address != signer.address:
            raise VenueError("a venue connection can trade for one wallet only")
        self.auth = MonacoAuth(self.codec, signer, chain_id=self.chain_id, client_id=self.client_id,
                               refresh_before_s=refresh_before_s, secret_sink=_to_sinks)
        self.rest.auth = self.auth

    def own_levels(self) -> dict[tuple[str, Decimal], Decimal]:
        levels: dict[tuple[str, Decimal], Decimal] = {}
        for side, price, remaining in self.own.values():
            levels[(side, price)] = levels.get((side, price), Decimal(0)) + remaining
        return levels

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            self._users += 1
            if self._users > 1:
                return
            try:
                await self._start()
            except BaseException as exc:
                self._users -= 1
                if isinstance(exc, Exception):
                    self.failure = exc
                await self.socket.stop()
                await self.rest.close()
                raise

    async def _start(self) -> None:
        await self.rest.start()
        if self.auth is not None:
            await self.auth.login(self.rest)
        await self.provider.initialize()
        pair = self.provider.pair
        subs = [self.codec.subscribe("orderbook", pair.id, depth=self.codec.wire.book_depth),
                self.codec.subscribe("trades", pair.id)]
        if self.auth is not None:
            self.socket.auth_fields = lambda: self.auth.ws_auth_fields(self.codec.wire.routes.websocket)
            self.socket.refresh_auth = lambda: self.auth.relogin(self.rest, self.auth.generation)
            subs.append(self.codec.subscribe("orders", pair.id))
        self.socket.subscriptions = subs
        await self.socket.start()
        self._watch = asyncio.get_running_loop().create_task(self._watch_socket(), name="monaco-venue-watch")

    async def stop(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            if self._watch is not None:
                self._watch.cancel()
            await self.socket.stop()
            if self.auth is not None:
                await self.auth.revoke(self.rest)
            await self.rest.close()

    async def _watch_socket(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.failure is not None:
                return
            down = self.socket.down_since
            if self.socket.failure is not None:
                self.failure = self.socket.failure
            elif down is not None and time.monotonic() - down > self.lost_after_s:
                self.failure = VenueError(f"the WebSocket has been down for over {self.lost_after_s:g} s")
            if self.failure is not None:
                log.error("%s: this node no longer sees the venue", self.failure)

    async def _socket_connected(self, reconnect: bool) -> None:
        if reconnect:
            for callback in self.on_reconnect:
                asyncio.get_running_loop().create_task(callback(), name="monaco-reconcile")

    # -- frames -----------------------------------------------------------------------------------

    def _on_frame(self, text: str, received_ns: int) -> None:
        self.last_received_ns = received_ns
        codec = self.codec
        try:
            kind, channel, frame = codec.read_frame(text)
            if kind == "error":
                self.error_frames += 1
                log.warning("Monaco sent an error frame: %s", codec.read_error_frame(frame))
                return
            if channel == "orderbook" and kind in ("snapshot", "update"):
                book = codec.read_book_frame(kind, frame)
                self.blocks_seen += 1
                if book.sequence is not None:
                    self.last_height = book.sequence
                self.handling_book_ns = received_ns
                try:
                    self._deliver(self.book_listeners, book, received_ns)
                finally:
                    self.handling_book_ns = None
                for done in list(self.book_handled):
                    done()
            elif channel == "trades" and kind == "event":
                self._deliver(self.trade_listeners, codec.read_trade_frame(frame), received_ns)
            elif channel == "orders" and kind == "event":
                self._deliver(self.order_listeners, codec.read_order_frame(frame), received_ns)
        except WireError as exc:
            self.malformed += 1
            if self.malformed <= 20 or self.malformed % 100 == 0:
                log.warning("dropped a malformed frame from Monaco (%d so far): %s", self.malformed, exc)

    @staticmethod
    def _deliver(listeners: list, value, received_ns: int) -> None:
        for listener in list(listeners):
            try:
                listener(value, received_ns)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the socket
                log.exception("listener %r failed", listener)

    def stats(self) -> dict[str, int]:
        return {**self.rest.stats, "throttled": self.rest.bucket.waits, "reconnects": self.socket.stats["reconnects"],
                "malformed": self.malformed, "error_frames": self.error_frames,
                **({f"auth_{k}": v for k, v in self.auth.stats.items()} if self.auth else {})}
