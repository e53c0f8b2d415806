"""The Sei adapter's offline slice against real chain data: tx decoding and hashing, base64 event
attributes, and signing keys that never leak. Expected values come from the fixture's `expected`
block or are derived from the decoded bytes, never typed in from a reading of the fixture."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import traceback
from pathlib import Path

import bech32
import ecdsa
import pytest
from cosmpy.crypto.keypairs import PublicKey
from cosmpy.mnemonic import derive_child_key_from_mnemonic
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, TxBody, TxRaw
from cosmpy.protos.cosmwasm.wasm.v1.tx_pb2 import MsgExecuteContract
from Crypto.Hash import RIPEMD160, keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sei.codec import WASM_EXECUTE_TYPE_URL, TxDecodeError, decode_tx, tx_hash
from adapters.sei.events import Event, EventDecodeError, decode_events, wasm_events
from adapters.sei.keys import KeyFileError, KeyLoadError, Signer, load_signer

# A real Sei mainnet tx, carried in the repository (see tests/fixtures/sei/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sei"
FIXTURE = FIXTURES / "sei_mainnet_tx_79268744.json"

# BIP-39 test vectors (entropy 00..00 and 7f..7f); public, never fund them.
ABANDON = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
# The canonical Cosmos Hub address of ABANDON at m/44'/118'/0'/0/0, as cosmjs and others assert it.
ABANDON_COSMOS_ADDRESS = "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4"
LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"
ENV = "FLASHMM_SEI_MNEMONIC"


@pytest.fixture(scope="module")
def fixture() -> dict:
    assert FIXTURE.is_file(), f"Sei fixture missing: expected {FIXTURE}"
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def raw(fixture) -> bytes:
    return base64.b64decode(fixture["tx_base64"])


def _pubkey_address(pubkey: bytes) -> bytes:
    return RIPEMD160.new(hashlib.sha256(pubkey).digest()).digest()


def _evm_address(compressed_pubkey: bytes) -> str:
    uncompressed = ecdsa.VerifyingKey.from_string(compressed_pubkey, curve=ecdsa.SECP256k1).to_string("uncompressed")
    return "0x" + keccak.new(digest_bits=256, data=uncompressed[1:]).hexdigest()[-40:]


def _bech32_bytes(address: str) -> tuple[str, bytes]:
    hrp, data = bech32.bech32_decode(address)
    assert hrp is not None, address
    return hrp, bytes(bech32.convertbits(data, 5, 8, False))


def _rebuild(raw: bytes, *, body=None, auth=None) -> bytes:
    tx = TxRaw.FromString(raw)
    if body is not None:
        tx.body_bytes = body.SerializeToString()
    if auth is not None:
        tx.auth_info_bytes = auth.SerializeToString()
    return tx.SerializeToString()


# ---- transactions ----------------------------------------------------------------------------


def test_fixture_tx_decodes_to_expected(fixture, raw):
    expected = fixture["expected"]
    tx = decode_tx(raw)

    assert tx.hash == fixture["tx_hash"] == hashlib.sha256(raw).hexdigest().upper() == tx_hash(raw)
    (message,) = tx.messages
    assert message.type_url == expected["message_type_url"] == WASM_EXECUTE_TYPE_URL
    assert message.sender == expected["sender"]
    assert message.contract == expected["contract"]
    assert list(message.msg) == [expected["msg_top_level_key"]]
    assert message.msg == json.loads(MsgExecuteContract.FromString(message.raw).msg)
    assert message.funds == ()
    assert tx.memo == expected["memo"]
    assert tx.timeout_height == 0
    assert [str(c) for c in tx.fee] == [expected["fee"]]
    assert tx.gas_limit == expected["gas_limit"]
    assert tx.fee_granter == expected["fee_granter"]
    assert tx.fee_payer is None

    (signer,) = tx.signers
    assert signer.pubkey_type == expected["pubkey_type_url"]
    assert signer.sequence == expected["signer_sequence"]
    assert signer.sign_mode == "SIGN_MODE_DIRECT"
    # The decoded public key is the sender's: its address hash is the sender's bech32 payload.
    assert _bech32_bytes(expected["sender"]) == ("sei", _pubkey_address(signer.pubkey_bytes))
    (signature,) = tx.signatures
    assert len(signature) == 64


def test_fixture_events_decode_and_agree_with_the_tx(fixture, raw):
    expected = fixture["expected"]
    tx = decode_tx(raw)
    events = decode_events(fixture["events"])
    assert len(events) == len(fixture["events"])
    by_type: dict[str, list[Event]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)

    def one(kind: str, key: str) -> str:
        values = [v for e in by_type[kind] for v in e.all(key)]
        assert len(values) == 1, (kind, key, values)
        return values[0]

    sender, granter = expected["sender"], expected["fee_granter"]
    assert one("tx", "acc_seq") == f"{sender}/{expected['signer_sequence']}"
    assert one("tx", "fee") == expected["fee"]
    assert one("tx", "fee_payer") == granter  # with a fee grant, the granter pays
    assert one("tx", "signature") == base64.b64encode(tx.signatures[0]).decode()
    assert one("use_feegrant", "granter") == granter
    assert one("use_feegrant", "grantee") == sender
    assert one("message", "action") == expected["message_type_url"]
    assert one("message", "sender") == sender
    assert one("message", "module") == "wasm"
    # Sei's signer event maps the Cosmos signer to the EVM address of the same secp256k1 key.
    assert one("signer", "sei_addr") == sender
    assert one("signer", "evm_addr").lower() == _evm_address(tx.signers[0].pubkey_bytes)

    wasm = wasm_events(events)
    assert wasm[0].get("_contract_address") == expected["contract"]
    assert wasm[0].get("action")
    ours = wasm_events(events, contract=expected["contract"])
    assert ours == [wasm[0]]
    # Every contract that executed emitted exactly one wasm event, in execution order.
    executed = [e.get("_contract_address") for e in by_type["execute"]]
    assert [e.get("_contract_address") for e in wasm] == executed
    assert executed[0] == expected["contract"]


def test_non_json_execute_msg_is_kept_raw_not_fatal(raw):
    body = TxBody.FromString(TxRaw.FromString(raw).body_bytes)
    execute = MsgExecuteContract.FromString(body.messages[0].value)
    for junk in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"a": NaN}', b"[" * 100_000):
        execute.msg = junk
        body.messages[0].value = execute.SerializeToString()
        rebuilt = _rebuild(raw, body=body)
        (message,) = decode_tx(rebuilt).messages
        assert message.msg is None
        assert message.sender == execute.sender and message.raw == body.messages[0].value
        assert decode_tx(rebuilt).hash == tx_hash(rebuilt)


def test_other_message_types_keep_type_url_and_raw(raw):
    body = TxBody.FromString(TxRaw.FromString(raw).body_bytes)
    send = MsgSend(from_address="sei1from", to_address="sei1to")
    body.messages[0].type_url = "/cosmos.bank.v1beta1.MsgSend"
    body.messages[0].value = send.SerializeToString()
    (message,) = decode_tx(_rebuild(raw, body=body)).messages
    assert (message.type_url, message.raw) == ("/cosmos.bank.v1beta1.MsgSend", send.SerializeToString())
    assert (message.sender, message.contract, message.msg, message.funds) == (None, None, None, ())


@pytest.mark.parametrize("case", ["empty", "no_messages", "no_fee", "bad_amount"])
def test_structurally_invalid_txs_are_refused(raw, case):
    auth = AuthInfo.FromString(TxRaw.FromString(raw).auth_info_bytes)
    if case == "empty":
        data, match = b"", "no messages"
    elif case == "no_messages":
        data, match = _rebuild(raw, body=TxBody(memo="m")), "no messages"
    elif case == "no_fee":
        auth.ClearField("fee")
        data, match = _rebuild(raw, auth=auth), "no fee"
    else:
        auth.fee.amount[0].amount = "+300000"
        data, match = _rebuild(raw, auth=auth), "not a non-negative integer"
    with pytest.raises(TxDecodeError, match=match):
        decode_tx(data)


def _decode_or_refuse(data: bytes) -> None:
    try:
        tx = decode_tx(data)
    except TxDecodeError:
        return
    assert tx.hash == tx_hash(data) and tx.messages


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_tx_decode_error(data):
    _decode_or_refuse(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_truncated_and_bit_flipped_fixture_only_raise_tx_decode_error(raw, data):
    cut = data.draw(st.integers(0, len(raw)))
    _decode_or_refuse(raw[:cut])
    flipped = bytearray(raw)
    for bit in data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=8)):
        flipped[bit // 8] ^= 1 << (bit % 8)
    _decode_or_refuse(bytes(flipped))


# ---- events ----------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_event_helpers_and_nulls():
    (event,) = decode_events(
        [{"type": "wasm-trade",
          "attributes": [{"key": _b64("k"), "value": _b64("1")}, {"key": _b64("k"), "value": None}]}]
    )
    assert event == Event("wasm-trade", (("k", "1"), ("k", "")))
    assert (event.get("k"), event.get("missing"), event.all("k")) == ("1", None, ("1", ""))
    assert decode_events([{"type": "t", "attributes": None}]) == [Event("t", ())]


@pytest.mark.parametrize(
    "events, match",
    [
        ({"type": "t"}, "expected a list"),
        (["t"], "expected an object"),
        ([{"attributes": []}], "'type' must be a string"),
        ([{"type": "t", "attributes": {}}], "'attributes' must be a list"),
        ([{"type": "t", "attributes": [{"key": "a2V5", "value": "not base64!"}]}], "not valid base64"),
        ([{"type": "t", "attributes": [{"key": "a2V5", "value": "é"}]}], "not valid base64"),
        ([{"type": "t", "attributes": [{"key": "a2V5", "value": "YQ"}]}], "not valid base64"),  # unpadded
        ([{"type": "t", "attributes": [{"key": "a2V5", "value": base64.b64encode(b"\xff").decode()}]}], "not UTF-8"),
        ([{"type": "t", "attributes": [{"key": 1, "value": "YQ=="}]}], "must be a base64 string"),
    ],
)
def test_malformed_events_are_refused(events, match):
    with pytest.raises(EventDecodeError, match=match):
        decode_events(events)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
_b64_or_junk = st.one_of(st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=16),
                         _json)
_attribute = st.one_of(st.fixed_dictionaries({"key": _b64_or_junk, "value": _b64_or_junk, "index": st.booleans()}),
                       _json)
_event = st.one_of(
    st.fixed_dictionaries({"type": st.one_of(st.text(max_size=12), _json),
                           "attributes": st.one_of(st.lists(_attribute, max_size=4), _json)}),
    _json,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(_event, max_size=5), _json))
def test_decode_events_only_raises_event_decode_error(obj):
    try:
        events = decode_events(obj)
    except EventDecodeError:
        return
    assert len(events) == len(obj) and all(isinstance(e, Event) for e in events)


# ---- keys ------------------------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def _key_file(tmp_path: Path, secret: str, mode: int) -> Path:
    path = tmp_path / "sei.key"
    path.write_text(secret + "\n")
    os.chmod(path, mode)
    return path


def test_mnemonic_from_env_derives_the_cosmos_path_address(monkeypatch):
    monkeypatch.setenv(ENV, ABANDON)
    signer = load_signer()
    assert signer.address.startswith("sei1")
    hrp, payload = _bech32_bytes(signer.address)
    assert hrp == "sei" and payload == _pubkey_address(signer.public_key_bytes) and len(signer.public_key_bytes) == 33
    # Same key and path as every Cosmos wallet: re-prefixed, it is the canonical cosmoshub address.
    assert bech32.bech32_encode("cosmos", bech32.convertbits(payload, 8, 5, True)) == ABANDON_COSMOS_ADDRESS


def test_hex_private_key_gives_the_same_account(monkeypatch):
    monkeypatch.setenv(ENV, ABANDON)
    from_mnemonic = load_signer()
    monkeypatch.setenv(ENV, "0x" + derive_child_key_from_mnemonic(ABANDON).hex())
    assert load_signer().address == from_mnemonic.address


def test_key_file_permissions(tmp_path, no_env):
    path = _key_file(tmp_path, LEGAL, 0o644)
    with pytest.raises(KeyFileError) as refused:
        load_signer(file=path)
    assert str(path) in str(refused.value) and "0644" in str(refused.value)
    os.chmod(path, 0o600)
    assert load_signer(file=path).address.startswith("sei1")
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="0640"):
        load_signer(file=path)


def test_missing_or_ambiguous_sources_are_clear(tmp_path, monkeypatch, no_env):
    with pytest.raises(KeyLoadError, match=f"no signing key: set \\${ENV}"):
        load_signer()
    path = _key_file(tmp_path, LEGAL, 0o600)
    monkeypatch.setenv(ENV, ABANDON)
    with pytest.raises(KeyLoadError, match="set only one"):
        load_signer(file=path)
    with pytest.raises(KeyFileError, match="cannot open"):
        load_signer(env="FLASHMM_TEST_UNSET_VARIABLE", file=tmp_path / "absent.key")


SECRET_WORDS = ["winner", "sausage", "yellow", "zebrasecret"]


@pytest.mark.parametrize(
    "secret",
    [
        LEGAL.replace("yellow", "zebrasecret"),  # a word outside the BIP-39 list
        LEGAL.replace("yellow", "winner"),  # valid words, wrong checksum
        LEGAL.rsplit(" ", 1)[0],  # 11 words
        "sausage" + "ab" * 30,  # neither form
        "f" * 64,  # hex, out of the curve's range
    ],
)
def test_secrets_never_appear_in_errors(tmp_path, monkeypatch, secret):
    monkeypatch.setenv(ENV, secret)
    failures = []
    with pytest.raises(KeyLoadError) as from_env:
        load_signer()
    failures.append(from_env.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(KeyLoadError) as from_file:
        load_signer(file=_key_file(tmp_path, secret, 0o600))
    failures.append(from_file.value)
    for exc in failures:
        text = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.__context__) + repr(exc.__cause__)
        assert secret not in text
        assert not [w for w in SECRET_WORDS + ["f" * 16, "ab" * 8] if w in text], text


def test_signer_never_shows_its_secret_and_signs_verifiably(monkeypatch):
    monkeypatch.setenv(ENV, LEGAL)
    signer = load_signer()
    private_hex = derive_child_key_from_mnemonic(LEGAL).hex()
    for shown in (repr(signer), str(signer), f"{signer}"):
        assert signer.address in shown
        assert private_hex not in shown and not [w for w in LEGAL.split() if w in shown]
    with pytest.raises(TypeError) as refused:
        pickle.dumps(signer)
    assert private_hex not in str(refused.value)
    assert isinstance(signer, Signer)

    message = b"SignDoc bytes"
    signature = signer.sign(message)
    assert len(signature) == 64
    verifying_key = ecdsa.VerifyingKey.from_string(signer.public_key_bytes, curve=ecdsa.SECP256k1,
                                                   hashfunc=hashlib.sha256)
    assert verifying_key.verify(signature, message)
    assert PublicKey(signer.public_key_bytes).verify(message, signature)
    assert not PublicKey(signer.public_key_bytes).verify(message + b"!", signature)
    assert int.from_bytes(signature[32:], "big") <= ecdsa.SECP256k1.order // 2  # low-S, as Cosmos requires
