"""The local Monaco over real sockets, driven by the adapter's own REST, auth and WebSocket clients:
login in every supported dialect, tokens that rotate and expire, the venue's rate limit and the
client's backoff, orders matched against the replayed tape with escrowed balances, the book stream
(snapshot, consecutive sequences, gaps and stale sequences on demand), and junk in both directions."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from decimal import Decimal

import aiohttp
import pytest

from adapters.monaco.auth import MonacoAuth
from adapters.monaco.errors import AuthFailed, FateUnknown, RateLimited, Rejected
from adapters.monaco.keys import EvmSigner
from adapters.monaco.local.exchange import ExchangeConfig
from adapters.monaco.local.server import FAULT_PATH, MonacoLocalThread, ServerConfig, dev_key
from adapters.monaco.rest import MonacoRest
from adapters.monaco.wire import Codec, Wire
from adapters.monaco.ws import MonacoSocket
from data.catalog import open_tape

SAMPLE = open_tape("data/sample")


class Client:
    """The adapter's REST client logged in as the local dev wallet."""

    def __init__(self, venue: MonacoLocalThread, wire: Wire | None = None, signer: EvmSigner | None = None,
                 **rest) -> None:
        self.codec = Codec(wire)
        self.secrets: list[str] = []  # what the auth layer handed over to be kept out of logs
        self.rest = MonacoRest(venue.url, self.codec, **rest)
        self.rest.auth = MonacoAuth(self.codec, signer or venue.dev, chain_id=1328, client_id="flashmm-tests",
                                    secret_sink=self.secrets.append)
        self.pair = venue.pair

    async def __aenter__(self) -> Client:
        await self.rest.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.rest.close()

    async def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        return {b.symbol: (b.available, b.locked) for b in self.codec.read_balances(await self.rest.call("balances"))}

    async def book(self):
        return self.codec.read_book_snapshot(await self.rest.call("orderbook", params={"pair_id": self.pair.id},
                                                                  auth=False), self.pair.id)

    async def place(self, side: str, price: Decimal, qty: Decimal):
        return self.codec.read_ack(await self.rest.call(
            "create_order", body=self.codec.create_order(self.pair.id, side, price, qty)))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


@pytest.mark.parametrize("request_auth", ["bearer", "session_key"])
@pytest.mark.parametrize("login_signature", ["personal_sign", "eip712"])
def test_login_in_every_dialect_and_a_foreign_wallet_is_refused(request_auth, login_signature):
    wire = Wire(request_auth=request_auth, login_signature=login_signature)
    with MonacoLocalThread(SAMPLE, wire=wire) as venue:
        async def main():
            async with Client(venue, wire) as c:
                assert await c.balances() == {"SEI": (Decimal(100_000), 0), "USDC": (Decimal(100_000), 0)}
                assert c.rest.auth.stats["logins"] == 1
                # What the node must never log was handed to the secret sink at once.
                assert len(c.secrets) == (2 if request_auth == "bearer" else 1)
                assert all(len(s) >= 32 for s in c.secrets)
            # A wallet signing for another address: the venue recovers the signer and refuses it.
            impostor = EvmSigner(dev_key(99))
            impostor.address = venue.dev.address  # claims the dev wallet, signs with its own key
            async with Client(venue, wire, signer=impostor) as c:
                with pytest.raises(AuthFailed, match="INVALID_SIGNATURE|not the wallet's"):
                    await c.balances()
        run(main())


def test_bearer_tokens_rotate_on_refresh_and_the_old_ones_die():
    with MonacoLocalThread(SAMPLE, server_config=ServerConfig(token_ttl_s=3.0)) as venue:
        async def main():
            async with Client(venue) as c:
                c.rest.auth.refresh_before_s = 2.5  # refresh once less than 2.5 s of the 3 s remain
                await c.balances()
                old_access, old_refresh = c.secrets
                await asyncio.sleep(0.7)
                await c.balances()
                assert c.rest.auth.stats == {"logins": 1, "refreshes": 1, "relogins": 0}
                assert len(c.secrets) == 4 and old_access not in c.secrets[2:]
                # The replaced tokens are refused by the venue.
                async with aiohttp.ClientSession() as s:
                    async with s.get(venue.url + "/api/v1/accounts/balances",
                                     headers={"Authorization": f"Bearer {old_access}"}) as r:
                        assert r.status == 401
                    async with s.post(venue.url + "/api/v1/auth/refresh", json={"refreshToken": old_refresh}) as r:
                        assert r.status == 401
        run(main())


@pytest.mark.parametrize("request_auth", ["bearer", "session_key"])
def test_a_401_mid_session_logs_in_again_once_and_the_call_goes_through(request_auth):
    wire = Wire(request_auth=request_auth)
    with MonacoLocalThread(SAMPLE, wire=wire) as venue:
        async def main():
            async with Client(venue, wire) as c:
                await c.balances()
                venue.fault(expire_tokens=True)
                results = await asyncio.gather(*(c.balances() for _ in range(5)))  # five 401s at once...
                assert all(r == results[0] for r in results)
                assert c.rest.auth.stats["relogins"] == 1  # ...one fresh login
                assert c.rest.stats["unauthorized"] == 5
        run(main())


def test_the_venue_rate_limit_and_the_client_backs_off_without_a_storm():
    with MonacoLocalThread(SAMPLE, server_config=ServerConfig(requests_per_s=5, burst=5)) as venue:
        async def main():
            async with Client(venue, requests_per_s=1000, burst=1000) as c:
                await asyncio.gather(*(c.rest.call("trading_pairs", auth=False) for _ in range(12)))
                return c.rest.stats
        stats = run(main())
        log = venue.call(lambda s: list(s.requests))
    statuses = [status for _, _, status in log]
    assert statuses.count(200) == 12 and stats["rate_limited"] == statuses.count(429) > 0
    # Whenever the venue said "wait 1 s", nothing more arrived during that second (beyond requests
    # already on their way when the 429 left).
    for t, _, status in log:
        if status == 429:
            assert not [u for u, _, _ in log if t + 0.05 < u < t + 0.95], "the client did not wait"
    assert len(log) <= 12 + 7 + 2 + 0 + 5  # each wave retries only what was refused


def test_429_and_5xx_bursts_retry_reads_and_refuse_writes_honestly():
    with MonacoLocalThread(SAMPLE) as venue:
        async def main():
            async with Client(venue, backoff_base_s=0.05) as c:
                await c.balances()
                venue.fault(http_5xx=2)
                assert (await c.book()).bids  # a read is retried through the burst
                assert c.rest.stats["server_errors"] == 2
                venue.fault(http_5xx=1)
                with pytest.raises(FateUnknown, match="503"):  # a create is never sent twice
                    await c.place("buy", Decimal("0.3"), Decimal("10"))
                venue.fault(http_429=1, retry_after_s=1)
                t0 = time.monotonic()
                with pytest.raises(RateLimited) as err:
                    await c.place("buy", Decimal("0.3"), Decimal("10"))
                assert err.value.retry_after_s == 1.0
                await c.balances()  # the next call waits out the venue's Retry-After
                assert time.monotonic() - t0 >= 0.95
                orders, _ = c.codec.read_orders_page(await c.rest.call(
                    "list_orders", query=c.codec.list_orders_query(c.pair.id, "SUBMITTED", 1, 50)))
                assert orders == []  # neither refused create left an order behind
        run(main())


def test_orders_match_the_tape_with_escrowed_balances():
    with MonacoLocalThread(SAMPLE) as venue:
        async def main():
            async with Client(venue) as c:
                book = await c.book()
                best_bid, best_ask = book.bids[0][0], book.asks[0][0]
                # A resting bid below the market locks quote: price x qty x (1 + taker fee).
                ack = await c.place("buy", best_bid - Decimal("0.0010"), Decimal("100"))
                assert ack.ok and ack.order_status == "SUBMITTED" and ack.total_filled == 0
                usdc = (await c.balances())["USDC"]
                locked = (best_bid - Decimal("0.0010")) * 100 * Decimal("1.0005")
                assert usdc == (Decimal(100_000) - locked, locked)
                # Off the tick, off the lot: refused with the venue's reason, nothing locked.
                with pytest.raises(Rejected, match="INVALID_PRICE"):
                    await c.place("buy", best_bid + Decimal("0.00005"), Decimal("1"))
                with pytest.raises(Rejected, match="INVALID_QUANTITY"):
                    await c.place("buy", best_bid, Decimal("0.05"))
                # A sell through the best bid takes the market's liquidity as taker.
                ack = await c.place("sell", best_bid, Decimal("1"))
                assert ack.ok and ack.order_status == "FILLED" and ack.total_filled == 1
                assert ack.average_fill_price == best_bid
                # Too big for the wallet: a FAILED answer carrying the reason.
                ack = await c.place("buy", best_ask, Decimal("10000000"))
                assert not ack.ok and "INSUFFICIENT_BALANCE" in ack.message
        run(main())
        fills = venue.call(lambda s: s.exchange.fills_of(venue.dev.address))
    assert [(f["side"], f["liquidity"], f["quantity"]) for f in fills] == [("sell", "taker", "1")]


async def collect(venue, codec, seconds: float, fault=None, subscribe=("orderbook",)):
    frames: list[tuple[str, str | None, dict]] = []
    sock = MonacoSocket(venue.ws_url, codec, lambda text, ns: frames.append(codec.read_frame(text)),
                        reconnect_base_s=0.05)
    sock.subscriptions = [codec.subscribe(ch, venue.pair.id) for ch in subscribe]
    await sock.start()
    try:
        await asyncio.sleep(seconds / 2)
        if fault:
            venue.fault(**fault)
        await asyncio.sleep(seconds / 2)
    finally:
        await sock.stop()
    return frames, sock.stats


def test_the_book_stream_is_a_snapshot_then_consecutive_updates_that_rebuild_the_venues_book():
    codec = Codec()
    with MonacoLocalThread(SAMPLE) as venue:
        frames, _ = run(collect(venue, codec, 2.0))
        bids, asks, sequence = venue.call(lambda s: s.exchange.book_state())
    books = [codec.read_book_frame(k, f) for k, ch, f in frames if ch == "orderbook" and k in ("snapshot", "update")]
    assert books[0].kind == "snapshot" and all(b.kind == "update" for b in books[1:]) and len(books) >= 3
    assert [b.sequence for b in books] == list(range(books[0].sequence, books[0].sequence + len(books)))
    rebuilt = {"bids": dict(books[0].bids), "asks": dict(books[0].asks)}
    for b in books[1:]:
        for side, levels in (("bids", b.bids), ("asks", b.asks)):
            for price, qty in levels:
                if qty == 0:
                    rebuilt[side].pop(price)
                else:
                    rebuilt[side][price] = qty
    if books[-1].sequence == sequence:  # no update after the last one received
        assert sorted(rebuilt["bids"].items(), reverse=True) == bids and sorted(rebuilt["asks"].items()) == asks


def test_sequence_faults_show_as_a_gap_and_as_a_repeat():
    codec = Codec()
    with MonacoLocalThread(SAMPLE) as venue:
        gap, _ = run(collect(venue, codec, 2.0, fault={"skip_sequence": True}))
        stale, _ = run(collect(venue, codec, 2.0, fault={"stale_sequence": 2}))
    seqs = [codec.read_book_frame(k, f).sequence for k, ch, f in gap if ch == "orderbook" and k != "subscribed"]
    assert any(b - a == 2 for a, b in zip(seqs, seqs[1:], strict=False))
    seqs = [codec.read_book_frame(k, f).sequence for k, ch, f in stale if ch == "orderbook" and k != "subscribed"]
    assert sum(b == a for a, b in zip(seqs, seqs[1:], strict=False)) == 2


def test_a_dropped_socket_reconnects_and_resubscribes_to_a_fresh_snapshot():
    codec = Codec()
    with MonacoLocalThread(SAMPLE) as venue:
        frames, stats = run(collect(venue, codec, 3.0, fault={"drop_ws": True}))
    assert stats["reconnects"] == 1
    assert [k for k, ch, _ in frames if ch == "orderbook"].count("snapshot") == 2


def test_junk_either_way_never_takes_the_venue_down():
    with MonacoLocalThread(SAMPLE) as venue:
        async def main():
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(venue.ws_url) as ws:
                    for junk in ("", "{", "[]", '{"type":"subscribe"}', '{"type":"subscribe","channel":"orders",'
                                 '"tradingPairId":"x"}', '{"type":"auth","token":"nope"}', "\x00" * 10):
                        await ws.send_str(junk)
                        answer = json.loads((await ws.receive(timeout=5)).data)
                        assert answer["type"] == "error" and answer["error"]
                    await ws.send_bytes(b"\xff\xfe")
                    assert json.loads((await ws.receive(timeout=5)).data)["type"] == "error"
                for body in (b"", b"{", b"[1]", b'{"trading_pair_id": 5}', b"\xff" * 100):
                    async with s.post(venue.url + "/api/v1/auth/challenge", data=body) as r:
                        assert r.status == 400 and "error" in await r.json()
        run(main())
        # The venue answers the junk it is sent, and sends junk on demand: the client counts it.
        codec = Codec()
        frames: list[str] = []

        async def listen():
            sock = MonacoSocket(venue.ws_url, codec, lambda text, ns: frames.append(text))
            sock.subscriptions = [codec.subscribe("orderbook", venue.pair.id)]
            await sock.start()
            venue.fault(junk_frames=9)
            await asyncio.sleep(0.5)
            await sock.stop()
        run(listen())
        assert sum(1 for f in frames if f.startswith("not json")) == 1
        request = urllib.request.Request(venue.url + FAULT_PATH, data=b'{"bogus": 1}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 400
        assert venue.failure is None and run(_still_serves(venue))


async def _still_serves(venue) -> bool:
    async with Client(venue) as c:
        return bool((await c.book()).bids)


def test_the_tape_is_replayed_on_its_own_clock_block_and_real_tapes_alike(tmp_path, busy_tape):
    """The exchange alone, its clock driven by hand: every tape timestamp is applied when due (not
    before), and the venue's book then is the tape's book. On the busy synthetic tape (~400 ms
    blocks) and on the real Binance tape (~100 ms updates, a deep book)."""
    from data.tardis import import_tardis

    real = tmp_path / "ethusdt"
    src = "data/real/binance-ethusdt-perp-20240808"
    import_tardis(book=f"{src}/book.csv.gz", trades=f"{src}/trades.csv.gz", instrument_id="ETH/USDT.BINANCE",
                  price_precision=2, size_precision=3, out=real)
    for tape, seconds, cadence in ((busy_tape, 20, 0.30), (open_tape(real), 5, 0.005)):
        due, compared = replay_by_hand(tape, seconds)
        assert len(due) > 20 and compared > 20
        gaps = sorted(b - a for a, b in zip(due, due[1:], strict=False))
        assert gaps[len(gaps) // 2] / 1e9 > cadence


def replay_by_hand(tape, seconds: float) -> tuple[list[int], int]:
    """Run the tape's first `seconds` through a LocalExchange whose clock starts at 0; returns when
    each tape block was applied and at how many of them the top of book was compared."""
    from adapters.monaco.local.exchange import LocalExchange

    ex = LocalExchange(tape, ExchangeConfig(end_ns=tape.start_ns + int(seconds * 1e9)))
    blocks = [ex._next_block]
    read = ex._read_block
    ex._read_block = lambda: blocks.append(read()) or blocks[-1]
    ex.start_clock(0)
    due, compared = [], 0
    while (when := ex.next_due_ns()) is not None:
        assert ex.apply_due(when - 1) == 0  # nothing is applied before it is due
        assert ex.apply_due(when) == 1
        due.append(when)
        block = blocks[-2]  # the last one applied (the last one read is the next due)
        bids, asks, _ = ex.book_state()
        if block.bids and block.asks and block.bids[0][0] < block.asks[0][0]:
            unit = Decimal(1).scaleb(-tape.instrument.price_precision)
            assert (bids[0][0], asks[0][0]) == (block.bids[0][0] * unit, block.asks[0][0] * unit)
            compared += 1
    # Each was due exactly at its tape time from the first.
    assert due == [b.ts_ns - blocks[0].ts_ns for b in blocks[:-1]]
    return due, compared


def test_a_websocket_that_stays_down_is_a_lost_venue():
    """The venue refuses the node's reconnects for longer than `lost_after_s`: the venue is lost (the
    node then pulls its quotes and exits 1, as on the localnet); a short outage is not."""
    from adapters.monaco.venue import MonacoVenue

    with MonacoLocalThread(SAMPLE) as venue:
        async def main():
            node_side = MonacoVenue(api_url=venue.url, ws_url="", symbol="SEI/USDC", instrument_id="SEI/USDC.MONACO",
                                    wire=Wire(), chain_id=1328, client_id="test", requests_per_s=20, burst=40,
                                    timeout_s=5, lost_after_s=1.5)
            await node_side.start()
            try:
                venue.fault(drop_ws=True, refuse_ws_ms=500)
                await asyncio.sleep(2.5)
                assert node_side.failure is None and node_side.socket.stats["reconnects"] == 1
                venue.fault(drop_ws=True, refuse_ws_ms=5000)
                for _ in range(40):
                    if node_side.failure is not None:
                        break
                    await asyncio.sleep(0.1)
                assert "down for over 1.5 s" in str(node_side.failure)
            finally:
                await node_side.stop()
        run(main())
