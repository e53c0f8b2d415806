"""The localnet's chain: accounts, CheckTx and DeliverTx, fees, blocks, events and queries around
the CLOB contract, as a deterministic synchronous state machine.

FlashMM's execution and data clients are tested against this, so what they see must be what a
Cosmos SDK chain (Sei: SDK 0.45-style ante handler, wasmd, CometBFT 0.35 JSON) would show them:
the same ABCI codes and log texts on rejection, the same event types and order, fees charged and
sequences bumped on a failed execution, and a check state separate from the deliver state, so a
client may have several txs of one account in the mempool per block. There are no sockets and no
clock here: callers pass block times, and everything else follows from the seed and the inputs,
so a test can state exactly what a block must contain.

Per block, as the localnet's design fixes it: the background liquidity's taker txs, then its
maker txs (both signed for real by the localnet's `maker` and `taker` accounts), then the
mempool in arrival order.

Where the localnet deviates from a real node, on purpose:

- One `MsgExecuteContract` per tx, one signer, SIGN_MODE_DIRECT, secp256k1 keys, no fee grants
  or fee payers: anything else is refused at CheckTx with code 18 (invalid request).
- Gas is a model, not metering: the ante handler's `10 x tx bytes + 1000` per signature (the
  SDK's defaults), plus `60000 + 20000 x actions` for the contract call (see `execute_gas`). Out
  of gas is decided before the contract runs, so it never has to be rolled back.
- DeliverTx re-runs the ante checks (timeout, fee funds, sequence) but not the signature, which
  CheckTx verified and which nothing in between can invalidate (account numbers never change).
  Background txs skip CheckTx, like txs a block proposer adds itself.
- CheckTx sees the last committed height as the SDK's check state does, so a tx whose
  `timeout_height` equals it passes CheckTx and then fails DeliverTx with code 30.
- Queries are answered at the latest height only; an earlier height is refused with code 18.
- Hashes (block id, data, app and results hashes) are SHA-256 digests of the localnet's own
  serializations, not CometBFT's Merkle roots; only `tx.hash` must match, and it does.
- A successful tx's `log` is empty (the SDK 0.45 JSON message log is not reproduced); its `data`
  is the real `TxMsgData`.
- A tx already in the mempool cache is CheckTx code 19 (CometBFT 0.35 answers it with a JSON-RPC
  error instead), so a client sees every refusal the same way.
- Empty lists are `[]` in the JSON (CometBFT writes Go's nil slices as `null`).
- The block store keeps the last `retain_blocks` heights, zlib-compressed (a busy block's JSON
  is tens of kilobytes); older ones are reported as pruned, as a pruning node does.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import bech32
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.base.abci.v1beta1.abci_pb2 import MsgData, TxMsgData
from ecdsa import SECP256k1

from adapters.sei import tx as txlib
from adapters.sei.codec import SECP256K1_PUBKEY_TYPE_URL, WASM_EXECUTE_TYPE_URL, DecodedTx, TxDecodeError, decode_tx
from adapters.sei.events import CONTRACT_ADDRESS_KEY, Event
from adapters.sei.keys import SEI_PREFIX, Signer
from adapters.sei.localnet.clob import Clob, ContractError, Market

CHAIN_ID = "flashmm-localnet-1"
NODE_VERSION = "0.35.0-sei-localnet"
# wasmd derives contract addresses from a hash; the localnet's one contract has a fixed one.
CONTRACT_ADDRESS = bech32.bech32_encode(
    SEI_PREFIX, bech32.convertbits(hashlib.sha256(b"flashmm-clob-v1").digest(), 8, 5, True)
)
# The SDK's module account address: the first 20 bytes of SHA-256 of the module name.
FEE_COLLECTOR = bech32.bech32_encode(
    SEI_PREFIX, bech32.convertbits(hashlib.sha256(b"fee_collector").digest()[:20], 8, 5, True)
)
BASE_DENOM = "usei"
QUOTE_DENOM = "uusdc"
DEFAULT_GENESIS_TIME_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z

# Gas model (see the module docstring).
TX_SIZE_COST_PER_BYTE = 10
SIG_VERIFY_COST_SECP256K1 = 1000
WASM_EXECUTE_COST = 60_000
WASM_ACTION_COST = 20_000
BACKGROUND_GAS_LIMIT = 10_000_000

MEMPOOL_MAX_TXS = 5000  # CometBFT's default mempool size
TX_CACHE_SIZE = 10_000  # CometBFT's default mempool cache

# ABCI codes, codespace "sdk", as the Cosmos SDK registers them.
CODE_TX_DECODE = 2
CODE_UNAUTHORIZED = 4
CODE_INSUFFICIENT_FUNDS = 5
CODE_UNKNOWN_REQUEST = 6
CODE_INVALID_ADDRESS = 7
CODE_INVALID_PUBKEY = 8
CODE_UNKNOWN_ADDRESS = 9
CODE_INVALID_COINS = 10
CODE_OUT_OF_GAS = 11
CODE_INSUFFICIENT_FEE = 13
CODE_NO_SIGNATURES = 15
CODE_INVALID_REQUEST = 18
CODE_TX_IN_MEMPOOL_CACHE = 19
CODE_KEY_NOT_FOUND = 22
CODE_TX_TIMEOUT_HEIGHT = 30
CODE_WRONG_SEQUENCE = 32
# wasmd's codes, codespace "wasm".
WASM_CODE_EXECUTE_FAILED = 5
WASM_CODE_QUERY_FAILED = 9
WASM_CODE_INVALID = 14
WASM_CODE_NO_SUCH_CONTRACT = 22


class MempoolFull(Exception):
    """CometBFT refuses the broadcast itself (a JSON-RPC error), not with a CheckTx code."""


class BlockUnavailable(LookupError):
    """A height above the latest, or pruned from the block store; the message says which."""


class BackgroundLiquidity(Protocol):
    """What the chain needs from `replay.TapeReplay`: one tape block per chain block, turned into
    execute messages for the `taker`, then (after those ran) for the `maker` account."""

    def advance(self) -> Any | None: ...

    def taker_msgs(self, block: Any, clob: Clob, height: int) -> list[dict]: ...

    def maker_msgs(self, block: Any, clob: Clob, height: int) -> list[dict]: ...


@dataclass(frozen=True)
class ChainConfig:
    """Everything that shapes the chain. Same config and same inputs give the same blocks."""

    seed: int = 0
    chain_id: str = CHAIN_ID
    genesis_time_ns: int = DEFAULT_GENESIS_TIME_NS
    min_gas_price: Decimal = Decimal("0.02")  # usei per unit of gas
    maker_fee_rate: Decimal = Decimal("0")
    taker_fee_rate: Decimal = Decimal("0.0005")
    retain_blocks: int = 20_000
    dev_bank: tuple[tuple[str, int], ...] = ((BASE_DENOM, 10**12), (QUOTE_DENOM, 10**11))
    dev_deposit: tuple[tuple[str, int], ...] = ((BASE_DENOM, 10**11), (QUOTE_DENOM, 10**11))
    background_bank: tuple[tuple[str, int], ...] = ((BASE_DENOM, 10**16),)
    background_deposit: tuple[tuple[str, int], ...] = ((BASE_DENOM, 10**16), (QUOTE_DENOM, 10**16))

    def __post_init__(self) -> None:
        if not self.chain_id:
            raise ValueError("chain_id must not be empty")
        if self.min_gas_price < 0:
            raise ValueError(f"min_gas_price must be >= 0, got {self.min_gas_price}")
        if self.retain_blocks < 1:
            raise ValueError(f"retain_blocks must be >= 1, got {self.retain_blocks}")

    def market(self) -> Market:
        return Market(
            base_denom=BASE_DENOM, quote_denom=QUOTE_DENOM, base_decimals=6, quote_decimals=6,
            tick_size=Decimal("0.0001"), lot_size=Decimal("0.1"), min_quantity=Decimal("0.1"),
            maker_fee_rate=Decimal(self.maker_fee_rate), taker_fee_rate=Decimal(self.taker_fee_rate),
            max_batch_actions=64, max_open_orders=200,
        )


def derive_key(seed: int, role: str) -> bytes:
    """The secp256k1 private key of a localnet account (`dev`, `maker`, `taker`): public
    knowledge for a given seed, which is the point: tests and the CLI derive the same keys."""
    for counter in itertools.count():
        key = hashlib.sha256(f"flashmm-localnet/{seed}/{role}/{counter}".encode()).digest()
        if 0 < int.from_bytes(key, "big") < SECP256k1.order:
            return key
    raise AssertionError("unreachable")


def account_signer(seed: int, role: str) -> Signer:
    """The signer of a localnet account; the chain holds the same one."""
    return Signer(PrivateKey(derive_key(seed, role)))


def execute_gas(tx_size: int, msg: dict[str, Any]) -> int:
    """Gas a tx of `tx_size` bytes executing `msg` uses on the localnet; a client's gas limit
    must be at least this."""
    name, body = next(iter(msg.items())) if isinstance(msg, dict) and len(msg) == 1 else (None, None)
    actions = body.get("actions") if name == "batch" and isinstance(body, dict) else None
    n_actions = len(actions) if isinstance(actions, list) else 1
    return (TX_SIZE_COST_PER_BYTE * tx_size + SIG_VERIFY_COST_SECP256K1 + WASM_EXECUTE_COST
            + WASM_ACTION_COST * n_actions)


def rfc3339_nano(time_ns: int) -> str:
    """Go's RFC3339Nano in UTC, as CometBFT writes block times: trailing zeros of the fraction
    dropped, no fraction at all on a whole second."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckTxResult:
    code: int
    log: str
    codespace: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """`broadcast_tx_sync`'s result."""
        return {"code": self.code, "data": "", "log": self.log, "codespace": self.codespace, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class TxResult:
    """One tx's DeliverTx outcome."""

    raw: bytes
    hash: str
    code: int
    log: str
    codespace: str
    data: bytes
    gas_wanted: int
    gas_used: int
    events: tuple[Event, ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code} if self.code else {}
        out.update({
            "data": base64.b64encode(self.data).decode(), "log": self.log, "info": "",
            "gas_wanted": str(self.gas_wanted), "gas_used": str(self.gas_used),
            "events": events_json(self.events), "codespace": self.codespace,
        })
        return out


@dataclass(frozen=True, slots=True)
class Block:
    """A committed block, with what the websocket pushes for it."""

    height: int
    time_ns: int
    hash: str
    block: dict[str, Any]  # the `block` JSON object of the RPC
    txs: tuple[TxResult, ...]

    def new_block_event(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """(`data`, composite `events`) of the NewBlock push."""
        value = {"block": self.block, "result_begin_block": {"events": []}, "result_end_block": {"events": []}}
        return {"type": "tendermint/event/NewBlock", "value": value}, {"tm.event": ["NewBlock"]}

    def tx_event(self, index: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """(`data`, composite `events`) of the Tx push of the tx at `index`."""
        result = self.txs[index]
        value = {"TxResult": {
            "height": str(self.height), "index": index, "tx": base64.b64encode(result.raw).decode(),
            "result": result.to_json(),
        }}
        composite = {"tm.event": ["Tx"], "tx.hash": [result.hash], "tx.height": [str(self.height)]}
        for event in result.events:
            for key, val in event.attributes:
                composite.setdefault(f"{event.type}.{key}", []).append(val)
        return {"type": "tendermint/event/Tx", "value": value}, composite


def events_json(events: tuple[Event, ...] | list[Event]) -> list[dict[str, Any]]:
    """CometBFT 0.35 JSON: attribute keys and values base64, every attribute indexed."""
    return [
        {"type": e.type, "attributes": [
            {"key": _b64(k), "value": _b64(v), "index": True} for k, v in e.attributes
        ]}
        for e in events
    ]


# -- state --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    number: int
    sequence: int
    public_key: bytes | None = None


class _TxError(Exception):
    """A tx (or query) refused with an ABCI code; `log` is the full log text the node returns."""

    def __init__(self, code: int, log: str, codespace: str = "sdk") -> None:
        super().__init__(log)
        self.code, self.log, self.codespace = code, log, codespace


@dataclass(frozen=True, slots=True)
class _Ante:
    """What a tx's ante checks established."""

    sender: str
    fee: int
    public_key: bytes


@dataclass(slots=True)
class _Faults:
    reject: int = 0
    reject_code: int = 0
    swallow: int = 0


@dataclass(slots=True)
class _Stored:
    block_id: str
    compressed: bytes  # zlib of {"block": ..., "results": ...}


class Chain:
    """One localnet chain. Not thread-safe: the server drives it from one event loop."""

    def __init__(self, config: ChainConfig | None = None, replay: BackgroundLiquidity | None = None) -> None:
        self.config = config or ChainConfig()
        self.chain_id = self.config.chain_id
        self.contract = CONTRACT_ADDRESS
        self.clob = Clob(self.config.market())
        self.replay = replay
        self.replay_exhausted = replay is None  # True once the tape is used up, or without one
        self._min_gas_price = Decimal(self.config.min_gas_price)
        seed = self.config.seed
        self.dev, self.maker, self.taker = (account_signer(seed, role) for role in ("dev", "maker", "taker"))
        self._accounts: dict[str, _Account] = {}
        self._bank: dict[tuple[str, str], int] = {}
        for address in (FEE_COLLECTOR, CONTRACT_ADDRESS, self.maker.address, self.taker.address, self.dev.address):
            self._accounts[address] = _Account(number=len(self._accounts), sequence=0)
        self._genesis_funds(self.dev.address, self.config.dev_bank, self.config.dev_deposit)
        for signer in (self.maker, self.taker):
            self._genesis_funds(signer.address, self.config.background_bank, self.config.background_deposit)

        self.height = 0
        self.time_ns = self.config.genesis_time_ns
        self._last_block_id = ""
        self._app_hash = hashlib.sha256(f"genesis/{self.chain_id}/{seed}".encode()).hexdigest().upper()
        self._last_results_hash = ""
        self._store: dict[int, _Stored] = {}
        self._pruned_through = 0  # `prune_history`: heights up to here are gone from the store
        # Check state: what CheckTx has accepted since the last commit, on top of the deliver state.
        self._check_sequence: dict[str, int] = {}
        self._check_fees: dict[str, int] = {}
        self._check_public_keys: dict[str, bytes] = {}
        self._mempool: list[tuple[bytes, DecodedTx]] = []
        self._tx_cache: OrderedDict[str, None] = OrderedDict()
        self._faults = _Faults()

    def _genesis_funds(self, address: str, bank: tuple[tuple[str, int], ...],
                       deposit: tuple[tuple[str, int], ...]) -> None:
        for denom, amount in bank:
            self._credit(address, denom, amount)
        if deposit:
            self.clob.execute(address, {"deposit": {}}, 0, deposit)
            for denom, amount in deposit:
                self._credit(CONTRACT_ADDRESS, denom, amount)

    # -- reading state ------------------------------------------------------------------------

    def account(self, address: str) -> txlib.AccountInfo | None:
        acc = self._accounts.get(address)
        if acc is None:
            return None
        return txlib.AccountInfo(address, acc.number, acc.sequence, acc.public_key)

    def balance(self, address: str, denom: str) -> int:
        return self._bank.get((address, denom), 0)

    @property
    def mempool_size(self) -> int:
        return len(self._mempool)

    @property
    def earliest_height(self) -> int:
        if not self.height:
            return 0
        return max(1, self.height - self.config.retain_blocks + 1, self._pruned_through + 1)

    def status(self) -> dict[str, Any]:
        latest = self._store.get(self.height)
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": hashlib.sha256(f"node/{self.chain_id}".encode()).hexdigest()[:40],
                "listen_addr": "", "network": self.chain_id, "version": NODE_VERSION, "channels": "",
                "moniker": "flashmm-localnet", "other": {"tx_index": "on", "rpc_address": ""},
            },
            "sync_info": {
                "latest_block_hash": latest.block_id if latest else "",
                "latest_app_hash": self._app_hash,
                "latest_block_height": str(self.height),
                "latest_block_time": rfc3339_nano(self.time_ns),
                "earliest_block_height": str(self.earliest_height),
                "catching_up": False,
            },
        }

    # -- CheckTx ------------------------------------------------------------------------------

    def check_tx(self, raw: bytes) -> CheckTxResult:
        """`broadcast_tx_sync`: code 0 puts the tx in the mempool for the next block."""
        tx_hash = hashlib.sha256(raw).hexdigest().upper()
        if self._faults.reject:
            self._faults.reject -= 1
            code = self._faults.reject_code
            return CheckTxResult(code, f"localnet fault injection: broadcast rejected with code {code}", "sdk", tx_hash)
        if tx_hash in self._tx_cache:
            return CheckTxResult(CODE_TX_IN_MEMPOOL_CACHE, "tx already in mempool", "sdk", tx_hash)
        if len(self._mempool) >= MEMPOOL_MAX_TXS:
            raise MempoolFull(f"mempool is full: number of txs {len(self._mempool)} (max: {MEMPOOL_MAX_TXS})")
        try:
            tx = _decode(raw)
            self._check_fee(tx)
            ante = self._ante(raw, tx, self.height, self._check_sequence, self._check_fees, self._check_public_keys)
            account = self._accounts[ante.sender]
            sequence = tx.signers[0].sequence
            if not txlib.verify_signature(raw, chain_id=self.chain_id, account_number=account.number,
                                          public_key=ante.public_key):
                raise _TxError(CODE_UNAUTHORIZED, (
                    f"signature verification failed; please verify account number ({account.number}), "
                    f"sequence ({sequence}) and chain-id ({self.chain_id}): unauthorized"
                ))
        except _TxError as e:
            return CheckTxResult(e.code, e.log, e.codespace, tx_hash)
        self._check_sequence[ante.sender] = sequence + 1
        self._check_fees[ante.sender] = self._check_fees.get(ante.sender, 0) + ante.fee
        self._check_public_keys[ante.sender] = ante.public_key
        if self._faults.swallow:
            # Evicted as soon as accepted: never included, and (as CometBFT does on eviction)
            # dropped from the cache, so the same bytes may be broadcast again.
            self._faults.swallow -= 1
        else:
            self._mempool.append((raw, tx))
            self._remember(tx_hash)
        return CheckTxResult(0, "", "", tx_hash)

    def _check_fee(self, tx: DecodedTx) -> None:
        """The validator's minimum gas price, checked in CheckTx only, as the SDK does."""
        required = math.ceil(tx.gas_limit * self._min_gas_price)
        paid = sum(c.amount for c in tx.fee if c.denom == BASE_DENOM)
        if paid < required or any(c.denom != BASE_DENOM for c in tx.fee):
            got = ",".join(str(c) for c in tx.fee)
            raise _TxError(CODE_INSUFFICIENT_FEE,
                           f"insufficient fees; got: {got} required: {required}{BASE_DENOM}: insufficient fee")

    def _ante(
        self, raw: bytes, tx: DecodedTx, height: int, sequences: dict[str, int], spent: dict[str, int],
        public_keys: dict[str, bytes],
    ) -> _Ante:
        """The SDK's ante checks after the fee price, in its order; `sequences`, `spent` and
        `public_keys` overlay the deliver state (empty in DeliverTx)."""
        if not tx.signatures:
            raise _TxError(CODE_NO_SIGNATURES, "no signatures supplied")
        if len(tx.signers) != 1 or len(tx.signatures) != 1:
            raise _TxError(CODE_UNAUTHORIZED, (
                f"wrong number of signers; expected 1, got {len(tx.signers)} signer infos and "
                f"{len(tx.signatures)} signatures: unauthorized"
            ))
        signer = tx.signers[0]
        if signer.sign_mode != "SIGN_MODE_DIRECT":
            raise _TxError(CODE_INVALID_REQUEST, f"sign mode {signer.sign_mode}: "
                           "the localnet verifies SIGN_MODE_DIRECT only: invalid request")
        if signer.pubkey_type is not None and signer.pubkey_type != SECP256K1_PUBKEY_TYPE_URL:
            raise _TxError(CODE_INVALID_PUBKEY,
                           f"unsupported public key type {signer.pubkey_type[:80]!r}: invalid pubkey")
        if tx.timeout_height and height > tx.timeout_height:
            raise _TxError(CODE_TX_TIMEOUT_HEIGHT, (
                f"tx timeout height; current height: {height}, timeout height: {tx.timeout_height}: tx timeout height"
            ))
        ante_gas = TX_SIZE_COST_PER_BYTE * len(raw) + SIG_VERIFY_COST_SECP256K1
        if tx.gas_limit < ante_gas:
            raise _TxError(CODE_OUT_OF_GAS, (
                f"out of gas in location: txSize; gasWanted: {tx.gas_limit}, gasUsed: {ante_gas}: out of gas"
            ))
        sender = tx.messages[0].sender
        account = self._accounts.get(sender)
        if account is None:
            raise _TxError(CODE_UNKNOWN_ADDRESS, f"fee payer address: {sender} does not exist: unknown address")
        fee = sum(c.amount for c in tx.fee if c.denom == BASE_DENOM)
        available = self.balance(sender, BASE_DENOM) - spent.get(sender, 0)
        if available < fee:
            raise _TxError(CODE_INSUFFICIENT_FUNDS,
                           f"{available}{BASE_DENOM} is smaller than {fee}{BASE_DENOM}: insufficient funds")
        if signer.pubkey_bytes is not None:
            if txlib.address_of(signer.pubkey_bytes) != sender:
                raise _TxError(CODE_INVALID_PUBKEY,
                               f"pubKey does not match signer address {sender} with signer index: 0: invalid pubkey")
            public_key = signer.pubkey_bytes
        else:
            public_key = public_keys.get(sender, account.public_key)
            if public_key is None:
                raise _TxError(CODE_INVALID_PUBKEY, f"pubkey on account {sender} is not set: invalid pubkey")
        expected = sequences.get(sender, account.sequence)
        if signer.sequence != expected:
            raise _TxError(CODE_WRONG_SEQUENCE, (
                f"account sequence mismatch, expected {expected}, got {signer.sequence}: incorrect account sequence"
            ))
        return _Ante(sender, fee, public_key)

    def _remember(self, tx_hash: str) -> None:
        self._tx_cache[tx_hash] = None
        if len(self._tx_cache) > TX_CACHE_SIZE:
            self._tx_cache.popitem(last=False)

    # -- blocks -------------------------------------------------------------------------------

    def produce_block(self, time_ns: int) -> Block:
        """Commit the next block at `time_ns` (strictly after the previous block's time)."""
        if time_ns <= self.time_ns:
            raise ValueError(f"block time {time_ns} must be after the previous block time {self.time_ns}")
        height = self.height + 1
        results: list[TxResult] = []
        if not self.replay_exhausted:
            tape_block = self.replay.advance()
            if tape_block is None:
                self.replay_exhausted = True
            else:
                for msg in self.replay.taker_msgs(tape_block, self.clob, height):
                    results.append(self._deliver_background(self.taker, msg, height))
                for msg in self.replay.maker_msgs(tape_block, self.clob, height):
                    results.append(self._deliver_background(self.maker, msg, height))
        mempool, self._mempool = self._mempool, []
        for raw, tx in mempool:
            results.append(self._deliver(raw, tx, height))
        self._check_sequence.clear()
        self._check_fees.clear()
        self._check_public_keys.clear()
        return self._commit(height, time_ns, tuple(results))

    def _deliver_background(self, signer: Signer, msg: dict[str, Any], height: int) -> TxResult:
        account = self._accounts[signer.address]
        raw = txlib.build_execute_tx(
            signer, chain_id=self.chain_id, account_number=account.number, sequence=account.sequence,
            contract=self.contract, msg=msg, gas_limit=BACKGROUND_GAS_LIMIT,
            fee_amount=math.ceil(BACKGROUND_GAS_LIMIT * self._min_gas_price),
        )
        return self._deliver(raw, decode_tx(raw), height)

    def _deliver(self, raw: bytes, tx: DecodedTx, height: int) -> TxResult:
        def failed(code: int, log: str, codespace: str, gas_used: int, events: list[Event]) -> TxResult:
            return TxResult(raw, tx.hash, code, log, codespace, b"", tx.gas_limit, gas_used, tuple(events))

        try:
            ante = self._ante(raw, tx, height, {}, {}, {})
        except _TxError as e:
            # A failed ante handler leaves no trace in the state: no fee, no sequence, no events.
            return failed(e.code, e.log, e.codespace, min(tx.gas_limit, TX_SIZE_COST_PER_BYTE * len(raw)), [])
        account = self._accounts[ante.sender]
        self._debit(ante.sender, BASE_DENOM, ante.fee)
        self._credit(FEE_COLLECTOR, BASE_DENOM, ante.fee)
        account.sequence += 1
        account.public_key = ante.public_key
        events = _transfer_events(ante.sender, FEE_COLLECTOR, f"{ante.fee}{BASE_DENOM}") if ante.fee else []
        events += [
            Event("tx", (("fee", ",".join(str(c) for c in tx.fee)), ("fee_payer", ante.sender))),
            Event("tx", (("acc_seq", f"{ante.sender}/{tx.signers[0].sequence}"),)),
            Event("tx", (("signature", base64.b64encode(tx.signatures[0]).decode()),)),
        ]
        message = tx.messages[0]
        gas_used = execute_gas(len(raw), message.msg)
        if gas_used > tx.gas_limit:
            return failed(CODE_OUT_OF_GAS, (
                f"out of gas in location: wasm contract; gasWanted: {tx.gas_limit}, gasUsed: {gas_used}: out of gas"
            ), "sdk", gas_used, events)
        try:
            msg_events = self._execute(ante.sender, message.contract, message.msg, message.funds, height)
        except _TxError as e:
            return failed(e.code, f"failed to execute message; message index: 0: {e.log}", e.codespace, gas_used,
                          events)
        data = TxMsgData(data=[MsgData(msg_type=WASM_EXECUTE_TYPE_URL, data=b"")]).SerializeToString()
        return TxResult(raw, tx.hash, 0, "", "", data, tx.gas_limit, gas_used, tuple(events + msg_events))

    def _execute(self, sender: str, contract: str, msg: dict[str, Any], funds, height: int) -> list[Event]:
        """wasmd's MsgExecuteContract: funds to the contract, the call, then the contract's bank
        messages (withdrawals). Nothing is applied unless all of it succeeds."""
        if contract != self.contract:
            raise _TxError(WASM_CODE_NO_SUCH_CONTRACT, f"no such contract: {contract}", "wasm")
        for coin in funds:
            have = self.balance(sender, coin.denom)
            if have < coin.amount:
                raise _TxError(CODE_INSUFFICIENT_FUNDS,
                               f"{have}{coin.denom} is smaller than {coin}: insufficient funds")
        try:
            contract_events = self.clob.execute(sender, msg, height, [(c.denom, c.amount) for c in funds])
        except ContractError as e:
            raise _TxError(WASM_CODE_EXECUTE_FAILED, f"{e}: execute wasm contract failed", "wasm") from None
        events = [
            Event("message", (("action", WASM_EXECUTE_TYPE_URL),)),
            Event("message", (("module", "wasm"), ("sender", sender))),
        ]
        if funds:
            for coin in funds:
                self._debit(sender, coin.denom, coin.amount)
                self._credit(contract, coin.denom, coin.amount)
            events += _transfer_events(sender, contract, ",".join(str(c) for c in funds))
        # Sei's wasmd emits a plain `wasm` event only when the contract returns plain attributes,
        # and ours returns none: `execute._contract_address` is what finds every call.
        events.append(Event("execute", ((CONTRACT_ADDRESS_KEY, contract),)))
        for event in contract_events:
            events.append(Event(event.type, ((CONTRACT_ADDRESS_KEY, contract),) + event.attributes))
        for event in contract_events:
            if event.type == "wasm-withdraw":
                coin = event.get("amount")
                amount, denom = _COIN.fullmatch(coin).groups()
                self._debit(contract, denom, int(amount))
                self._credit(sender, denom, int(amount))
                events += _transfer_events(contract, sender, coin)
        return events

    def _commit(self, height: int, time_ns: int, results: tuple[TxResult, ...]) -> Block:
        tx_hashes = b"".join(bytes.fromhex(r.hash) for r in results)
        header = {
            "version": {"block": "11", "app": "0"},
            "chain_id": self.chain_id,
            "height": str(height),
            "time": rfc3339_nano(time_ns),
            "last_block_id": _block_id(self._last_block_id),
            "last_commit_hash": _digest(f"commit/{self._last_block_id}".encode()),
            "data_hash": _digest(tx_hashes),
            "validators_hash": _VALIDATORS_HASH,
            "next_validators_hash": _VALIDATORS_HASH,
            "consensus_hash": _digest(b"flashmm-localnet/consensus-params"),
            "app_hash": self._app_hash,
            "last_results_hash": self._last_results_hash,
            "evidence_hash": _digest(b""),
            "proposer_address": _PROPOSER_ADDRESS,
        }
        block_id = _digest(_canonical(header))
        block = {
            "header": header,
            "data": {"txs": [base64.b64encode(r.raw).decode() for r in results]},
            "evidence": {"evidence": []},
            "last_commit": {
                "height": str(height - 1), "round": 0, "block_id": _block_id(self._last_block_id), "signatures": [],
            },
        }
        results_json = {
            "height": str(height),
            "txs_results": [r.to_json() for r in results],
            "begin_block_events": [],
            "end_block_events": [],
            "validator_updates": None,
            "consensus_param_updates": None,
        }
        stored = json.dumps({"block": block, "results": results_json}, separators=(",", ":")).encode("utf-8")
        self._store[height] = _Stored(block_id, zlib.compress(stored, 1))
        self._store.pop(height - self.config.retain_blocks, None)
        self._last_results_hash = _digest(_canonical(results_json["txs_results"]))
        self._app_hash = _digest(bytes.fromhex(self._app_hash) + bytes.fromhex(self._last_results_hash))
        self._last_block_id = block_id
        self.height, self.time_ns = height, time_ns
        for result in results:
            self._remember(result.hash)
        return Block(height, time_ns, block_id, block, results)

    def block(self, height: int | None = None) -> dict[str, Any]:
        """The `block` RPC's result (latest when `height` is None)."""
        stored = self._stored(height)
        return {"block_id": _block_id(stored.block_id), "block": _load(stored)["block"]}

    def block_results(self, height: int | None = None) -> dict[str, Any]:
        """The `block_results` RPC's result (latest when `height` is None)."""
        return _load(self._stored(height))["results"]

    def _stored(self, height: int | None) -> _Stored:
        h = self.height if height is None else height
        if h < 1:
            raise BlockUnavailable(f"height must be greater than 0, but got {h}")
        if h > self.height:
            raise BlockUnavailable(f"height {h} must be less than or equal to "
                                   f"the current blockchain height {self.height}")
        stored = self._store.get(h)
        if stored is None:
            raise BlockUnavailable(f"height {h} is not available, lowest height is {self.earliest_height}")
        return stored

    # -- queries ------------------------------------------------------------------------------

    def abci_query(self, path: str, data: bytes, height: int = 0) -> dict[str, Any]:
        """The `abci_query` RPC's result for the three paths FlashMM reads."""
        try:
            if height not in (0, self.height):
                if height > self.height:
                    raise _TxError(CODE_INVALID_REQUEST, "cannot query with height in the future; "
                                   "please provide a valid height: invalid request")
                raise _TxError(CODE_INVALID_REQUEST, f"the localnet answers queries at the latest height "
                               f"({self.height}) only: invalid request")
            handler = self._query_handlers().get(path)
            if handler is None:
                raise _TxError(CODE_UNKNOWN_REQUEST, f"unknown query path {path[:200]!r}: unknown request")
            value = handler(data)
        except _TxError as e:
            return _query_response(e.code, e.log, e.codespace, None, self.height)
        return _query_response(0, "", "", value, self.height)

    def _query_handlers(self) -> dict[str, Callable[[bytes], bytes]]:
        return {
            txlib.ACCOUNT_QUERY_PATH: self._query_account,
            txlib.SMART_QUERY_PATH: self._query_smart,
            txlib.BALANCE_QUERY_PATH: self._query_balance,
        }

    def _query_account(self, data: bytes) -> bytes:
        address = _request(txlib.decode_account_request, data)
        _check_address(address)
        account = self.account(address)
        if account is None:
            raise _TxError(CODE_KEY_NOT_FOUND,
                           f"rpc error: code = NotFound desc = account {address} not found: key not found")
        return txlib.encode_account_response(account)

    def _query_smart(self, data: bytes) -> bytes:
        contract, query = _request(txlib.decode_smart_query_request, data)
        _check_address(contract)
        if contract != self.contract:
            raise _TxError(WASM_CODE_NO_SUCH_CONTRACT, f"no such contract: {contract}", "wasm")
        try:
            msg = json.loads(query.decode("utf-8"))
        except (ValueError, RecursionError):
            raise _TxError(WASM_CODE_QUERY_FAILED,
                           "flashmm_clob: invalid_message: query is not JSON: query wasm contract failed",
                           "wasm") from None
        try:
            answer = self.clob.query(msg, self.height)
        except ContractError as e:
            raise _TxError(WASM_CODE_QUERY_FAILED, f"{e}: query wasm contract failed", "wasm") from None
        return txlib.encode_smart_query_response(answer)

    def _query_balance(self, data: bytes) -> bytes:
        address, denom = _request(txlib.decode_balance_request, data)
        _check_address(address)
        if not denom:
            raise _TxError(CODE_INVALID_REQUEST, "invalid denom: invalid request")
        return txlib.encode_balance_response(denom, self.balance(address, denom))

    # -- faults -------------------------------------------------------------------------------

    def reject_next(self, count: int, code: int) -> None:
        """Refuse the next `count` broadcasts with `code` (codespace sdk) before any check."""
        if count < 0 or code <= 0:
            raise ValueError(f"reject_next needs count >= 0 and code > 0, got count={count}, code={code}")
        self._faults.reject, self._faults.reject_code = count, code

    def skew_sequence(self, address: str, by: int) -> None:
        """Advance an account's sequence by `by`, as if txs signed with its key had landed
        through another node: every tx the client signed for the old sequence now fails 32."""
        account = self._accounts.get(address)
        if account is None:
            raise ValueError(f"skew_sequence: no account {address!r} on the localnet")
        if by < 1:
            raise ValueError(f"skew_sequence: by must be >= 1, got {by}")
        account.sequence += by
        if address in self._check_sequence:
            self._check_sequence[address] += by

    def prune_history(self) -> None:
        """Forget every block stored so far, as a node restored from a state-sync snapshot has no
        history: `block` and `block_results` answer "not available" below the next height."""
        self._pruned_through = self.height
        self._store.clear()

    def swallow_next(self, count: int) -> None:
        """Accept the next `count` valid txs in CheckTx (code 0, hash returned) and never include
        them, as when a node evicts them from its mempool."""
        if count < 0:
            raise ValueError(f"swallow_next needs count >= 0, got {count}")
        self._faults.swallow = count

    # -- bank ---------------------------------------------------------------------------------

    def _credit(self, address: str, denom: str, amount: int) -> None:
        self._bank[(address, denom)] = self._bank.get((address, denom), 0) + amount

    def _debit(self, address: str, denom: str, amount: int) -> None:
        balance = self._bank.get((address, denom), 0) - amount
        assert balance >= 0, (address, denom, balance)
        self._bank[(address, denom)] = balance


# -- helpers ------------------------------------------------------------------------------------


def _decode(raw: bytes) -> DecodedTx:
    """decode_tx plus the messages' ValidateBasic, which runs before any ante check."""
    try:
        tx = decode_tx(raw)
    except TxDecodeError as e:
        raise _TxError(CODE_TX_DECODE, f"{e}: tx parse error") from None
    if len(tx.messages) != 1:
        raise _TxError(CODE_INVALID_REQUEST,
                       f"the localnet accepts one message per tx, got {len(tx.messages)}: invalid request")
    message = tx.messages[0]
    if message.type_url != WASM_EXECUTE_TYPE_URL:
        raise _TxError(CODE_INVALID_REQUEST, (
            f"message type {message.type_url[:80]!r}: the localnet runs {WASM_EXECUTE_TYPE_URL} only: invalid request"
        ))
    for name, address in (("sender", message.sender), ("contract", message.contract)):
        problem = _address_problem(address)
        if problem:
            raise _TxError(CODE_INVALID_ADDRESS, f"{name}: {problem}: invalid address")
    if message.msg is None:
        raise _TxError(WASM_CODE_INVALID, "payload msg: not a JSON object: invalid", "wasm")
    denoms = [c.denom for c in message.funds]
    if any(c.amount == 0 for c in message.funds) or len(set(denoms)) != len(denoms) or denoms != sorted(denoms):
        raise _TxError(CODE_INVALID_COINS, f"sentFunds: {','.join(str(c) for c in message.funds)}: invalid coins")
    if tx.fee_granter or tx.fee_payer:
        raise _TxError(CODE_INVALID_REQUEST,
                       "fee grants and fee payers are not supported by the localnet: invalid request")
    return tx


def _address_problem(address: str) -> str | None:
    if not address:
        return "empty address string is not allowed"
    hrp, data = bech32.bech32_decode(address)
    if hrp is None:
        return f"decoding bech32 failed for {address[:100]!r}"
    if hrp != SEI_PREFIX:
        return f"invalid Bech32 prefix; expected {SEI_PREFIX}, got {hrp}"
    return None


def _check_address(address: str) -> None:
    problem = _address_problem(address)
    if problem:
        raise _TxError(CODE_INVALID_REQUEST, f"{problem}: invalid request")


def _request(decoder, data: bytes):
    try:
        return decoder(data)
    except txlib.PayloadDecodeError as e:
        raise _TxError(CODE_INVALID_REQUEST, f"{e}: invalid request") from None


def _query_response(code: int, log: str, codespace: str, value: bytes | None, height: int) -> dict[str, Any]:
    return {"response": {
        "code": code, "log": log, "info": "", "index": "0", "key": None,
        "value": None if value is None else base64.b64encode(value).decode(),
        "proofOps": None, "height": str(height), "codespace": codespace,
    }}


def _transfer_events(sender: str, recipient: str, amount: str) -> list[Event]:
    return [
        Event("coin_spent", (("spender", sender), ("amount", amount))),
        Event("coin_received", (("receiver", recipient), ("amount", amount))),
        Event("transfer", (("recipient", recipient), ("sender", sender), ("amount", amount))),
    ]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _block_id(block_hash: str) -> dict[str, Any]:
    return {"hash": block_hash,
            "parts": {"total": 1 if block_hash else 0, "hash": _digest(block_hash.encode()) if block_hash else ""}}


def _load(stored: _Stored) -> dict[str, Any]:
    return json.loads(zlib.decompress(stored.compressed))


_COIN = re.compile(r"([0-9]+)(.+)")
_VALIDATORS_HASH = _digest(b"flashmm-localnet/validators")
_PROPOSER_ADDRESS = _digest(b"flashmm-localnet/validator")[:40]
