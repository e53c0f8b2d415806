"""BlockFeed over a real socket against a scripted CometBFT-like chain of canned blocks built from
real signed txs: live assembly, the block_results fallback, gap and reconnect backfill, and junk
pushes that never crash the feed nor change what it delivers.

Expected blocks are written down from the canned data (the plain-text events each tx was given),
not from the feed's own decoders."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bech32
import pandas as pd
import pytest
from cosmpy.crypto.keypairs import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sei_rpc import CometServer, ServerError, eventually, fast_client, json_values, query_matches, run

from adapters.sei.events import Event
from adapters.sei.feed import (
    NEW_BLOCK_QUERY,
    BlockFeed,
    FeedError,
    MalformedError,
    TxOutcome,
    VenueBlock,
    block_time_ns,
    tx_query,
)
from adapters.sei.keys import Signer
from adapters.sei.rpc import CometRpc
from adapters.sei.tx import build_execute_tx

CHAIN_ID = "flashmm-localnet-1"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sei" / "sei_mainnet_tx_79268744.json"
T0_NS = 1_714_566_896_000_000_000  # 2024-05-01T12:34:56Z


def _address(seed: bytes) -> str:
    return bech32.bech32_encode("sei", bech32.convertbits(hashlib.sha256(seed).digest(), 8, 5))


CONTRACT = _address(b"flashmm-clob-v1")
OTHER_CONTRACT = _address(b"some-other-contract")
TRADER = Signer(PrivateKey(hashlib.sha256(b"flashmm test trader").digest()))
TX_QUERY = tx_query(CONTRACT)


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def abci_event(kind: str, pairs: list[tuple[str, str]]) -> dict:
    return {"type": kind, "attributes": [{"key": _b64(k), "value": _b64(v), "index": True} for k, v in pairs]}


@dataclass
class CannedTx:
    raw: bytes
    result: dict  # DeliverTx result, CometBFT JSON
    plain_events: list[tuple[str, list[tuple[str, str]]]]  # the same events, decoded, for expectations
    ours: bool  # executes CONTRACT

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.raw).hexdigest().upper()


def contract_tx(sequence: int, msg: dict, contract_events: list[tuple[str, list[tuple[str, str]]]], *,
                contract: str = CONTRACT, failure: str | None = None) -> CannedTx:
    """A tx of TRADER executing `contract`, with the ante events a Cosmos chain emits and, when it
    succeeds, `contract_events` (type, pairs without _contract_address)."""
    raw = build_execute_tx(TRADER, chain_id=CHAIN_ID, account_number=7, sequence=sequence, contract=contract, msg=msg,
                           fee_amount=4000, gas_limit=200_000)
    plain = [
        ("coin_spent", [("spender", TRADER.address), ("amount", "4000usei")]),
        ("tx", [("fee", "4000usei"), ("fee_payer", TRADER.address)]),
        ("tx", [("acc_seq", f"{TRADER.address}/{sequence}")]),
    ]
    if failure is None:
        plain += [
            ("message", [("action", "/cosmwasm.wasm.v1.MsgExecuteContract"), ("module", "wasm"),
                         ("sender", TRADER.address)]),
            ("execute", [("_contract_address", contract)]),
        ]
        plain += [(kind, [("_contract_address", contract), *pairs]) for kind, pairs in contract_events]
        # wasmd's reply to a sub-call: another contract's event inside our tx, not ours to report.
        plain += [("execute", [("_contract_address", OTHER_CONTRACT)]),
                  ("wasm-hook", [("_contract_address", OTHER_CONTRACT), ("called_by", contract)])]
        result = {"data": _b64(b"\x12\x00"), "log": '[{"msg_index":0}]', "gas_wanted": "200000", "gas_used": "91234"}
    else:
        log = f"failed to execute message; message index: 0: flashmm_clob: {failure}: execute wasm contract failed"
        result = {"code": 5, "data": None, "log": log, "gas_wanted": "200000", "gas_used": "80211", "codespace": "wasm"}
    result["events"] = [abci_event(kind, pairs) for kind, pairs in plain]
    return CannedTx(raw, result, plain, ours=contract == CONTRACT)


def mainnet_tx() -> CannedTx:
    """The real pacific-1 tx: another contract, real events."""
    fixture = json.loads(FIXTURE.read_text())
    plain = [
        (e["type"],
         [(base64.b64decode(a["key"]).decode(), base64.b64decode(a["value"] or "").decode()) for a in e["attributes"]])
        for e in fixture["events"]
    ]
    result = {"data": None, "log": "[]", "gas_wanted": "3000000", "gas_used": "2000000", "events": fixture["events"]}
    return CannedTx(base64.b64decode(fixture["tx_base64"]), result, plain, ours=False)


def undecodable_tx() -> CannedTx:
    result = {"code": 2, "log": "tx parse error", "codespace": "sdk", "events": []}
    return CannedTx(b"\x0a\x05hello\xff", result, [], ours=False)


def placed(order_id: str, side: str = "buy") -> tuple[str, list[tuple[str, str]]]:
    return ("wasm-placed", [("order_id", order_id), ("client_order_id", f"c{order_id}"), ("owner", TRADER.address),
                            ("side", side), ("price", "0.4213"), ("quantity", "10"), ("post_only", "true")])


def fill(trade: str) -> list[tuple[str, list[tuple[str, str]]]]:
    return [
        ("wasm-trade", [("trade_id", trade), ("price", "0.4213"), ("quantity", "4"), ("taker_side", "sell"),
                        ("maker_order_id", "1"), ("taker_order_id", "9"), ("maker", TRADER.address),
                        ("taker", "sei1taker")]),
        ("wasm-filled", [("order_id", "1"), ("client_order_id", "c1"), ("owner", TRADER.address), ("side", "buy"),
                         ("liquidity", "maker"), ("trade_id", trade), ("price", "0.4213"), ("quantity", "4"),
                         ("remaining_quantity", "6"), ("fee", "0uusdc")]),
    ]


@dataclass
class Chain:
    """Canned blocks 1..N; `latest` is how far the node has committed."""

    blocks: list[list[CannedTx]]
    latest: int = 0
    time_ns: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # 400 ms blocks, with nanosecond digits that a float would lose.
        self.time_ns = {h: T0_NS + h * 400_000_000 + h * 123_457 + 1 for h in range(1, len(self.blocks) + 1)}

    def time_text(self, height: int) -> str:
        ns = self.time_ns[height]
        return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}".rstrip("0") + "Z"

    def block_json(self, height: int) -> dict:
        txs = [_b64(tx.raw) for tx in self.blocks[height - 1]]
        return {
            "header": {"version": {"block": "11"}, "chain_id": CHAIN_ID, "height": str(height),
                       "time": self.time_text(height),
                       "last_block_id": {"hash": "AB" * 32, "parts": {"total": 1, "hash": "CD" * 32}},
                       "data_hash": "EF" * 32, "proposer_address": "01" * 20},
            "data": {"txs": txs},
            "evidence": {"evidence": []},
            "last_commit": {"height": str(height - 1), "round": 0, "signatures": []},
        }

    def new_block_data(self, height: int) -> dict:
        return {"type": "tendermint/event/NewBlock", "value": {
            "block": self.block_json(height),
            "result_begin_block": {"events": [abci_event("mint", [("amount", "1")])]},
            "result_end_block": {"events": [], "validator_updates": None, "consensus_param_updates": None},
        }}

    def tx_events(self, height: int) -> list[tuple[dict, dict[str, list[str]]]]:
        """(data, composite events) of every tx of the block, in block order."""
        out = []
        for index, tx in enumerate(self.blocks[height - 1]):
            composite: dict[str, list[str]] = {"tm.event": ["Tx"], "tx.hash": [tx.hash], "tx.height": [str(height)]}
            for kind, pairs in tx.plain_events:
                for key, value in pairs:
                    composite.setdefault(f"{kind}.{key}", []).append(value)
            tx_result = {"height": str(height), "index": index, "tx": _b64(tx.raw), "result": tx.result}
            data = {"type": "tendermint/event/Tx", "value": {"TxResult": tx_result}}
            out.append((data, composite))
        return out

    def expected(self, height: int) -> tuple[int, int, tuple[TxOutcome, ...]]:
        outcomes = []
        for index, tx in enumerate(self.blocks[height - 1]):
            if not tx.ours:
                continue
            events = tuple(Event(kind, tuple(pairs)) for kind, pairs in tx.plain_events
                           if kind.startswith("wasm-") and dict(pairs).get("_contract_address") == CONTRACT)
            result = tx.result
            outcomes.append(TxOutcome(tx.hash, index, result.get("code", 0), result["log"], result.get("codespace", ""),
                                      TRADER.address, events))
        return height, self.time_ns[height], tuple(outcomes)

    def install(self, server: CometServer) -> None:
        async def status(params: dict) -> dict:
            return {"node_info": {"network": CHAIN_ID, "version": "0.35.0-sei-localnet"},
                    "sync_info": {"latest_block_height": str(self.latest),
                                  "latest_block_time": self.time_text(self.latest) if self.latest else "",
                                  "catching_up": False}}

        def committed(params: dict) -> int:
            height = int(params["height"])
            if not 1 <= height <= self.latest:
                raise ServerError(-32603, "Internal error",
                                  f"height {height} must be less than or equal to the current blockchain height "
                                  f"{self.latest}")
            return height

        async def block(params: dict) -> dict:
            height = committed(params)
            return {"block_id": {"hash": f"{height:064X}"}, "block": self.block_json(height)}

        async def block_results(params: dict) -> dict:
            height = committed(params)
            txs = self.blocks[height - 1]
            return {"height": str(height), "txs_results": [tx.result for tx in txs] if txs else None,
                    "begin_block_events": [], "end_block_events": None, "validator_updates": None,
                    "consensus_param_updates": None}

        server.handlers.update(status=status, block=block, block_results=block_results)

    async def publish(self, server: CometServer, height: int, *, new_block: bool = True,
                      tx_events: bool = True) -> None:
        """Commit `height`, then push NewBlock and the Tx events in block order, as CometBFT does."""
        self.latest = height
        if new_block:
            await server.publish(self.new_block_data(height), {"tm.event": ["NewBlock"], "block.height": [str(height)]})
        if tx_events:
            for data, composite in self.tx_events(height):
                await server.publish(data, composite)


def standard_chain() -> Chain:
    return Chain([
        [contract_tx(0, {"place_order": {}}, [placed("1")]), mainnet_tx()],
        [],
        [undecodable_tx(), contract_tx(1, {"batch": {}}, [*fill("77"), placed("2", "sell")]),
         contract_tx(2, {"ping": {}}, [("wasm-pong", [])], contract=OTHER_CONTRACT)],
        [contract_tx(3, {"place_order": {}}, [], failure="insufficient_balance"),
         contract_tx(4, {"cancel_all": {}}, [placed("3")])],
        [contract_tx(5, {"cancel_all": {}}, [("wasm-cancelled", [("order_id", "2"), ("reason", "cancel_all")])])],
        [contract_tx(6, {"place_order": {}}, [placed("4")])],
    ])


def content(block: VenueBlock) -> tuple[int, int, tuple[TxOutcome, ...]]:
    return block.height, block.time_ns, block.txs


async def take(blocks, count: int, timeout: float = 3.0) -> list[VenueBlock]:
    return [await asyncio.wait_for(anext(blocks), timeout) for _ in range(count)]


async def started(server: CometServer, *, tx_wait_ms: float = 150.0, from_height: int | None = None,
                  **rpc_options: Any) -> tuple[CometRpc, BlockFeed, Any]:
    rpc = fast_client(server.url, **rpc_options)
    await rpc.connect()
    feed = BlockFeed(rpc, CONTRACT, tx_wait_ms=tx_wait_ms)
    await feed.start(from_height)
    return rpc, feed, aiter(feed)


# ---- assembly --------------------------------------------------------------------------------


def test_the_chain_fixture_is_what_the_tests_claim():
    chain = standard_chain()
    assert [sum(tx.ours for tx in txs) for txs in chain.blocks] == [1, 0, 1, 2, 1, 1]
    assert chain.expected(3)[2][0].index == 1 and len(chain.expected(3)[2][0].events) == 3
    assert chain.expected(4)[2][0].code == 5 and chain.expected(4)[2][0].events == ()
    # The failed tx keeps only its ante events, so the Tx query matches only the second tx.
    assert [query_matches(TX_QUERY, composite) for _, composite in chain.tx_events(4)] == [False, True]
    # The other contract's tx and the real mainnet tx do not match either.
    assert [query_matches(TX_QUERY, composite) for _, composite in chain.tx_events(3)] == [False, True, False]
    assert [query_matches(TX_QUERY, composite) for _, composite in chain.tx_events(1)] == [True, False]


def test_live_blocks_are_assembled_from_new_block_and_tx_events():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=5000)
            for height in (1, 2, 3):
                await chain.publish(server, height)
            got = await take(blocks, 3, timeout=3.0)  # before the 5 s wait: no fallback
            assert [content(b) for b in got] == [chain.expected(h) for h in (1, 2, 3)]
            assert not any(b.backfilled for b in got)
            counters = (feed.last_height, feed.fallback_blocks, feed.backfilled_blocks, feed.malformed, rpc.malformed)
            assert counters == (3, 0, 0, 0, 0)
            # Only our contract's events (our txs also carry another contract's), and the other
            # contract's tx is not ours.
            assert {e.get("_contract_address") for b in got for tx in b.txs for e in tx.events} == {CONTRACT}
            assert "wasm-hook" in {kind for tx in chain.blocks[0] for kind, _ in tx.plain_events}
            assert [e.type for e in got[2].txs[0].events] == ["wasm-trade", "wasm-filled", "wasm-placed"]
            await rpc.close()

    run(scenario())


def test_a_failed_tx_falls_back_to_block_results_after_tx_wait():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=80)
            chain.latest = 3
            await chain.publish(server, 4)
            sent = asyncio.get_running_loop().time()
            [block] = await take(blocks, 1)
            assert asyncio.get_running_loop().time() - sent >= 0.08
            assert content(block) == chain.expected(4) and not block.backfilled
            failed = block.txs[0]
            assert (failed.code, failed.codespace, failed.events) == (5, "wasm", ())
            assert "insufficient_balance" in failed.log
            assert (feed.fallback_blocks, feed.backfilled_blocks) == (1, 0)
            assert [m for m, _, _ in server.requests].count("block_results") == 1
            await rpc.close()

    run(scenario())


def test_the_next_new_block_triggers_the_fallback_without_waiting():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=60_000)
            chain.latest = 3
            await chain.publish(server, 4)
            await chain.publish(server, 5)
            got = await take(blocks, 2, timeout=2.0)
            assert [content(b) for b in got] == [chain.expected(4), chain.expected(5)]
            assert (feed.fallback_blocks, feed.backfilled_blocks) == (1, 0)
            await rpc.close()

    run(scenario())


def test_a_missed_new_block_is_backfilled_before_the_next():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server)
            await chain.publish(server, 1)
            await chain.publish(server, 2, new_block=False, tx_events=False)
            await chain.publish(server, 3, new_block=False, tx_events=False)  # holds the fill
            await chain.publish(server, 4)
            got = await take(blocks, 4)
            assert [content(b) for b in got] == [chain.expected(h) for h in (1, 2, 3, 4)]
            assert [b.backfilled for b in got] == [False, True, True, False]
            assert feed.head_height == 4  # what timeout heights count from, not the replayed block
            assert feed.backfilled_blocks == 2
            await rpc.close()

    run(scenario())


def test_blocks_produced_while_disconnected_are_backfilled_after_the_reconnect():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server)
            await chain.publish(server, 1)
            [first] = await take(blocks, 1)
            server.accepting = False
            server.drop()
            await eventually(lambda: not rpc.connected, "the drop")
            await chain.publish(server, 2)  # nobody is subscribed: these pushes reach no one
            await chain.publish(server, 3)
            server.accepting = True
            # No new block comes: only the status-driven catch-up can deliver 2 and 3.
            got = await take(blocks, 2)
            assert [content(b) for b in [first, *got]] == [chain.expected(h) for h in (1, 2, 3)]
            assert [b.backfilled for b in got] == [True, True] and rpc.reconnects == 1
            assert got[1].txs[0].events[1].get("liquidity") == "maker"  # the fill made while away
            await chain.publish(server, 4)
            [live] = await take(blocks, 1)
            assert content(live) == chain.expected(4) and not live.backfilled
            assert feed.last_height == 4
            await rpc.close()

    run(scenario())


def test_a_block_announced_just_before_a_drop_is_completed_after_the_reconnect():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=20)
            chain.latest = 2
            await chain.publish(server, 3, tx_events=False)  # NewBlock, then the node dies
            server.accepting = False
            server.drop()
            await asyncio.sleep(0.1)  # the wait is over, block_results cannot be read yet
            server.accepting = True
            [block] = await take(blocks, 1)
            assert content(block) == chain.expected(3) and not block.backfilled
            assert (feed.fallback_blocks, rpc.reconnects) == (1, 1)
            await rpc.close()

    run(scenario())


def test_tx_events_that_come_before_their_new_block_complete_it():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=60_000)
            await chain.publish(server, 1)
            await chain.publish(server, 2, new_block=False, tx_events=False)
            await chain.publish(server, 3, new_block=False)
            await server.publish(chain.new_block_data(2), {"tm.event": ["NewBlock"]})
            await server.publish(chain.new_block_data(3), {"tm.event": ["NewBlock"]})
            got = await take(blocks, 3, timeout=2.0)
            assert [content(b) for b in got] == [chain.expected(h) for h in (1, 2, 3)]
            assert (feed.fallback_blocks, feed.backfilled_blocks) == (0, 0)
            await rpc.close()

    run(scenario())


def test_a_tx_event_with_other_bytes_at_an_expected_index_is_refused():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=60_000)
            await chain.publish(server, 1, tx_events=False)
            real, composite = chain.tx_events(1)[0]
            impostor = chain.blocks[4][0]  # a valid tx of ours, from another block
            tx_result = {**real["value"]["TxResult"], "tx": _b64(impostor.raw), "result": impostor.result}
            fake = {"type": real["type"], "value": {"TxResult": tx_result}}
            await server.push(TX_QUERY, fake)
            await server.publish(real, composite)
            [block] = await take(blocks, 1)
            assert content(block) == chain.expected(1) and feed.malformed == 1
            await rpc.close()

    run(scenario())


def test_start_from_a_height_backfills_to_the_latest_then_goes_live():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            chain.latest = 3
            rpc, feed, blocks = await started(server, from_height=2)
            got = await take(blocks, 2)
            await chain.publish(server, 4)
            got += await take(blocks, 1)
            assert [content(b) for b in got] == [chain.expected(h) for h in (2, 3, 4)]
            assert [b.backfilled for b in got] == [True, True, False]
            assert [m for m, _, _ in server.requests if m in ("status", "block")] == ["status", "block", "block"]
            await rpc.close()

    run(scenario())


def test_a_malformed_new_block_is_recovered_by_backfill_even_with_no_next_block():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, from_height=1)
            await eventually(lambda: any(m == "status" for m, _, _ in server.requests), "the first status")
            await chain.publish(server, 1)
            assert not (await take(blocks, 1))[0].backfilled
            bad = chain.new_block_data(2)
            bad["value"]["block"]["header"]["height"] = 2  # a number where CometBFT writes a string
            chain.latest = 2
            await server.push(NEW_BLOCK_QUERY, bad)
            [block] = await take(blocks, 1)
            assert content(block) == chain.expected(2) and block.backfilled
            assert feed.malformed == 1
            await rpc.close()

    run(scenario())


def test_a_new_block_claiming_a_height_past_the_node_is_skipped_not_backfilled():
    """A well-formed push from a buggy or hostile node, naming a height far ahead: backfilling up
    to it would chase blocks that do not exist and end the feed. The node's own status decides."""
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server)
            await chain.publish(server, 1)
            assert content((await take(blocks, 1))[0]) == chain.expected(1)
            forged = chain.new_block_data(2)
            forged["value"]["block"]["header"]["height"] = "1000000"
            await server.push(NEW_BLOCK_QUERY, forged)
            await eventually(lambda: feed.malformed == 1, "the forged push counted as malformed")
            await chain.publish(server, 2)
            await chain.publish(server, 3)
            got = await take(blocks, 2)
            assert [content(b) for b in got] == [chain.expected(2), chain.expected(3)]
            assert feed.backfilled_blocks == 0
            assert feed.head_height == 3  # the forged height was never believed
            await rpc.close()

    run(scenario())


def test_an_unreadable_height_ends_the_iteration_with_feed_error():
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)

            async def pruned(params: dict) -> dict:
                raise ServerError(-32603, "Internal error", "height 3 is not available, lowest height is 9")

            server.handlers["block_results"] = pruned
            rpc, feed, blocks = await started(server, from_height=3)
            chain.latest = 3
            await chain.publish(server, 3, tx_events=False)
            with pytest.raises(FeedError, match=r"height 3 .* after 4 attempts: .*lowest height is 9"):
                await take(blocks, 1)
            assert await anext(aiter(feed), "ended") == "ended"
            await rpc.close()

    run(scenario())


def test_closing_the_client_ends_the_iteration():
    async def scenario():
        async with CometServer() as server:
            standard_chain().install(server)
            rpc, feed, blocks = await started(server)
            waiting = asyncio.ensure_future(anext(blocks, "ended"))
            await asyncio.sleep(0.01)
            await rpc.close()
            assert await asyncio.wait_for(waiting, 1) == "ended"

    run(scenario())


def test_bad_arguments_are_refused_naming_what_is_wrong():
    async def scenario():
        async with CometServer() as server:
            rpc = fast_client(server.url)
            await rpc.connect()
            with pytest.raises(ValueError, match="bech32"):
                BlockFeed(rpc, "sei1abc' OR tm.event='Tx")
            with pytest.raises(ValueError, match="tx_wait_ms"):
                BlockFeed(rpc, CONTRACT, tx_wait_ms=0)
            feed = BlockFeed(rpc, CONTRACT)
            with pytest.raises(ValueError, match="from_height"):
                await feed.start(0)
            await feed.start()
            with pytest.raises(RuntimeError, match="already"):
                await feed.start()
            await rpc.close()

    run(scenario())


@pytest.mark.parametrize("text", [
    "2024-05-01T12:34:56.123456789Z", "2024-05-01T12:34:56Z", "2024-05-01T12:34:56.5Z",
    "1970-01-01T00:00:00.000000001Z", "2262-04-11T23:47:16.854775807Z", "2024-02-29T23:59:59.999999999Z",
])
def test_block_times_are_exact_to_the_nanosecond(text):
    assert block_time_ns(text) == pd.Timestamp(text).value


@pytest.mark.parametrize("text", [
    "2024-05-01T12:34:56.123+00:00", "2024-05-01 12:34:56Z", "2024-05-01T12:34:56.1234567890Z", "2024-02-30T00:00:00Z",
    "2024-05-01T24:00:00Z", "", 1714566896, None, "２０２４-05-01T12:34:56Z",
])
def test_bad_block_times_are_refused(text):
    with pytest.raises(MalformedError, match="block time"):
        block_time_ns(text)


# ---- junk ------------------------------------------------------------------------------------

# A different JSON type for every kind of value. Go writes nil slices and byte slices as null, which
# CometBFT readers take as empty, so null never replaces a list or a (base64) string here: that
# would be a different valid message, not a malformed one.
_SUBSTITUTES: list[Any] = [None, True, 7, 1.5, "x", [], [1], {}, {"a": 1}]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def wrong_values(original: Any) -> list[Any]:
    return [v for v in _SUBSTITUTES if _kind(v) != _kind(original)
            and not (v is None and isinstance(original, list | str))]


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += paths(value, prefix + (i,))
    return out


def get(obj: Any, path: tuple) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def replaced(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = list(obj) if isinstance(obj, list) else dict(obj)
    copy[path[0]] = replaced(obj[path[0]], path[1:], value)
    return copy


JUNK_CHAIN = standard_chain()
JUNK_HEIGHTS = (2, 3, 4, 5)  # block 1 is clean: once it is out, the feed is live


@functools.cache
def _real_messages(height: int) -> list[tuple[str, dict]]:
    """The block's real pushes as (query, message); the id is set per subscriber when sent."""
    messages = [(NEW_BLOCK_QUERY, CometServer.push_message(NEW_BLOCK_QUERY, JUNK_CHAIN.new_block_data(height), 0))]
    for data, composite in JUNK_CHAIN.tx_events(height):
        if query_matches(TX_QUERY, composite):
            messages.append((TX_QUERY, CometServer.push_message(TX_QUERY, data, 0, composite)))
    return messages


@st.composite
def junk_item(draw, height: int) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["retyped", "retyped", "retyped", "data", "text", "bytes", "truncated"]))
    if kind == "text":
        return "raw", draw(st.text(max_size=30))
    if kind == "bytes":
        return "raw", draw(st.binary(max_size=30))
    query, message = draw(st.sampled_from(_real_messages(height)))
    if kind == "truncated":
        text = json.dumps(message)
        return "raw", text[: draw(st.integers(0, len(text) - 1))]
    if kind == "data":  # any object as an event's data, on either subscription
        return "push", (query, draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)))
    path = draw(st.sampled_from(paths(message)))
    return "retyped", (query, message, path, draw(st.sampled_from(wrong_values(get(message, path)))))


@st.composite
def block_plans(draw) -> list[dict]:
    usually = st.sampled_from([True, True, True, False])  # mostly live, so every path gets its share
    return [{
        "before": draw(st.lists(junk_item(h), max_size=2)),
        "after": draw(st.lists(junk_item(h), max_size=3)),
        "new_block": draw(usually),
        "tx_events": draw(usually),
    } for h in JUNK_HEIGHTS]


async def send_junk(server: CometServer, item: tuple[str, Any]) -> None:
    kind, payload = item
    if kind == "raw":
        await server.send_raw(payload)
    elif kind == "push":
        await server.push(*payload)
    else:
        query, message, path, value = payload
        for _, ident in server.subscribers(query):
            await server.send_raw(json.dumps(replaced(dict(message, id=ident), path, value)))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=block_plans())
def test_junk_pushes_never_crash_the_feed_nor_change_its_blocks(plan):
    async def scenario():
        chain = standard_chain()
        async with CometServer() as server:
            chain.install(server)
            rpc, feed, blocks = await started(server, tx_wait_ms=20, from_height=1)
            # The node has told the feed it is at height 0, so block 1 will arrive live.
            await eventually(lambda: any(m == "status" for m, _, _ in server.requests), "the first status")
            await chain.publish(server, 1)
            got = await take(blocks, 1)
            for height, step in zip(JUNK_HEIGHTS, plan, strict=True):
                chain.latest = height
                for item in step["before"]:
                    await send_junk(server, item)
                await chain.publish(server, height, new_block=step["new_block"], tx_events=step["tx_events"])
                for item in step["after"]:
                    await send_junk(server, item)
            await chain.publish(server, 6)  # a clean block closes any gap left by the junk
            got += await take(blocks, 5)
            assert [content(b) for b in got] == [chain.expected(h) for h in range(1, 7)]
            raw = sum(item[0] == "raw" for step in plan for item in step["before"] + step["after"])
            assert rpc.malformed >= raw and rpc.connected
            await rpc.close()

    run(scenario())
