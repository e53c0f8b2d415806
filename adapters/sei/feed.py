"""The CLOB contract's activity, one block at a time, with no height skipped and no tx lost.

Fills and cancels exist only as `wasm-*` events of the txs that touched the contract, so the
strategy's inventory is exactly as right as this stream. The feed turns two CometBFT
subscriptions into `VenueBlock`s of strictly consecutive heights:

- `tm.event='NewBlock'` gives each block's header and raw txs. The txs whose messages execute the
  contract are the block's *expected* txs (decoded with `codec.decode_tx`; a tx that does not
  decode is simply not ours, and the block is still delivered).
- `tm.event='Tx' AND execute._contract_address='<contract>'` gives the expected txs' results as
  they are indexed, matched to the block by index and hash (the upper-case hex SHA-256 of the tx
  bytes; a result whose bytes are not the block's tx at that index is refused). When every
  expected tx has its result, the block is complete; a block with no expected tx is complete at
  once.
  wasmd emits `execute{_contract_address}` for every execution, but a plain `wasm` event only when
  the contract returns plain attributes, which the CLOB contract (CONTRACT.md) does not: its events
  are all `wasm-<name>`. A query on `wasm._contract_address` would therefore never match.

The Tx query matches only txs that kept the contract's events, and a failed tx keeps none (only
its ante events), so its result never comes by subscription. Hence the fallback: if the results
are not all there `tx_wait_ms` after NewBlock, or the next NewBlock arrives first, the block's
results are read with `block_results`. Heights that were never announced (a dropped push, a reconnect, a push that
did not parse) are backfilled with `block` + `block_results`, in order, before any newer block;
after a reconnect the feed also asks `status` for the node's latest height and backfills up to it,
so blocks produced while disconnected arrive even if the chain then goes quiet.

A tx is the contract's when one of its messages executes the contract. A tx that reaches it only
through another contract (a router calling the CLOB) is left out, live and backfilled alike: its
Tx event does arrive, but nothing in NewBlock marks it as expected, so including it live would
make the content of a block depend on how it was read.

Pushes come from an untrusted node: one that does not parse is counted in `malformed` and skipped,
never raised, and never trusted for anything (not even its height: the feed re-reads the node's
latest height and backfills instead). RPC failures while backfilling are retried: without limit
for connection losses and timeouts (the client reconnects by itself), a few times for error
answers and unreadable results; a height that still cannot be read ends the iteration with
`FeedError`, because skipping it would silently lose fills.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from adapters.sei.codec import TxDecodeError, decode_tx, tx_hash
from adapters.sei.events import Event, EventDecodeError, decode_events, wasm_events
from adapters.sei.rpc import CometRpc, RpcError, Subscription

log = logging.getLogger(__name__)

NEW_BLOCK_QUERY = "tm.event='NewBlock'"
NEW_BLOCK_EVENT = "tendermint/event/NewBlock"
TX_EVENT = "tendermint/event/Tx"
# Attempts at reading one height (error answers, unreadable results) before giving up.
MAX_READ_ATTEMPTS = 4
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 0.5  # also how late a read can be after the client has reconnected
# Tx events are kept for heights at most this far past the last delivered block (they can run
# one block ahead of their NewBlock; junk with a far-off height must not accumulate).
EARLY_TX_WINDOW = 4
PREVIEW_CHARS = 160

# A bech32 address: lower-case human-readable part, "1", data characters. Also keeps the
# address from breaking out of the quoted query value.
_BECH32 = re.compile(r"[a-z]{1,83}1[02-9ac-hj-np-z]{6,}")
_HEIGHT = re.compile(r"0|[1-9][0-9]{0,18}")
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z")
_INT64_MAX = 2**63 - 1
_UINT32_MAX = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """How one of the contract's txs ended. `code` 0 is success; `events` are only this
    contract's wasm events (decoded, in order), empty for a failed tx."""

    hash: str
    index: int
    code: int
    log: str
    codespace: str
    sender: str | None
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class VenueBlock:
    """`backfilled` means the NewBlock push was never used (the block was read with `block`), so
    `received_ns` can be long after `time_ns`."""

    height: int
    time_ns: int
    received_ns: int
    txs: tuple[TxOutcome, ...]
    backfilled: bool


class FeedError(RuntimeError):
    """A height the feed must deliver cannot be read from the node."""


class MalformedError(ValueError):
    """A push or an RPC result that is not the CometBFT 0.35 JSON the feed expects."""


def block_time_ns(text: Any) -> int:
    """Nanoseconds since the epoch of a CometBFT block time (Go's RFC3339Nano in UTC, e.g.
    `2024-05-01T12:00:00.123456789Z`), exact to the nanosecond (no float on the way)."""
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise MalformedError(f"block time {str(text)[:40]!r} is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS[.fraction]Z)")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise MalformedError(f"block time {text!r}: {exc}") from None
    since_epoch = moment - _EPOCH
    seconds = since_epoch.days * 86400 + since_epoch.seconds
    return seconds * 1_000_000_000 + int((match.group(7) or "").ljust(9, "0"))


def tx_query(contract: str) -> str:
    """The subscription for the txs that executed `contract` successfully (see the module docstring)."""
    return f"tm.event='Tx' AND execute._contract_address='{contract}'"


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Expected:
    index: int
    hash: str
    sender: str | None


@dataclass(frozen=True, slots=True)
class _Header:
    """A block as far as the feed needs it: height, time, how many txs, which are ours."""

    height: int
    time_ns: int
    tx_count: int
    expected: dict[int, _Expected]  # by index in the block


@dataclass(frozen=True, slots=True)
class _TxEvent:
    height: int
    index: int
    hash: str
    result: dict


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise MalformedError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise MalformedError(f"{where}: missing {key!r}")
    return obj[key]


def _height(value: Any, where: str, minimum: int = 1) -> int:
    """A CometBFT int64 height, written as a decimal string. Blocks start at 1; a node that has
    not committed one yet reports 0 as its latest height."""
    if not isinstance(value, str) or not _HEIGHT.fullmatch(value) or not minimum <= int(value) <= _INT64_MAX:
        raise MalformedError(f"{where}: height {str(value)[:40]!r} is not an int64 string >= {minimum}")
    return int(value)


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedError(f"{where}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{where}: not valid base64") from None


def _parse_block(block: Any, contract: str, where: str) -> _Header:
    header = _field(block, "header", where)
    height = _height(_field(header, "height", f"{where}.header"), f"{where}.header")
    time_ns = block_time_ns(_field(header, "time", f"{where}.header"))
    txs = _field(_field(block, "data", where), "txs", f"{where}.data")
    if txs is None:  # Go encodes an empty slice as null
        txs = []
    if not isinstance(txs, list):
        raise MalformedError(f"{where}.data.txs: expected a list, got {type(txs).__name__}")
    expected = {}
    for index, encoded in enumerate(txs):
        raw = _b64(encoded, f"{where}.data.txs[{index}]")
        try:
            decoded = decode_tx(raw)
        except TxDecodeError:
            continue  # not a tx we could have sent or be filled by
        ours = [m for m in decoded.messages if m.contract == contract]
        if ours:
            expected[index] = _Expected(index, tx_hash(raw), ours[0].sender)
    return _Header(height, time_ns, len(txs), expected)


def _parse_new_block(data: Any, contract: str) -> _Header:
    kind = _field(data, "type", "NewBlock event")
    if kind != NEW_BLOCK_EVENT:
        raise MalformedError(f"NewBlock event: type {str(kind)[:60]!r} is not {NEW_BLOCK_EVENT}")
    block = _field(_field(data, "value", "NewBlock event"), "block", "NewBlock event value")
    return _parse_block(block, contract, "NewBlock")


def _parse_tx_event(data: Any) -> _TxEvent:
    kind = _field(data, "type", "Tx event")
    if kind != TX_EVENT:
        raise MalformedError(f"Tx event: type {str(kind)[:60]!r} is not {TX_EVENT}")
    tx_result = _field(_field(data, "value", "Tx event"), "TxResult", "Tx event value")
    where = "Tx event TxResult"
    height = _height(_field(tx_result, "height", where), where)
    index = _field(tx_result, "index", where)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= _UINT32_MAX:
        raise MalformedError(f"{where}: index {str(index)[:40]!r} is not a non-negative integer")
    raw = _b64(_field(tx_result, "tx", where), f"{where}.tx")
    result = _field(tx_result, "result", where)
    if not isinstance(result, dict):
        raise MalformedError(f"{where}.result: expected an object, got {type(result).__name__}")
    return _TxEvent(height, index, tx_hash(raw), result)


def _outcome(expected: _Expected, result: Any, contract: str, where: str) -> TxOutcome:
    """A DeliverTx result (Tx event or block_results entry). Go omits a zero `code` and empty
    strings, so absent means 0 / ""."""
    if not isinstance(result, dict):
        raise MalformedError(f"{where}: expected an object, got {type(result).__name__}")
    code = result.get("code", 0)
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= _UINT32_MAX:
        raise MalformedError(f"{where}: code {str(code)[:40]!r} is not a uint32")
    text, codespace = result.get("log", ""), result.get("codespace", "")
    if not isinstance(text, str) or not isinstance(codespace, str):
        raise MalformedError(f"{where}: log and codespace must be strings")
    try:
        events = decode_events(result.get("events") or [])
    except EventDecodeError as exc:
        raise MalformedError(f"{where}: {exc}") from None
    return TxOutcome(
        hash=expected.hash, index=expected.index, code=code, log=text, codespace=codespace,
        sender=expected.sender, events=tuple(wasm_events(events, contract)),
    )


def _preview(value: Any) -> str:
    text = repr(value)
    return text[:PREVIEW_CHARS] + ("..." if len(text) > PREVIEW_CHARS else "")


# -- the feed --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    header: _Header
    outcomes: dict[int, TxOutcome]
    deadline: float  # loop time

    @property
    def complete(self) -> bool:
        return len(self.outcomes) == len(self.header.expected)


_END = object()  # the feed ended
_RECONNECTED = object()


class _Stopped(Exception):
    """The client was closed while the feed was reading the node."""


class BlockFeed:
    """`VenueBlock`s of the contract, strictly consecutive heights, for one consumer.

    Counters for metrics: `last_height` (last delivered, 0 before the first), `backfilled_blocks`
    (read with `block`), `fallback_blocks` (announced, results read with `block_results`),
    `malformed` (pushes skipped).
    """

    def __init__(self, rpc: CometRpc, contract: str, *, tx_wait_ms: float = 150.0) -> None:
        if not isinstance(contract, str) or not _BECH32.fullmatch(contract):
            raise ValueError(f"contract must be a bech32 address such as sei1..., got {str(contract)[:80]!r}")
        if not tx_wait_ms > 0:
            raise ValueError(f"tx_wait_ms must be > 0, got {tx_wait_ms!r}")
        self.rpc = rpc
        self.contract = contract
        self.tx_wait_ms = tx_wait_ms
        self.last_height = 0
        self.head_height = 0  # the highest height the node has shown to exist (pushes, status reads)
        self.backfilled_blocks = 0
        self.fallback_blocks = 0
        self.malformed = 0
        self._anchored = False  # last_height is meaningful (a start height is known)
        self._pending: _Pending | None = None
        self._early: dict[int, dict[int, _TxEvent]] = {}  # height -> index -> first Tx event
        # (subscription, data | None at its end) from the client, or _RECONNECTED.
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._blocks_sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, from_height: int | None = None) -> None:
        """Subscribe and start assembling. `from_height` None starts with the next NewBlock;
        a height starts there, backfilling up to the node's latest block first."""
        if self._task is not None:
            raise RuntimeError("BlockFeed.start() was already called")
        if from_height is not None and (type(from_height) is not int or from_height < 1):
            raise ValueError(f"from_height must be a positive block height or None, got {from_height!r}")
        # One sink for both, so NewBlock(H) is seen before its Tx events and before NewBlock(H+1).
        self._blocks_sub = await self.rpc.subscribe(NEW_BLOCK_QUERY, sink=self._inbox)
        try:
            await self.rpc.subscribe(tx_query(self.contract), sink=self._inbox)
        except BaseException:
            await self._blocks_sub.unsubscribe()
            self._inbox = asyncio.Queue()  # drop the end marker unsubscribing put, so start() can be retried
            raise
        self.rpc.on_reconnect(self._reconnected)
        if from_height is not None:
            self.last_height = from_height - 1
            self._anchored = True
        self._task = asyncio.get_running_loop().create_task(self._run(catch_up=from_height is not None),
                                                            name="block-feed")

    def __aiter__(self) -> AsyncIterator[VenueBlock]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[VenueBlock]:
        while True:
            item = await self._out.get()
            if item is _END:
                self._out.put_nowait(_END)  # later iterators end too
                return
            if isinstance(item, FeedError):
                self._out.put_nowait(_END)
                raise item
            yield item

    # -- inputs ------------------------------------------------------------------------------

    async def _reconnected(self) -> None:
        self._inbox.put_nowait(_RECONNECTED)

    async def _next_input(self) -> Any:
        if self._pending is None:
            return await self._inbox.get()
        remaining = self._pending.deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self._inbox.get(), max(0.0, remaining))
        except TimeoutError:
            return None  # the pending block's wait is over

    # -- assembly ----------------------------------------------------------------------------

    async def _run(self, catch_up: bool) -> None:
        try:
            if catch_up:
                await self._catch_up()
            while True:
                item = await self._next_input()
                if item is None:
                    log.debug("height %d: Tx events not all in after %g ms; reading block_results",
                              self._pending.header.height, self.tx_wait_ms)
                    await self._flush_pending()
                elif item is _RECONNECTED:
                    await self._catch_up()
                elif item[1] is None:  # a subscription ended: the client was closed
                    return
                elif item[0] is self._blocks_sub:
                    await self._on_new_block(item[1])
                else:
                    self._on_tx_event(item[1])
        except _Stopped:
            pass
        except FeedError as exc:
            log.error("%s", exc)
            self._out.put_nowait(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: the consumer must see it, not a quiet end
            log.exception("block feed stopped")
            self._out.put_nowait(FeedError(f"block feed stopped after height {self.last_height}: {exc!r}"))
        finally:
            self._out.put_nowait(_END)

    async def _on_new_block(self, data: dict) -> None:
        try:
            header = _parse_new_block(data, self.contract)
        except MalformedError as exc:
            self._skip(exc, data)
            # Its height cannot be trusted either: ask the node how far the chain is instead.
            await self._catch_up()
            return
        if not self._anchored:
            self.last_height, self._anchored = header.height - 1, True
        pending = self._pending
        if header.height <= self.last_height or (pending is not None and header.height == pending.header.height):
            log.debug("NewBlock %d already handled", header.height)
            return
        await self._flush_pending()
        if header.height > self.last_height + 1:
            # A gap to backfill, on the push's word: check it with the node first, or one forged
            # height far ahead would send the feed after blocks that do not exist, and end it.
            latest = await self._read(None, self.node_height)
            if header.height > latest:
                self._skip(MalformedError(f"NewBlock height {header.height} is past the node's latest ({latest})"),
                           data)
                await self._catch_up()
                return
        self.head_height = max(self.head_height, header.height)
        for height in range(self.last_height + 1, header.height):
            await self._backfill(height)
        wait = self.tx_wait_ms / 1000
        self._pending = _Pending(header, {}, asyncio.get_running_loop().time() + wait)
        for event in self._early.pop(header.height, {}).values():
            self._take(event)
        if self._pending.complete:
            self._deliver_pending(fallback=False)

    def _on_tx_event(self, data: dict) -> None:
        try:
            event = _parse_tx_event(data)
        except MalformedError as exc:
            self._skip(exc, data)
            return
        if self._pending is not None and event.height == self._pending.header.height:
            self._take(event)
            if self._pending.complete:
                self._deliver_pending(fallback=False)
        elif self.last_height < event.height <= self.last_height + EARLY_TX_WINDOW:
            self._early.setdefault(event.height, {}).setdefault(event.index, event)

    def _take(self, event: _TxEvent) -> None:
        assert self._pending is not None
        expected = self._pending.header.expected.get(event.index)
        if expected is None:
            # A tx that reached the contract through another contract (see the module docstring).
            log.debug("height %d: Tx event for index %d is not an expected tx", event.height, event.index)
            return
        if expected.hash != event.hash:
            where = f"Tx event for height {event.height} index {event.index}"
            self._skip(MalformedError(f"{where} has hash {event.hash}, the block has {expected.hash}"), event.result)
            return
        if event.index in self._pending.outcomes:
            return
        try:
            outcome = _outcome(expected, event.result, self.contract, f"Tx event {event.hash}")
            self._pending.outcomes[event.index] = outcome
        except MalformedError as exc:
            self._skip(exc, event.result)

    async def _flush_pending(self) -> None:
        """Complete the pending block from `block_results` (results that came by event are
        discarded so that the whole block comes from one source)."""
        if self._pending is None:
            return
        header = self._pending.header
        self._pending.outcomes = await self._read(header.height, lambda: self._results(header))
        self._deliver_pending(fallback=True)

    def _deliver_pending(self, fallback: bool) -> None:
        assert self._pending is not None
        header, outcomes = self._pending.header, self._pending.outcomes
        self._pending = None
        if fallback:
            self.fallback_blocks += 1
        self._deliver(header, tuple(outcomes[i] for i in sorted(outcomes)), backfilled=False)

    async def _catch_up(self) -> None:
        """Deliver everything up to the node's latest height (after a reconnect or a push that
        did not parse)."""
        if not self._anchored:
            return
        await self._flush_pending()
        latest = await self._read(None, self.node_height)
        if latest > self.last_height:
            log.info("backfilling heights %d..%d", self.last_height + 1, latest)
        for height in range(self.last_height + 1, latest + 1):
            await self._backfill(height)

    async def _backfill(self, height: int) -> None:
        header = await self._read(height, lambda: self._block(height))
        outcomes = await self._read(height, lambda: self._results(header))
        self.backfilled_blocks += 1
        self._deliver(header, tuple(outcomes[i] for i in sorted(outcomes)), backfilled=True)

    def _deliver(self, header: _Header, txs: tuple[TxOutcome, ...], backfilled: bool) -> None:
        if header.height != self.last_height + 1:
            raise AssertionError(f"feed would skip from height {self.last_height} to {header.height}")
        self.last_height = header.height
        for height in [h for h in self._early if h <= header.height]:
            del self._early[height]
        self._out.put_nowait(VenueBlock(header.height, header.time_ns, time.time_ns(), txs, backfilled))

    # -- reading the node --------------------------------------------------------------------

    async def node_height(self) -> int:
        """The node's latest height, asked now."""
        status = await self.rpc.call("status", {})
        sync_info = _field(status, "sync_info", "status")
        latest = _height(_field(sync_info, "latest_block_height", "status.sync_info"), "status.sync_info", minimum=0)
        self.head_height = max(self.head_height, latest)
        return latest

    async def _block(self, height: int) -> _Header:
        result = await self.rpc.call("block", {"height": str(height)})
        header = _parse_block(_field(result, "block", f"block {height}"), self.contract, f"block {height}")
        if header.height != height:
            raise MalformedError(f"block {height}: the node answered height {header.height}")
        return header

    async def _results(self, header: _Header) -> dict[int, TxOutcome]:
        if not header.expected:
            return {}
        where = f"block_results {header.height}"
        result = await self.rpc.call("block_results", {"height": str(header.height)})
        if _height(_field(result, "height", where), where) != header.height:
            raise MalformedError(f"{where}: the node answered height {result['height']!r}")
        txs_results = _field(result, "txs_results", where)
        if not isinstance(txs_results, list) or len(txs_results) != header.tx_count:
            raise MalformedError(f"{where}: txs_results must list the block's {header.tx_count} tx results")
        return {
            i: _outcome(expected, txs_results[i], self.contract, f"{where} txs_results[{i}]")
            for i, expected in header.expected.items()
        }

    async def _read(self, height: int | None, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run one read of the node until it succeeds: connection losses and timeouts wait for
        the client to reconnect, error answers and unreadable results get MAX_READ_ATTEMPTS."""
        failures = 0
        delay = RETRY_INITIAL_S
        what = "latest height" if height is None else f"height {height}"
        while True:
            if self.rpc.closed:
                raise _Stopped
            try:
                return await attempt()
            except (ConnectionError, TimeoutError) as exc:
                if self.rpc.closed:
                    raise _Stopped from None
                log.warning("reading %s: %s; retrying", what, exc)
            except (RpcError, MalformedError) as exc:
                failures += 1
                if failures >= MAX_READ_ATTEMPTS:
                    raise FeedError(f"cannot read {what} from {self.rpc.url} after {failures} attempts: {exc}") from exc
                log.warning("reading %s: %s; retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)

    def _skip(self, exc: MalformedError, data: Any) -> None:
        self.malformed += 1
        log.warning("skipped malformed push: %s: %s", exc, _preview(data))
