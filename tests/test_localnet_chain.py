"""The localnet chain without sockets: CheckTx refuses what a Cosmos SDK chain refuses, with its
codes; DeliverTx charges fees and bumps sequences as the SDK does, also when the contract fails;
the JSON it stores decodes with the same decoders FlashMM reads Sei with; same seed and same
inputs give the same blocks. Every tx here is signed for real with `tx.py`."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math

import pytest
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import TxBody, TxRaw
from tapebuilder import Block as TapeBlockSpec
from tapebuilder import ladder, write_tape

from adapters.sei import tx as txlib
from adapters.sei.codec import decode_tx
from adapters.sei.events import CONTRACT_ADDRESS_KEY, decode_events, wasm_events
from adapters.sei.keys import Signer
from adapters.sei.localnet.chain import (
    CHAIN_ID,
    CONTRACT_ADDRESS,
    FEE_COLLECTOR,
    BlockUnavailable,
    Chain,
    ChainConfig,
    account_signer,
    execute_gas,
)
from adapters.sei.localnet.replay import TapeReplay
from data.catalog import open_tape

T0 = 1_767_225_600_000_000_000
GAS = 2_000_000
FEE = math.ceil(GAS * 0.02)  # the spec's minimum gas price
STRANGER = Signer(PrivateKey(hashlib.sha256(b"test-localnet-chain/stranger").digest()))


def place(coid: str, side: str = "buy", price: str = "0.4", quantity: str = "10", post_only: bool = True) -> dict:
    return {"place_order": {"client_order_id": coid, "side": side, "price": price, "quantity": quantity,
                            "post_only": post_only}}


def sign(chain: Chain, msg: dict, *, signer: Signer | None = None, **overrides) -> bytes:
    signer = signer or chain.dev
    account = chain.account(signer.address)
    fields = dict(chain_id=chain.chain_id, account_number=account.account_number if account else 0,
                  sequence=account.sequence if account else 0, contract=chain.contract, msg=msg,
                  fee_amount=FEE, gas_limit=GAS)
    fields.update(overrides)
    return txlib.build_execute_tx(signer, **fields)


def block(chain: Chain):
    return chain.produce_block(chain.time_ns + 400_000_000)


def attrs(event) -> dict[str, str]:
    return dict(event.attributes)


@pytest.fixture
def chain() -> Chain:
    return Chain(ChainConfig(seed=0))


# ---- genesis ------------------------------------------------------------------------------------


def test_genesis_accounts_and_market(chain):
    assert chain.chain_id == CHAIN_ID == "flashmm-localnet-1"
    assert chain.contract == CONTRACT_ADDRESS
    assert txlib.address_of(chain.dev.public_key_bytes) == chain.dev.address
    addresses = {chain.dev.address, chain.maker.address, chain.taker.address}
    assert len(addresses) == 3
    numbers = {chain.account(a).account_number for a in addresses}
    assert len(numbers) == 3 and 0 not in numbers  # a client hard-coding 0 would be caught
    assert all(chain.account(a).sequence == 0 and chain.account(a).public_key is None for a in addresses)
    config = chain.config
    for denom, amount in config.dev_bank:
        assert chain.balance(chain.dev.address, denom) == amount
    free = {b["denom"]: int(b["free"])
            for b in chain.clob.query({"balances": {"owner": chain.dev.address}}, 0)["balances"]}
    assert free == dict(config.dev_deposit)
    assert chain.clob.query({"market": {}}, 0)["taker_fee_rate"] == "0.0005"
    assert chain.height == 0 and chain.status()["sync_info"]["latest_block_height"] == "0"


def test_seed_decides_the_keys():
    a, b = Chain(ChainConfig(seed=1)), Chain(ChainConfig(seed=2))
    assert a.dev.address != b.dev.address
    assert account_signer(1, "dev").address == a.dev.address
    assert Chain(ChainConfig(seed=1)).dev.address == a.dev.address


# ---- CheckTx ------------------------------------------------------------------------------------


def _flip_signature(raw: bytes) -> bytes:
    tx = TxRaw.FromString(raw)
    tx.signatures[0] = bytes([tx.signatures[0][0] ^ 1]) + tx.signatures[0][1:]
    return tx.SerializeToString()


def _two_messages(raw: bytes) -> bytes:
    tx = TxRaw.FromString(raw)
    body = TxBody.FromString(tx.body_bytes)
    body.messages.append(body.messages[0])
    tx.body_bytes = body.SerializeToString()
    return tx.SerializeToString()


def _drop_signatures(raw: bytes) -> bytes:
    tx = TxRaw.FromString(raw)
    del tx.signatures[:]
    return tx.SerializeToString()


# (case, make the tx from the chain, code, codespace, text the log must hold)
REJECTIONS = [
    ("wrong chain id", lambda c: sign(c, place("a"), chain_id="pacific-1"), 4, "sdk",
     "signature verification failed; please verify account number ({number}), sequence (0) and chain-id "
     "(flashmm-localnet-1): unauthorized"),
    ("wrong account number", lambda c: sign(c, place("a"), account_number=5), 4, "sdk",
     "signature verification failed"),
    ("sequence ahead", lambda c: sign(c, place("a"), sequence=3), 32, "sdk",
     "account sequence mismatch, expected 0, got 3: incorrect account sequence"),
    ("bad signature", lambda c: _flip_signature(sign(c, place("a"))), 4, "sdk", "signature verification failed"),
    ("signed by a key that is not the sender's", lambda c: _sender_swap(c), 8, "sdk",
     "pubKey does not match signer address"),
    ("fee below gas limit x min gas price", lambda c: sign(c, place("a"), fee_amount=FEE - 1), 13, "sdk",
     f"insufficient fees; got: {FEE - 1}usei required: {FEE}usei: insufficient fee"),
    ("fee in another denom", lambda c: sign(c, place("a"), fee_denom="uusdc"), 13, "sdk",
     f"insufficient fees; got: {FEE}uusdc required: {FEE}usei"),
    ("timeout height passed", lambda c: sign(c, place("a"), timeout_height=1), 30, "sdk",
     "tx timeout height; current height: 2, timeout height: 1: tx timeout height"),
    ("not a tx", lambda c: b"\x0a\x03abc", 2, "sdk", "tx parse error"),
    ("two messages", lambda c: _two_messages(sign(c, place("a"))), 18, "sdk", "one message per tx"),
    ("no signature", lambda c: _drop_signatures(sign(c, place("a"))), 15, "sdk", "no signatures supplied"),
    ("unknown account", lambda c: sign(c, place("a"), signer=STRANGER), 9, "sdk", "does not exist: unknown address"),
    ("gas limit below the tx size cost", lambda c: sign(c, place("a"), gas_limit=1000, fee_amount=20), 11, "sdk",
     "out of gas in location: txSize"),
    ("msg not a JSON object", lambda c: sign(c, ["not", "an", "object"]), 14, "wasm", "payload msg"),
]


def _sender_swap(chain: Chain) -> bytes:
    """A tx whose message says the dev account sent it, signed (validly) by another key."""
    raw = sign(chain, place("a"), signer=STRANGER)
    tx = TxRaw.FromString(raw)
    body = TxBody.FromString(tx.body_bytes)
    from cosmpy.protos.cosmwasm.wasm.v1.tx_pb2 import MsgExecuteContract

    execute = MsgExecuteContract.FromString(body.messages[0].value)
    execute.sender = chain.dev.address
    body.messages[0].value = execute.SerializeToString()
    tx.body_bytes = body.SerializeToString()
    return tx.SerializeToString()


@pytest.mark.parametrize("case,make,code,codespace,log", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_check_tx_rejections(chain, case, make, code, codespace, log):
    block(chain)
    block(chain)
    raw = make(chain)
    result = chain.check_tx(raw)
    assert (result.code, result.codespace) == (code, codespace), result.log
    assert log.format(number=chain.account(chain.dev.address).account_number) in result.log
    assert result.hash == hashlib.sha256(raw).hexdigest().upper()
    assert chain.mempool_size == 0
    # A rejected tx changes nothing: the account's next tx is still sequence 0, and it lands.
    good = sign(chain, place("ok"))
    assert chain.check_tx(good).code == 0
    assert [r.code for r in block(chain).txs] == [0]


def test_a_valid_tx_is_accepted_and_duplicates_are_refused(chain):
    raw = sign(chain, place("a"))
    first = chain.check_tx(raw)
    assert (first.code, first.log, first.codespace) == (0, "", "")
    assert first.to_json() == {"code": 0, "data": "", "log": "", "codespace": "", "hash": decode_tx(raw).hash}
    assert chain.check_tx(raw).code == 19
    block(chain)
    assert chain.check_tx(raw).code == 19  # CometBFT's cache also remembers committed txs


def test_insufficient_fee_funds():
    chain = Chain(ChainConfig(dev_bank=(("usei", FEE - 1),)))
    result = chain.check_tx(sign(chain, place("a")))
    assert result.code == 5
    assert result.log == f"{FEE - 1}usei is smaller than {FEE}usei: insufficient funds"


def test_check_state_counts_fees_of_pending_txs():
    chain = Chain(ChainConfig(dev_bank=(("usei", 2 * FEE),)))
    assert [chain.check_tx(sign(chain, place(f"a{i}"), sequence=i)).code for i in range(3)] == [0, 0, 5]


def test_several_txs_of_one_account_per_block(chain):
    codes = [chain.check_tx(sign(chain, place(f"o{i}", price=f"0.{40 + i}"), sequence=i)).code for i in range(3)]
    assert codes == [0, 0, 0]
    again = chain.check_tx(sign(chain, place("o9"), sequence=1))
    assert (again.code, again.log) == (32, "account sequence mismatch, expected 3, got 1: incorrect account sequence")
    produced = block(chain)
    assert [r.code for r in produced.txs] == [0, 0, 0]
    assert chain.account(chain.dev.address).sequence == 3
    assert chain.account(chain.dev.address).public_key == chain.dev.public_key_bytes
    orders = chain.clob.query({"open_orders": {"owner": chain.dev.address}}, chain.height)["orders"]
    assert [o["client_order_id"] for o in orders] == ["o0", "o1", "o2"]


# ---- DeliverTx ----------------------------------------------------------------------------------


def test_place_cancel_and_batch_emit_wasm_events_with_the_contract_address(chain):
    dev = chain.dev.address
    usei_before = chain.balance(dev, "usei")
    chain.check_tx(sign(chain, place("a1", price="0.4213", quantity="125.5")))
    (placed,) = block(chain).txs
    events = list(placed.events)
    assert [e.type for e in events] == [
        "coin_spent", "coin_received", "transfer", "tx", "tx", "tx", "message", "message", "execute", "wasm-placed",
    ]
    assert attrs(events[0]) == {"spender": dev, "amount": f"{FEE}usei"}
    assert attrs(events[1]) == {"receiver": FEE_COLLECTOR, "amount": f"{FEE}usei"}
    assert attrs(events[3]) == {"fee": f"{FEE}usei", "fee_payer": dev}
    assert attrs(events[4]) == {"acc_seq": f"{dev}/0"}
    assert attrs(events[5]) == {"signature": base64.b64encode(decode_tx(placed.raw).signatures[0]).decode()}
    assert attrs(events[6]) == {"action": "/cosmwasm.wasm.v1.MsgExecuteContract"}
    assert attrs(events[7]) == {"module": "wasm", "sender": dev}
    assert events[8].attributes == ((CONTRACT_ADDRESS_KEY, chain.contract),)
    assert events[9].attributes[0] == (CONTRACT_ADDRESS_KEY, chain.contract)
    assert attrs(events[9]) == {
        CONTRACT_ADDRESS_KEY: chain.contract, "order_id": "1", "client_order_id": "a1", "owner": dev, "side": "buy",
        "price": "0.4213", "quantity": "125.5", "post_only": "true",
    }
    assert chain.balance(dev, "usei") == usei_before - FEE
    assert placed.gas_wanted == GAS and placed.gas_used == execute_gas(len(placed.raw), place("a1"))

    chain.check_tx(sign(chain, {"cancel_order": {"order_id": "1"}}))
    (cancelled,) = block(chain).txs
    (event,) = wasm_events(cancelled.events, chain.contract)
    assert event.type == "wasm-cancelled" and event.get("reason") == "user" and event.get("order_id") == "1"

    batch = {"batch": {"actions": [{"cancel_order": {"client_order_id": "zz"}}, place("b1"),
                                   place("b2", price="0.41")]}}
    chain.check_tx(sign(chain, batch))
    (batched,) = block(chain).txs
    contract_events = [e for e in batched.events if e.type.startswith("wasm-")]
    assert [e.type for e in contract_events] == ["wasm-rejected", "wasm-placed", "wasm-placed"]
    assert all(e.attributes[0] == (CONTRACT_ADDRESS_KEY, chain.contract) for e in contract_events)
    assert attrs(contract_events[0])["code"] == "order_not_found"


def test_failed_execution_charges_the_fee_and_bumps_the_sequence(chain):
    dev = chain.dev.address
    usei_before = chain.balance(dev, "usei")
    chain.check_tx(sign(chain, place("bad", price="0.40001")))  # off the tick: the whole tx fails
    (failed,) = block(chain).txs
    assert (failed.code, failed.codespace) == (5, "wasm")
    assert failed.log.startswith("failed to execute message; message index: 0: flashmm_clob: invalid_price: ")
    assert failed.log.endswith(": execute wasm contract failed")
    assert [e.type for e in failed.events] == ["coin_spent", "coin_received", "transfer", "tx", "tx", "tx"]
    assert chain.balance(dev, "usei") == usei_before - FEE
    assert chain.account(dev).sequence == 1
    assert chain.clob.query({"open_orders": {"owner": dev}}, chain.height)["orders"] == []
    assert failed.to_json()["code"] == 5


def test_out_of_gas_in_execution_charges_the_fee_and_changes_nothing_else(chain):
    dev = chain.dev.address
    gas = 20_000  # covers the tx size, not the contract call
    chain.check_tx(sign(chain, place("a"), gas_limit=gas, fee_amount=math.ceil(gas * 0.02)))
    (result,) = block(chain).txs
    assert (result.code, result.codespace) == (11, "sdk")
    assert "out of gas in location: wasm contract; gasWanted: 20000" in result.log
    assert chain.account(dev).sequence == 1
    assert chain.balance(dev, "usei") == chain.config.dev_bank[0][1] - math.ceil(gas * 0.02)
    assert chain.clob.query({"open_orders": {"owner": dev}}, chain.height)["orders"] == []


def test_timeout_reached_in_the_block_fails_without_fee(chain):
    """CheckTx sees the last committed height, the block is one later: the SDK's behaviour."""
    block(chain)
    dev = chain.dev.address
    usei = chain.balance(dev, "usei")
    assert chain.check_tx(sign(chain, place("a"), timeout_height=chain.height)).code == 0
    (result,) = block(chain).txs
    assert result.code == 30 and result.events == ()
    assert chain.account(dev).sequence == 0 and chain.balance(dev, "usei") == usei


def test_deposit_and_withdraw_move_bank_funds(chain):
    dev = chain.dev.address
    bank = chain.balance(dev, "uusdc")
    chain.check_tx(sign(chain, {"deposit": {}}, funds=[("uusdc", 1_000)]))
    (deposit,) = block(chain).txs
    assert deposit.code == 0
    assert chain.balance(dev, "uusdc") == bank - 1_000
    assert [e.type for e in deposit.events][-5:] == ["coin_spent", "coin_received", "transfer", "execute",
                                                     "wasm-deposit"]
    chain.check_tx(sign(chain, {"withdraw": {"denom": "uusdc", "amount": "400"}}))
    (withdraw,) = block(chain).txs
    assert withdraw.code == 0
    assert chain.balance(dev, "uusdc") == bank - 600
    assert attrs(withdraw.events[-1]) == {"recipient": dev, "sender": chain.contract, "amount": "400uusdc"}


# ---- faults -------------------------------------------------------------------------------------


def test_sequence_skew_fails_pending_and_future_txs(chain):
    dev = chain.dev.address
    assert chain.check_tx(sign(chain, place("a"))).code == 0  # sequence 0, in the mempool
    chain.skew_sequence(dev, 2)
    stale = chain.check_tx(sign(chain, place("b"), sequence=1))
    assert (stale.code, stale.log) == (32, "account sequence mismatch, expected 3, got 1: incorrect account sequence")
    (pending,) = block(chain).txs
    assert pending.code == 32 and "expected 2, got 0" in pending.log
    assert chain.account(dev).sequence == 2
    assert chain.check_tx(sign(chain, place("c"))).code == 0  # signed for the chain's sequence, 2


def test_reject_next_broadcasts(chain):
    chain.reject_next(2, 20)
    first, second, third = (chain.check_tx(sign(chain, place(f"r{i}"))) for i in range(3))
    assert (first.code, second.code, third.code) == (20, 20, 0)
    assert "fault" in first.log


def test_swallowed_tx_is_accepted_but_never_included(chain):
    chain.swallow_next(1)
    raw = sign(chain, place("lost"))
    assert chain.check_tx(raw).code == 0
    assert block(chain).txs == () and block(chain).txs == ()
    assert chain.account(chain.dev.address).sequence == 0
    # Its successor was signed for sequence 1: after the block, CheckTx says it is early.
    assert chain.check_tx(sign(chain, place("next"), sequence=1)).code == 32
    assert chain.check_tx(raw).code == 0  # evicted, so not cached: the same bytes may come again
    assert [r.hash for r in block(chain).txs] == [decode_tx(raw).hash]


# ---- block JSON ---------------------------------------------------------------------------------


def test_block_and_results_json_decode_with_the_client_decoders(chain):
    chain.check_tx(sign(chain, place("a")))
    chain.check_tx(sign(chain, place("b", price="0.40001"), sequence=1))  # fails in the contract
    produced = block(chain)
    stored = json.loads(json.dumps(chain.block(produced.height)))
    results = json.loads(json.dumps(chain.block_results(produced.height)))
    assert stored["block_id"]["hash"] == produced.hash
    header = stored["block"]["header"]
    assert (header["chain_id"], header["height"], header["time"]) == (CHAIN_ID, "1", "2026-01-01T00:00:00.4Z")
    raws = [base64.b64decode(t) for t in stored["block"]["data"]["txs"]]
    assert [decode_tx(r).hash for r in raws] == [r.hash for r in produced.txs]
    assert results["height"] == "1" and len(results["txs_results"]) == 2
    ok, bad = results["txs_results"]
    assert "code" not in ok and bad["code"] == 5 and bad["codespace"] == "wasm"
    assert ok["gas_wanted"] == str(GAS) and isinstance(ok["gas_used"], str)
    contract_events = wasm_events(decode_events(ok["events"]), CONTRACT_ADDRESS)
    assert [e.type for e in contract_events] == ["wasm-placed"]
    assert wasm_events(decode_events(bad["events"]), CONTRACT_ADDRESS) == []
    data, composite = produced.tx_event(0)
    assert data["type"] == "tendermint/event/Tx" and data["value"]["TxResult"]["index"] == 0
    assert composite["tx.hash"] == [produced.txs[0].hash] and composite["tx.height"] == ["1"]
    assert composite["execute._contract_address"] == [CONTRACT_ADDRESS]
    assert composite["wasm-placed._contract_address"] == [CONTRACT_ADDRESS]
    assert composite["message.sender"] == [chain.dev.address]
    new_block, composite = produced.new_block_event()
    assert new_block["value"]["block"] == stored["block"] and composite == {"tm.event": ["NewBlock"]}


def test_block_times_must_increase(chain):
    block(chain)
    with pytest.raises(ValueError, match="must be after"):
        chain.produce_block(chain.time_ns)


def test_block_store_is_bounded():
    chain = Chain(ChainConfig(retain_blocks=3))
    for _ in range(5):
        block(chain)
    assert chain.block(3)["block"]["header"]["height"] == "3"
    with pytest.raises(BlockUnavailable, match="lowest height is 3"):
        chain.block_results(2)
    with pytest.raises(BlockUnavailable, match="current blockchain height 5"):
        chain.block(6)
    assert chain.status()["sync_info"]["earliest_block_height"] == "3"


def _run(seed: int) -> tuple[list[str], list[str]]:
    chain = Chain(ChainConfig(seed=seed))
    blocks, results = [], []
    for i in range(3):
        chain.check_tx(sign(chain, place(f"d{i}", price=f"0.4{i}")))
        chain.check_tx(sign(chain, {"cancel_all": {}}, sequence=chain.account(chain.dev.address).sequence + 1))
        produced = chain.produce_block(T0 + (i + 1) * 400_000_000 + i)
        blocks.append(json.dumps(chain.block(produced.height), sort_keys=True))
        results.append(json.dumps(chain.block_results(produced.height), sort_keys=True))
    return blocks, results


def test_same_seed_and_inputs_give_identical_blocks():
    assert _run(0) == _run(0)
    assert _run(0) != _run(1)


# ---- queries ------------------------------------------------------------------------------------


def test_account_query_follows_the_deliver_state(chain):
    dev = chain.dev.address
    answer = chain.abci_query(txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request(dev))["response"]
    assert answer["code"] == 0 and answer["height"] == "0"
    account = txlib.decode_account_response(base64.b64decode(answer["value"]))
    assert (account.address, account.sequence, account.public_key) == (dev, 0, None)
    chain.check_tx(sign(chain, place("a")))
    after_check = chain.abci_query(txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request(dev))["response"]
    assert txlib.decode_account_response(base64.b64decode(after_check["value"])).sequence == 0
    block(chain)
    answer = chain.abci_query(txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request(dev))["response"]
    account = txlib.decode_account_response(base64.b64decode(answer["value"]))
    assert (account.sequence, account.public_key) == (1, chain.dev.public_key_bytes)


def test_smart_and_balance_queries(chain):
    chain.check_tx(sign(chain, place("a", price="0.4213", quantity="12.5")))
    block(chain)
    answer = chain.abci_query(txlib.SMART_QUERY_PATH,
                              txlib.encode_smart_query_request(CONTRACT_ADDRESS, {"book": {"depth": 5}}))
    book = txlib.decode_smart_query_response(base64.b64decode(answer["response"]["value"]))
    assert book == {"height": 1, "bids": [{"price": "0.4213", "quantity": "12.5"}], "asks": []}
    answer = chain.abci_query(txlib.BALANCE_QUERY_PATH, txlib.encode_balance_request(chain.dev.address, "usei"))
    assert txlib.decode_balance_response(base64.b64decode(answer["response"]["value"])) == (
        "usei", chain.balance(chain.dev.address, "usei"))


@pytest.mark.parametrize("path,data,height,code,codespace,log", [
    (txlib.SMART_QUERY_PATH, txlib.encode_smart_query_request(CONTRACT_ADDRESS, {"book": {"depth": 0}}), 0, 9, "wasm",
     "flashmm_clob: invalid_message"),
    (txlib.SMART_QUERY_PATH, txlib.encode_smart_query_request(FEE_COLLECTOR, {"market": {}}), 0, 22, "wasm",
     "no such contract"),
    (txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request(STRANGER.address), 0, 22, "sdk", "not found"),
    (txlib.ACCOUNT_QUERY_PATH, txlib.encode_account_request("cosmos1xyz"), 0, 18, "sdk", "invalid request"),
    (txlib.BALANCE_QUERY_PATH, b"\xff\xff", 0, 18, "sdk", "not valid protobuf"),
    ("/cosmos.bank.v1beta1.Query/AllBalances", b"", 0, 6, "sdk", "unknown query path"),
    (txlib.ACCOUNT_QUERY_PATH, b"", 99, 18, "sdk", "height in the future"),
])
def test_query_errors(chain, path, data, height, code, codespace, log):
    response = chain.abci_query(path, data, height)["response"]
    assert (response["code"], response["codespace"]) == (code, codespace)
    assert log in response["log"] and response["value"] is None


# ---- background liquidity -----------------------------------------------------------------------


def test_replay_runs_taker_then_maker_txs_signed_by_the_background_accounts(tmp_path):
    bids, asks = ladder("0.4200", "0.4201", size=100.0, depth=3)
    bids2 = dict(bids, **{"0.4200": 150.0})  # the best bid grows: the maker adds 50 at the back
    asks2 = dict(asks)
    asks2.pop("0.4201")  # a buyer took the whole best ask
    tape = open_tape(write_tape(tmp_path / "tape", [
        TapeBlockSpec(0, bids, asks),
        TapeBlockSpec(400, bids2, asks2, trades=[("buy", "0.4201", 100.0)]),
    ]))
    seed = 3
    maker, taker = account_signer(seed, "maker"), account_signer(seed, "taker")
    chain = Chain(ChainConfig(seed=seed), TapeReplay(tape, maker=maker.address, taker=taker.address))
    first = block(chain)
    assert first.txs and {decode_tx(r.raw).messages[0].sender for r in first.txs} == {maker.address}
    second = block(chain)
    senders = [decode_tx(r.raw).messages[0].sender for r in second.txs]
    assert senders[0] == taker.address and set(senders[1:]) == {maker.address}
    for result in first.txs + second.txs:
        assert result.code == 0, result.log
        signer = decode_tx(result.raw).messages[0].sender
        assert txlib.verify_signature(result.raw, chain_id=chain.chain_id,
                                      account_number=chain.account(signer).account_number,
                                      public_key=(maker if signer == maker.address else taker).public_key_bytes)
    trades = [e for r in second.txs for e in r.events if e.type == "wasm-trade"]
    assert [(e.get("price"), e.get("quantity"), e.get("taker_side")) for e in trades] == [("0.4201", "100", "buy")]
    book = chain.clob.query({"book": {"depth": 10}}, chain.height)
    assert [(lv["price"], lv["quantity"]) for lv in book["asks"]] == [(p, "100") for p in sorted(asks2)]
    assert [(lv["price"], lv["quantity"]) for lv in book["bids"]] == [("0.42", "150"), ("0.4199", "100"),
                                                                      ("0.4198", "100")]
    assert not chain.replay_exhausted
    assert block(chain).txs == () and chain.replay_exhausted


def test_faults_and_config_refuse_bad_arguments(chain):
    with pytest.raises(ValueError, match="no account"):
        chain.skew_sequence(STRANGER.address, 1)
    with pytest.raises(ValueError, match="by must be >= 1"):
        chain.skew_sequence(chain.dev.address, 0)
    with pytest.raises(ValueError, match="code > 0"):
        chain.reject_next(1, 0)
    with pytest.raises(ValueError, match="retain_blocks"):
        ChainConfig(retain_blocks=0)
    with pytest.raises(ValueError, match="min_gas_price"):
        dataclasses.replace(ChainConfig(), min_gas_price=-1)
