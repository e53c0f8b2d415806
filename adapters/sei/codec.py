"""Decoding signed Cosmos transactions (`TxRaw`) as Sei carries them.

FlashMM reads transactions back from the chain (its own, and anything else that touched the CLOB
contract) to reconcile what it sent with what landed. A transaction's identity is the SHA-256 of
its exact `TxRaw` bytes, so decoding starts from those bytes rather than from any re-encoding.

`decode_tx` is meant for untrusted input (blocks from a public RPC node): any malformed input
raises `TxDecodeError` and nothing else. It refuses what the chain could never have accepted at
the protobuf level (undecodable bytes, a body with no messages, auth info with no fee, a fee
amount that is not an integer) but does not re-run the chain's semantic checks.

A `MsgExecuteContract` whose `msg` is not a JSON object keeps `msg=None` instead of failing the
whole transaction: the chain rejects non-JSON and the contract rejects non-objects, but such a
transaction still has a hash, a fee and a sequence worth reconciling, and `raw` keeps its bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey as Secp256k1PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, TxBody, TxRaw
from cosmpy.protos.cosmwasm.wasm.v1.tx_pb2 import MsgExecuteContract
from google.protobuf.message import DecodeError

WASM_EXECUTE_TYPE_URL = "/cosmwasm.wasm.v1.MsgExecuteContract"
SECP256K1_PUBKEY_TYPE_URL = "/cosmos.crypto.secp256k1.PubKey"

# Cosmos SDK Int amounts are unsigned decimal digits (at most 256 bits, 78 digits); int() alone
# would also accept "+1", " 1" and "1_0".
_AMOUNT = re.compile(r"[0-9]{1,80}")


class TxDecodeError(ValueError):
    """The bytes are not a transaction Sei could have decoded."""


@dataclass(frozen=True, slots=True)
class Coin:
    amount: int
    denom: str

    def __str__(self) -> str:
        # The Cosmos string form, as the chain writes it in events (e.g. the `tx` event's `fee`).
        return f"{self.amount}{self.denom}"


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the body; the wasm fields are None for types other than MsgExecuteContract."""

    type_url: str
    sender: str | None
    contract: str | None
    msg: dict[str, Any] | None
    funds: tuple[Coin, ...]
    raw: bytes


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """`pubkey_bytes` is the compressed key for secp256k1 and the undecoded `Any` value for other
    key types; both are None when the signer relies on the key already stored on chain.
    `sign_mode` is the SignMode name, "MULTI" for a multisig, None when unset."""

    pubkey_type: str | None
    pubkey_bytes: bytes | None
    sequence: int
    sign_mode: str | None


@dataclass(frozen=True, slots=True)
class DecodedTx:
    hash: str
    messages: tuple[Message, ...]
    memo: str
    timeout_height: int
    fee: tuple[Coin, ...]
    gas_limit: int
    fee_payer: str | None
    fee_granter: str | None
    signers: tuple[SignerInfo, ...]
    signatures: tuple[bytes, ...]


def tx_hash(raw: bytes) -> str:
    """The hash CometBFT indexes a transaction under, as Sei's RPC and explorers print it."""
    return hashlib.sha256(raw).hexdigest().upper()


def decode_tx(raw: bytes) -> DecodedTx:
    tx = parse_proto(TxRaw, raw, "TxRaw")
    body = parse_proto(TxBody, tx.body_bytes, "TxBody")
    auth = parse_proto(AuthInfo, tx.auth_info_bytes, "AuthInfo")
    if not body.messages:
        raise TxDecodeError("tx body has no messages (empty or missing body)")
    if not auth.HasField("fee"):
        raise TxDecodeError("tx auth info has no fee (empty or missing auth info)")
    return DecodedTx(
        hash=tx_hash(raw),
        messages=tuple(_message(i, any_msg) for i, any_msg in enumerate(body.messages)),
        memo=body.memo,
        timeout_height=body.timeout_height,
        fee=_coins(auth.fee.amount, "fee"),
        gas_limit=auth.fee.gas_limit,
        fee_payer=auth.fee.payer or None,
        fee_granter=auth.fee.granter or None,
        signers=tuple(_signer(info) for info in auth.signer_infos),
        signatures=tuple(tx.signatures),
    )


def parse_proto(cls, data: bytes, what: str, error: type[ValueError] = TxDecodeError):
    """`data` as protobuf message `cls`; undecodable bytes raise `error` naming `what`."""
    message = cls()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise error(f"{what}: not valid protobuf ({exc})") from None
    return message



def _coins(coins, where: str) -> tuple[Coin, ...]:
    out = []
    for coin in coins:
        if not _AMOUNT.fullmatch(coin.amount):
            raise TxDecodeError(f"{where}: coin amount {coin.amount[:40]!r} is not a non-negative integer")
        out.append(Coin(amount=int(coin.amount), denom=coin.denom))
    return tuple(out)


def _message(index: int, any_msg) -> Message:
    if any_msg.type_url != WASM_EXECUTE_TYPE_URL:
        return Message(any_msg.type_url, None, None, None, (), any_msg.value)
    execute = parse_proto(MsgExecuteContract, any_msg.value, f"message {index} (MsgExecuteContract)")
    return Message(
        type_url=any_msg.type_url,
        sender=execute.sender,
        contract=execute.contract,
        msg=_json_object(execute.msg),
        funds=_coins(execute.funds, f"message {index} funds"),
        raw=any_msg.value,
    )


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        # parse_constant refuses NaN/Infinity, which Go's json.Valid (the chain's check) rejects too.
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str):
    raise ValueError(f"JSON constant {name} is not valid JSON")


def _signer(info) -> SignerInfo:
    pubkey_type = pubkey_bytes = None
    if info.HasField("public_key"):
        pubkey_type = info.public_key.type_url
        pubkey_bytes = info.public_key.value
        if pubkey_type == SECP256K1_PUBKEY_TYPE_URL:
            pubkey_bytes = parse_proto(Secp256k1PubKey, pubkey_bytes, "secp256k1 PubKey").key
    return SignerInfo(pubkey_type, pubkey_bytes, info.sequence, _sign_mode(info.mode_info))


def _sign_mode(mode_info) -> str | None:
    kind = mode_info.WhichOneof("sum")
    if kind == "multi":
        return "MULTI"
    if kind == "single":
        known = SignMode.DESCRIPTOR.values_by_number.get(mode_info.single.mode)
        return known.name if known is not None else f"SIGN_MODE_{mode_info.single.mode}"
    return None
