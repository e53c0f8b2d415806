"""The venue layer: one transport to the CLOB contract, shared by the data and execution clients.

`VenueTransport` is the seam CONTRACT.md promises: submit an execute message, run a query, and
stream the contract's decoded events block by block. The data and execution clients only see
this interface, so an EVM transport (Sei's CosmWasm precompile) can replace `CosmosTransport`
without touching them.

`SeiVenue` owns the one block stream of a node and hands each block to its listeners in a fixed
order, execution first: fills reach the strategy before the book moves, so it requotes knowing
its inventory, as it would in a backtest where the fill and the book update share a timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from adapters.sei import tx as txlib
from adapters.sei.codec import tx_hash
from adapters.sei.feed import BlockFeed, VenueBlock
from adapters.sei.keys import Signer
from adapters.sei.rpc import CometRpc, NotSentError, RpcError

log = logging.getLogger(__name__)

CODE_SEQUENCE_MISMATCH = 32
_EXPECTED_SEQUENCE = re.compile(r"expected (\d+), got (\d+)")


class VenueError(Exception):
    """The venue could not be reached or answered something unusable."""


class TxFateUnknown(VenueError):
    """A signed tx went out but no answer came (a timeout, a dropped socket): it may be in the
    mempool and land. Its hash is known from its bytes, so it can be watched for like any other."""

    def __init__(self, tx_hash: str, sequence: int, reason: str) -> None:
        super().__init__(f"tx {tx_hash} (sequence {sequence}) sent, no answer: {reason}")
        self.hash = tx_hash
        self.sequence = sequence


@dataclass(frozen=True, slots=True)
class Submission:
    """What the node said when the transaction was offered (CheckTx), not whether it landed."""

    hash: str
    code: int
    log: str
    codespace: str
    sequence: int
    sent_ns: int

    @property
    def accepted(self) -> bool:
        return self.code == 0


class VenueTransport(ABC):
    owner: str | None
    contract: str
    latest_height: int
    resumed_from: int | None

    @abstractmethod
    async def connect(self, from_height: int | None = None) -> None:
        """Connect; blocks stream from `from_height` (backfilled up to the latest first) or, if
        None, from the next block."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def query(self, msg: dict) -> dict: ...

    @abstractmethod
    def blocks(self) -> AsyncIterator[VenueBlock]: ...

    @abstractmethod
    async def submit(self, msg: dict, *, timeout_height: int, actions: int) -> Submission:
        """Sign and send `msg` (a batch of `actions` actions); the fee covers that many. Raises
        `TxFateUnknown` when the tx went out unanswered, any other error when it cannot have."""

    @property
    @abstractmethod
    def head_height(self) -> int:
        """The highest height the venue has shown to exist so far, at least the last block handed
        out. A tx's timeout height counts from here: while missed blocks are replayed, the block
        being handled can be far behind the chain, and a timeout from it already past."""

    @abstractmethod
    async def read_head_height(self) -> int:
        """The chain's latest height, asked of the node now (the block stream has died, so
        `head_height` has stopped moving)."""

    @abstractmethod
    async def resync(self) -> None:
        """Re-read what the venue knows of our account (after a transaction was lost)."""

    @abstractmethod
    def stats(self) -> dict[str, int]: ...


class CosmosTransport(VenueTransport):
    """The contract over CometBFT JSON-RPC: signed MsgExecuteContract txs, smart queries, events.

    Gas is bought per batch: `gas_base + gas_per_action * actions`, at `gas_price` in `fee_denom`.
    Sequence numbers are kept locally so a tx can be sent every block without waiting for the
    previous one to land; the node's CheckTx state accepts consecutive sequences. A mismatch
    (code 32) resyncs from the number the node says it expects, falling back to the account
    query, and the tx is re-signed and re-sent, at most `max_sequence_retries` times.
    """

    def __init__(
        self, rpc_url: str, contract: str, *, chain_id: str | None = None, tx_wait_ms: float = 150.0, seed: int = 0
    ) -> None:
        self.rpc = CometRpc(rpc_url, seed=seed)
        self.contract = contract
        self.owner: str | None = None
        self._signer: Signer | None = None
        self._expected_chain_id = chain_id
        self.chain_id: str | None = None
        self.latest_height = 0  # at connect; the block stream takes over from there
        self.resumed_from: int | None = None
        self.gas_base = self.gas_per_action = 0
        self.gas_price = Decimal(0)
        self.fee_denom = "usei"
        self.max_sequence_retries = 0
        self.account_number = 0
        self.sequence = 0
        self.feed = BlockFeed(self.rpc, contract, tx_wait_ms=tx_wait_ms)
        self._sequence_lock = asyncio.Lock()  # a resync must not land between signing and counting
        self._stats = {"txs_sent": 0, "tx_retries": 0, "sequence_resyncs": 0}

    def attach_signer(
        self, signer: Signer, *, gas_base: int, gas_per_action: int, gas_price: Decimal, fee_denom: str,
        max_sequence_retries: int,
    ) -> None:
        """Give the transport the key it submits with (before `connect`; data-only nodes never do)."""
        if self.owner is not None and self.owner != signer.address:
            raise VenueError("a venue connection can sign for one account only")
        self._signer, self.owner = signer, signer.address
        self.gas_base, self.gas_per_action, self.gas_price = gas_base, gas_per_action, gas_price
        self.fee_denom = fee_denom
        self.max_sequence_retries = max_sequence_retries

    async def connect(self, from_height: int | None = None) -> None:
        await self.rpc.connect()
        status = await self.rpc.call("status", {})
        try:
            self.chain_id = status["node_info"]["network"]
            self.latest_height = int(status["sync_info"]["latest_block_height"])
        except (KeyError, TypeError, ValueError):
            raise VenueError(f"status answer lacks node_info.network or sync_info.latest_block_height: "
                             f"{str(status)[:200]}") from None
        if self._expected_chain_id and self.chain_id != self._expected_chain_id:
            raise VenueError(f"node is on chain {self.chain_id!r}, config says {self._expected_chain_id!r}")
        if from_height is not None and from_height > self.latest_height + 1:
            log.warning("saved height %d is ahead of the chain (%d): a new chain; starting from its next block",
                        from_height - 1, self.latest_height)
            from_height = None
        self.resumed_from = from_height
        if self._signer is not None:
            await self.resync()
        # From the block after the status read, not the first NewBlock after subscribing: none
        # produced in between is skipped.
        await self.feed.start(from_height or self.latest_height + 1)

    async def close(self) -> None:
        await self.rpc.close()

    async def query(self, msg: dict) -> dict:
        answer = await self._abci(txlib.SMART_QUERY_PATH, txlib.encode_smart_query_request(self.contract, msg))
        return txlib.decode_smart_query_response(answer)

    def blocks(self) -> AsyncIterator[VenueBlock]:
        return self.feed.__aiter__()

    @property
    def head_height(self) -> int:
        return max(self.latest_height, self.feed.head_height)

    async def read_head_height(self) -> int:
        return await self.feed.node_height()

    async def resync(self) -> None:
        if self._signer is None:
            return
        async with self._sequence_lock:
            await self._resync()

    async def _resync(self) -> None:
        answer = await self._abci(txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request(self._signer.address))
        account = txlib.decode_account_response(answer)
        self.account_number, self.sequence = account.account_number, account.sequence
        self._stats["sequence_resyncs"] += 1

    async def submit(self, msg: dict, *, timeout_height: int, actions: int) -> Submission:
        if self._signer is None:
            raise VenueError("this transport has no signing key (paper or data-only mode)")
        gas_limit = self.gas_base + self.gas_per_action * actions
        fee = math.ceil(Decimal(gas_limit) * self.gas_price)
        async with self._sequence_lock:
            return await self._submit(msg, timeout_height, gas_limit, fee)

    async def _submit(self, msg: dict, timeout_height: int, gas_limit: int, fee: int) -> Submission:
        attempt = 0
        while True:
            raw = txlib.build_execute_tx(
                self._signer, chain_id=self.chain_id, account_number=self.account_number,
                sequence=self.sequence, contract=self.contract, msg=msg,
                fee_amount=fee, fee_denom=self.fee_denom, gas_limit=gas_limit, timeout_height=timeout_height,
            )
            sent_ns = time.time_ns()
            try:
                result = await self.rpc.call("broadcast_tx_sync", {"tx": base64.b64encode(raw).decode()})
            except NotSentError:
                raise
            except (ConnectionError, TimeoutError) as exc:
                self._stats["txs_sent"] += 1
                raise TxFateUnknown(tx_hash(raw), self.sequence, str(exc)) from None
            self._stats["txs_sent"] += 1
            sub = Submission(
                hash=str(result.get("hash", "")).upper(), code=int(result.get("code", 0) or 0),
                log=str(result.get("log", "")), codespace=str(result.get("codespace", "")),
                sequence=self.sequence, sent_ns=sent_ns,
            )
            if sub.accepted:
                self.sequence += 1
                return sub
            if sub.code != CODE_SEQUENCE_MISMATCH or sub.codespace != "sdk" or attempt >= self.max_sequence_retries:
                return sub
            attempt += 1
            self._stats["tx_retries"] += 1
            expected = _EXPECTED_SEQUENCE.search(sub.log)
            if expected is not None:
                self.sequence = int(expected.group(1))
                self._stats["sequence_resyncs"] += 1
            else:
                await self._resync()
            log.warning("sequence mismatch (%s); resent with sequence %d", sub.log[:120], self.sequence)

    def stats(self) -> dict[str, int]:
        return {
            **self._stats, "reconnects": self.rpc.reconnects, "malformed": self.rpc.malformed + self.feed.malformed,
            "backfilled_blocks": self.feed.backfilled_blocks, "fallback_blocks": self.feed.fallback_blocks,
        }

    async def _abci(self, path: str, data: bytes) -> bytes:
        result = await self.rpc.call("abci_query", {"path": path, "data": data.hex(), "height": "0", "prove": False})
        try:
            response = result["response"]
            code = int(response.get("code", 0) or 0)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise VenueError(f"abci_query {path}: malformed answer {str(result)[:200]}") from None
        if code != 0:
            raise VenueError(f"abci_query {path}: code {code}: {str(response.get('log', ''))[:300]}")
        try:
            return base64.b64decode(response.get("value") or "", validate=True)
        except ValueError:
            raise VenueError(f"abci_query {path}: value is not base64") from None


BlockListener = Callable[[VenueBlock], None]


class SeiVenue:
    """One node's connection to the venue, shared by its data and execution clients."""

    EXECUTION, DATA = 0, 1  # listener order within a block

    def __init__(self, transport: VenueTransport) -> None:
        self.transport = transport
        self._listeners: list[tuple[int, BlockListener]] = []
        self._users = 0
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.last_height = 0
        self.last_block_ns = 0  # block time
        self.last_received_ns = 0  # local receipt time
        self.blocks_seen = 0
        # Where a restarted node resumes (the block after the last one it processed), if it knows.
        self.resume_height: Callable[[], int | None] = lambda: None
        self.caught_up = asyncio.Event()  # set once the stream has reached the height seen at connect
        # Run once connected, before any block is handed out (the instrument, so fills can be read).
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self.failure: BaseException | None = None  # why the connection or the block stream failed, if it did

    def add_listener(self, order: int, listener: BlockListener) -> None:
        self._listeners.append((order, listener))
        self._listeners.sort(key=lambda pair: pair[0])

    def remove_listener(self, listener: BlockListener) -> None:
        self._listeners = [(o, cb) for o, cb in self._listeners if cb is not listener]

    async def start(self) -> None:
        async with self._lock:
            self._users += 1
            if self._users > 1:
                return
            try:
                await self.transport.connect(self.resume_height())
                for prepare in self.on_connect:
                    await prepare()
            except BaseException as exc:
                self._users -= 1
                if isinstance(exc, Exception):
                    self.failure = exc  # a node that cannot connect must not wait for a trader that never starts
                await self.transport.close()
                raise
            resume = self.transport.resumed_from
            self.last_height = self.transport.latest_height if resume is None else resume - 1
            if resume is None or resume > self.transport.latest_height:
                self.caught_up.set()
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="sei-venue-blocks")
            self._task.add_done_callback(self._pump_ended)

    async def stop(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            if self._task is not None:
                self._task.cancel()
                try:
                    await self._task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass
                self._task = None
            await self.transport.close()

    def _pump_ended(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        self.failure = task.exception() or VenueError("the block stream ended")
        log.error("the block stream stopped: %r; this node no longer sees the venue", self.failure)

    async def _pump(self) -> None:
        async for block in self.transport.blocks():
            self.last_height = block.height
            if block.height >= self.transport.latest_height:
                self.caught_up.set()
            self.last_block_ns = block.time_ns
            self.last_received_ns = block.received_ns
            self.blocks_seen += 1
            for _, listener in list(self._listeners):
                try:
                    listener(block)
                except Exception:  # noqa: BLE001 - one listener's bug must not stop the feed
                    log.exception("block %d listener %r failed", block.height, listener)


__all__ = ["CosmosTransport", "RpcError", "SeiVenue", "Submission", "TxFateUnknown", "VenueError", "VenueTransport"]
