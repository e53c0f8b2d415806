"""Building, signing and verifying the transactions FlashMM sends to the CLOB contract, and the
protobuf payloads of the three `abci_query` paths it reads.

One module serves both ends of the wire, the execution client that signs and the localnet that
verifies, so the two cannot drift apart: a tx built here is accepted by the localnet exactly when
a Cosmos SDK chain would accept its signature.

Signing is SIGN_MODE_DIRECT: the signature covers the serialized `SignDoc{body_bytes,
auth_info_bytes, chain_id, account_number}`, so a tx replayed on another chain, for another
account, or with any byte of its body or auth info (the sequence lives there) changed, no longer
verifies. The SDK checks ECDSA over SHA-256 of those bytes and refuses high-S signatures (the
other half of each malleable pair), and so does `verify_signature`.

Decoders of query payloads take untrusted bytes (an RPC node's answer, a client's request) and
raise `PayloadDecodeError`, a `ValueError`, on anything malformed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ecdsa
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PublicKey
from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from cosmpy.protos.cosmos.auth.v1beta1.query_pb2 import QueryAccountRequest, QueryAccountResponse
from cosmpy.protos.cosmos.bank.v1beta1.query_pb2 import QueryBalanceRequest, QueryBalanceResponse
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin as CoinProto
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey as Secp256k1PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, Fee, ModeInfo, SignDoc, SignerInfo, TxBody, TxRaw
from cosmpy.protos.cosmwasm.wasm.v1.query_pb2 import (
    QuerySmartContractStateRequest,
    QuerySmartContractStateResponse,
)
from cosmpy.protos.cosmwasm.wasm.v1.tx_pb2 import MsgExecuteContract
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError

from adapters.sei.codec import SECP256K1_PUBKEY_TYPE_URL, WASM_EXECUTE_TYPE_URL, parse_proto
from adapters.sei.keys import SEI_PREFIX, Signer

FEE_DENOM = "usei"
ACCOUNT_QUERY_PATH = "/cosmos.auth.v1beta1.Query/Account"
SMART_QUERY_PATH = "/cosmwasm.wasm.v1.Query/SmartContractState"
BALANCE_QUERY_PATH = "/cosmos.bank.v1beta1.Query/Balance"
BASE_ACCOUNT_TYPE_URL = "/cosmos.auth.v1beta1.BaseAccount"

_UINT64_MAX = 2**64 - 1
_HALF_ORDER = ecdsa.SECP256k1.order // 2


class PayloadDecodeError(ValueError):
    """Bytes that are not the protobuf message a query path carries."""


def execute_msg_bytes(msg: dict[str, Any]) -> bytes:
    """The contract message as JSON bytes: compact, key order as given, so the same dict always
    signs to the same bytes."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def build_execute_tx(
    signer: Signer,
    *,
    chain_id: str,
    account_number: int,
    sequence: int,
    contract: str,
    msg: dict[str, Any],
    fee_amount: int,
    gas_limit: int,
    fee_denom: str = FEE_DENOM,
    timeout_height: int = 0,
    memo: str = "",
    funds: Sequence[tuple[str, int]] = (),
) -> bytes:
    """A signed `TxRaw` carrying one `MsgExecuteContract` from `signer`. `funds` are
    (denom, amount) coins attached to the message (only `deposit` accepts them)."""
    for name, value in (("account_number", account_number), ("sequence", sequence), ("fee_amount", fee_amount),
                        ("gas_limit", gas_limit), ("timeout_height", timeout_height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT64_MAX:
            raise ValueError(f"{name} must be an integer in 0..2^64-1, got {value!r}")
    if not chain_id:
        raise ValueError("chain_id must not be empty")
    execute = MsgExecuteContract(
        sender=signer.address, contract=contract, msg=execute_msg_bytes(msg),
        funds=[CoinProto(denom=d, amount=str(a)) for d, a in funds],
    )
    body = TxBody(
        messages=[AnyProto(type_url=WASM_EXECUTE_TYPE_URL, value=execute.SerializeToString())],
        memo=memo, timeout_height=timeout_height,
    )
    auth_info = AuthInfo(
        signer_infos=[SignerInfo(
            public_key=AnyProto(
                type_url=SECP256K1_PUBKEY_TYPE_URL,
                value=Secp256k1PubKey(key=signer.public_key_bytes).SerializeToString(),
            ),
            mode_info=ModeInfo(single=ModeInfo.Single(mode=SignMode.SIGN_MODE_DIRECT)),
            sequence=sequence,
        )],
        fee=Fee(amount=[CoinProto(denom=fee_denom, amount=str(fee_amount))], gas_limit=gas_limit),
    )
    body_bytes, auth_info_bytes = body.SerializeToString(), auth_info.SerializeToString()
    signature = signer.sign(sign_doc_bytes(body_bytes, auth_info_bytes, chain_id, account_number))
    return TxRaw(body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, signatures=[signature]).SerializeToString()


def sign_doc_bytes(body_bytes: bytes, auth_info_bytes: bytes, chain_id: str, account_number: int) -> bytes:
    """What SIGN_MODE_DIRECT signs. The body and auth info go in as the exact bytes the tx
    carries, never re-encoded, so signer and verifier hash the same bytes."""
    return SignDoc(
        body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, chain_id=chain_id, account_number=account_number
    ).SerializeToString()


def verify_signature(raw: bytes, *, chain_id: str, account_number: int, public_key: bytes) -> bool:
    """True when the first signature of `raw` is `public_key`'s low-S ECDSA signature of the
    tx's SIGN_MODE_DIRECT SignDoc for this chain and account. Malformed input is simply False:
    whoever decoded the tx has already reported what is wrong with it."""
    tx = TxRaw()
    try:
        tx.ParseFromString(raw)
    except DecodeError:
        return False
    if not tx.signatures or len(tx.signatures[0]) != 64:
        return False
    signature = tx.signatures[0]
    if int.from_bytes(signature[32:], "big") > _HALF_ORDER:
        return False
    key = _verifying_key(bytes(public_key))
    if key is None:
        return False
    message = sign_doc_bytes(tx.body_bytes, tx.auth_info_bytes, chain_id, account_number)
    try:
        return key.verify(signature, message, hashfunc=hashlib.sha256, sigdecode=ecdsa.util.sigdecode_string)
    except ecdsa.BadSignatureError:
        return False


@lru_cache(maxsize=1024)
def _verifying_key(public_key: bytes) -> ecdsa.VerifyingKey | None:
    """Decompressing a point costs about as much as a verification; a chain sees few keys."""
    if len(public_key) != 33:
        return None
    try:
        return ecdsa.VerifyingKey.from_string(public_key, curve=ecdsa.SECP256k1)
    except (ecdsa.MalformedPointError, ValueError):
        return None


def address_of(public_key: bytes) -> str:
    """The `sei1…` account address of a compressed secp256k1 public key (RIPEMD-160 of SHA-256)."""
    return str(Address(PublicKey(public_key), prefix=SEI_PREFIX))


# -- abci_query payloads -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account as the auth module stores it; `public_key` is None until its first tx."""

    address: str
    account_number: int
    sequence: int
    public_key: bytes | None


def encode_account_request(address: str) -> bytes:
    return QueryAccountRequest(address=address).SerializeToString()


def decode_account_request(data: bytes) -> str:
    return _parse(QueryAccountRequest, data, "QueryAccountRequest").address


def encode_account_response(account: AccountInfo) -> bytes:
    base = BaseAccount(address=account.address, account_number=account.account_number, sequence=account.sequence)
    if account.public_key is not None:
        base.pub_key.CopyFrom(AnyProto(
            type_url=SECP256K1_PUBKEY_TYPE_URL, value=Secp256k1PubKey(key=account.public_key).SerializeToString()
        ))
    response = QueryAccountResponse()
    response.account.CopyFrom(AnyProto(type_url=BASE_ACCOUNT_TYPE_URL, value=base.SerializeToString()))
    return response.SerializeToString()


def decode_account_response(data: bytes) -> AccountInfo:
    response = _parse(QueryAccountResponse, data, "QueryAccountResponse")
    if response.account.type_url != BASE_ACCOUNT_TYPE_URL:
        # Vesting and module accounts wrap a BaseAccount differently; FlashMM signs from a plain one.
        raise PayloadDecodeError(f"account type {response.account.type_url[:80]!r} is not {BASE_ACCOUNT_TYPE_URL}")
    base = _parse(BaseAccount, response.account.value, "BaseAccount")
    public_key = None
    if base.HasField("pub_key"):
        if base.pub_key.type_url != SECP256K1_PUBKEY_TYPE_URL:
            raise PayloadDecodeError(f"account public key type {base.pub_key.type_url[:80]!r} is not secp256k1")
        public_key = _parse(Secp256k1PubKey, base.pub_key.value, "secp256k1 PubKey").key
    return AccountInfo(base.address, base.account_number, base.sequence, public_key)


def encode_smart_query_request(contract: str, query: dict[str, Any]) -> bytes:
    return QuerySmartContractStateRequest(address=contract, query_data=execute_msg_bytes(query)).SerializeToString()


def decode_smart_query_request(data: bytes) -> tuple[str, bytes]:
    """(contract address, raw query bytes): whether the bytes are JSON is the contract's call."""
    request = _parse(QuerySmartContractStateRequest, data, "QuerySmartContractStateRequest")
    return request.address, request.query_data


def encode_smart_query_response(answer: dict[str, Any]) -> bytes:
    return QuerySmartContractStateResponse(data=execute_msg_bytes(answer)).SerializeToString()


def decode_smart_query_response(data: bytes) -> dict[str, Any]:
    response = _parse(QuerySmartContractStateResponse, data, "QuerySmartContractStateResponse")
    try:
        answer = json.loads(response.data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise PayloadDecodeError("smart query answer is not UTF-8 JSON") from None
    if not isinstance(answer, dict):
        raise PayloadDecodeError(f"smart query answer is a JSON {type(answer).__name__}, not an object")
    return answer


def encode_balance_request(address: str, denom: str) -> bytes:
    return QueryBalanceRequest(address=address, denom=denom).SerializeToString()


def decode_balance_request(data: bytes) -> tuple[str, str]:
    request = _parse(QueryBalanceRequest, data, "QueryBalanceRequest")
    return request.address, request.denom


def encode_balance_response(denom: str, amount: int) -> bytes:
    return QueryBalanceResponse(balance=CoinProto(denom=denom, amount=str(amount))).SerializeToString()


def decode_balance_response(data: bytes) -> tuple[str, int]:
    """(denom, amount). A balance the bank never saw is `0` of the requested denom."""
    coin = _parse(QueryBalanceResponse, data, "QueryBalanceResponse").balance
    if not coin.amount.isascii() or not coin.amount.isdigit():
        raise PayloadDecodeError(f"balance amount {coin.amount[:40]!r} is not a non-negative integer")
    return coin.denom, int(coin.amount)


def _parse(cls, data: bytes, what: str):
    return parse_proto(cls, data, what, PayloadDecodeError)
