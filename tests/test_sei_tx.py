"""Signed execute txs and abci_query payloads: what `tx.py` signs must decode back through the
codec exactly, verify only for the chain, account and bytes it was signed for, and agree with an
SDK-style verification written here from the protobuf definitions alone."""

from __future__ import annotations

import hashlib
import json

import ecdsa
import pytest
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, SignDoc, TxBody, TxRaw
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sei import tx as txlib
from adapters.sei.codec import SECP256K1_PUBKEY_TYPE_URL, WASM_EXECUTE_TYPE_URL, Coin, decode_tx, tx_hash
from adapters.sei.keys import Signer

ALICE = Signer(PrivateKey(hashlib.sha256(b"test-sei-tx/alice").digest()))
BOB = Signer(PrivateKey(hashlib.sha256(b"test-sei-tx/bob").digest()))
CONTRACT = "sei19t6wxvauhdlhd44dj28cwdgt8knyuntmvjac9m4nw99z0ws0dcds5scze8"
CHAIN = "flashmm-localnet-1"
ORDER = {"batch": {"actions": [
    {"cancel_order": {"client_order_id": "O-1"}},
    {"place_order": {"client_order_id": "O-2", "side": "sell", "price": "0.4219", "quantity": "80",
                     "post_only": True, "expiry_height": 1200}},
]}}


def build(signer: Signer = ALICE, **overrides) -> bytes:
    fields = dict(chain_id=CHAIN, account_number=7, sequence=3, contract=CONTRACT, msg=ORDER,
                  fee_amount=40_000, gas_limit=2_000_000, timeout_height=1210, memo="flashmm")
    fields.update(overrides)
    return txlib.build_execute_tx(signer, **fields)


def verify(raw: bytes, *, chain_id: str = CHAIN, account_number: int = 7,
           public_key: bytes = ALICE.public_key_bytes) -> bool:
    return txlib.verify_signature(raw, chain_id=chain_id, account_number=account_number, public_key=public_key)


def with_auth(raw: bytes, mutate) -> bytes:
    """The same signed tx with its auth info changed after signing."""
    tx = TxRaw.FromString(raw)
    auth = AuthInfo.FromString(tx.auth_info_bytes)
    mutate(auth)
    tx.auth_info_bytes = auth.SerializeToString()
    return tx.SerializeToString()


def with_body(raw: bytes, mutate) -> bytes:
    tx = TxRaw.FromString(raw)
    body = TxBody.FromString(tx.body_bytes)
    mutate(body)
    tx.body_bytes = body.SerializeToString()
    return tx.SerializeToString()


# ---- build and decode ---------------------------------------------------------------------------


def test_built_tx_decodes_field_for_field():
    raw = build(funds=[("usei", 5)])
    tx = decode_tx(raw)
    assert tx.hash == tx_hash(raw) == hashlib.sha256(raw).hexdigest().upper()
    (message,) = tx.messages
    assert message.type_url == WASM_EXECUTE_TYPE_URL
    assert (message.sender, message.contract, message.msg) == (ALICE.address, CONTRACT, ORDER)
    assert message.funds == (Coin(5, "usei"),)
    assert (tx.memo, tx.timeout_height, tx.gas_limit) == ("flashmm", 1210, 2_000_000)
    assert tx.fee == (Coin(40_000, "usei"),)
    assert tx.fee_payer is None and tx.fee_granter is None
    (signer,) = tx.signers
    assert signer.pubkey_type == SECP256K1_PUBKEY_TYPE_URL
    assert signer.pubkey_bytes == ALICE.public_key_bytes
    assert (signer.sequence, signer.sign_mode) == (3, "SIGN_MODE_DIRECT")
    assert len(tx.signatures) == 1 and len(tx.signatures[0]) == 64


def test_same_inputs_sign_to_the_same_bytes():
    assert build() == build()  # RFC 6979: the execution client can rebuild a tx to find its hash
    assert build(sequence=4) != build()


def test_signature_is_what_an_sdk_verifier_expects():
    """An independent check: SignDoc assembled here, ECDSA-SHA256 with python-ecdsa, low S."""
    raw = build()
    tx = TxRaw.FromString(raw)
    doc = SignDoc(body_bytes=tx.body_bytes, auth_info_bytes=tx.auth_info_bytes, chain_id=CHAIN, account_number=7)
    key = ecdsa.VerifyingKey.from_string(ALICE.public_key_bytes, curve=ecdsa.SECP256k1)
    assert key.verify(tx.signatures[0], doc.SerializeToString(), hashfunc=hashlib.sha256)
    assert int.from_bytes(tx.signatures[0][32:], "big") <= ecdsa.SECP256k1.order // 2
    assert txlib.sign_doc_bytes(tx.body_bytes, tx.auth_info_bytes, CHAIN, 7) == doc.SerializeToString()


def test_address_of_public_key_is_the_signers_address():
    assert txlib.address_of(ALICE.public_key_bytes) == ALICE.address
    assert txlib.address_of(BOB.public_key_bytes) == BOB.address != ALICE.address


@pytest.mark.parametrize("field,value", [
    ("sequence", -1), ("account_number", 2**64), ("fee_amount", 1.5), ("gas_limit", True), ("timeout_height", "9"),
])
def test_out_of_range_numbers_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        build(**{field: value})


def test_empty_chain_id_is_refused():
    with pytest.raises(ValueError, match="chain_id"):
        build(chain_id="")


# ---- verification -------------------------------------------------------------------------------


def test_round_trip_verifies():
    assert verify(build())


def _high_s(raw: bytes) -> bytes:
    tx = TxRaw.FromString(raw)
    sig = tx.signatures[0]
    s = int.from_bytes(sig[32:], "big")
    tx.signatures[0] = sig[:32] + (ecdsa.SECP256k1.order - s).to_bytes(32, "big")
    return tx.SerializeToString()


def _set_sequence(auth: AuthInfo) -> None:
    auth.signer_infos[0].sequence += 1


def _set_fee(auth: AuthInfo) -> None:
    auth.fee.amount[0].amount = "1"


def _set_memo(body: TxBody) -> None:
    body.memo = "flashmm!"


def _set_timeout(body: TxBody) -> None:
    body.timeout_height += 1


@pytest.mark.parametrize("case,tx_of,kwargs", [
    ("wrong chain id", build, {"chain_id": "pacific-1"}),
    ("wrong account number", build, {"account_number": 8}),
    ("sequence changed in the auth info", lambda: with_auth(build(), _set_sequence), {}),
    ("fee changed in the auth info", lambda: with_auth(build(), _set_fee), {}),
    ("memo changed in the body", lambda: with_body(build(), _set_memo), {}),
    ("timeout changed in the body", lambda: with_body(build(), _set_timeout), {}),
    ("another key's public key", build, {"public_key": BOB.public_key_bytes}),
    ("signed by another key", lambda: build(BOB), {}),
    ("high-S twin of a valid signature", lambda: _high_s(build()), {}),
    ("public key not a curve point", build, {"public_key": b"\x02" + b"\x00" * 32}),
    ("public key of the wrong length", build, {"public_key": ALICE.public_key_bytes[:32]}),
])
def test_verification_fails(case, tx_of, kwargs):
    assert not verify(tx_of(), **kwargs), case


def test_high_s_twin_is_otherwise_a_valid_ecdsa_signature():
    """So the refusal above is the low-S rule, not a broken signature."""
    tx = TxRaw.FromString(_high_s(build()))
    doc = txlib.sign_doc_bytes(tx.body_bytes, tx.auth_info_bytes, CHAIN, 7)
    key = ecdsa.VerifyingKey.from_string(ALICE.public_key_bytes, curve=ecdsa.SECP256k1)
    assert key.verify(tx.signatures[0], doc, hashfunc=hashlib.sha256)


@pytest.mark.parametrize("raw", [b"", b"\xff\xff", TxRaw(body_bytes=b"x").SerializeToString(),
                                 TxRaw(signatures=[b"\x01" * 63]).SerializeToString()])
def test_malformed_txs_do_not_verify(raw):
    assert not verify(raw)


_json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    account_number=st.integers(0, 2**64 - 1), sequence=st.integers(0, 2**64 - 1),
    fee=st.integers(0, 2**64 - 1), gas=st.integers(0, 2**64 - 1), timeout=st.integers(0, 2**64 - 1),
    memo=st.text(max_size=256), chain_id=st.text(min_size=1, max_size=50),
    msg=st.dictionaries(st.text(min_size=1, max_size=12), _json, min_size=1, max_size=3),
)
def test_any_fields_round_trip_and_bind_the_signature(account_number, sequence, fee, gas, timeout, memo, chain_id, msg):
    raw = txlib.build_execute_tx(
        ALICE, chain_id=chain_id, account_number=account_number, sequence=sequence, contract=CONTRACT, msg=msg,
        fee_amount=fee, gas_limit=gas, timeout_height=timeout, memo=memo,
    )
    tx = decode_tx(raw)
    assert tx.messages[0].msg == json.loads(json.dumps(msg))
    assert (tx.memo, tx.timeout_height, tx.gas_limit, tx.fee) == (memo, timeout, gas, (Coin(fee, "usei"),))
    assert tx.signers[0].sequence == sequence
    assert verify(raw, chain_id=chain_id, account_number=account_number)
    assert not verify(raw, chain_id=chain_id + "x", account_number=account_number)
    assert not verify(raw, chain_id=chain_id, account_number=(account_number + 1) % 2**64)


# ---- abci_query payloads ------------------------------------------------------------------------


@pytest.mark.parametrize("public_key", [None, ALICE.public_key_bytes])
def test_account_payloads_round_trip(public_key):
    assert txlib.decode_account_request(txlib.encode_account_request(ALICE.address)) == ALICE.address
    account = txlib.AccountInfo(ALICE.address, 4, 17, public_key)
    assert txlib.decode_account_response(txlib.encode_account_response(account)) == account


def test_smart_query_payloads_round_trip():
    query = {"open_orders": {"owner": ALICE.address, "limit": 100}}
    contract, data = txlib.decode_smart_query_request(txlib.encode_smart_query_request(CONTRACT, query))
    assert contract == CONTRACT and json.loads(data) == query
    answer = {"orders": [{"order_id": "1", "price": "0.4213"}]}
    assert txlib.decode_smart_query_response(txlib.encode_smart_query_response(answer)) == answer


def test_balance_payloads_round_trip():
    assert txlib.decode_balance_request(txlib.encode_balance_request(ALICE.address, "usei")) == (ALICE.address, "usei")
    assert txlib.decode_balance_response(txlib.encode_balance_response("usei", 10**30)) == ("usei", 10**30)


def test_answers_that_are_not_what_the_path_returns_are_refused():
    with pytest.raises(txlib.PayloadDecodeError, match="not an object"):
        txlib.decode_smart_query_response(txlib.encode_smart_query_response({}).replace(b"{}", b"[]"))
    with pytest.raises(txlib.PayloadDecodeError, match="BaseAccount"):
        txlib.decode_account_response(b"")  # no account at all
    with pytest.raises(txlib.PayloadDecodeError, match="amount"):
        txlib.decode_balance_response(b"")  # no balance at all


DECODERS = [
    txlib.decode_account_request, txlib.decode_account_response, txlib.decode_smart_query_request,
    txlib.decode_smart_query_response, txlib.decode_balance_request, txlib.decode_balance_response,
]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200), which=st.sampled_from(DECODERS))
def test_payload_decoders_never_crash_on_junk(data, which):
    try:
        which(data)
    except txlib.PayloadDecodeError:
        pass
