"""The localnet over real sockets, spoken to with the plain `websockets` client: the CometBFT
JSON-RPC subset FlashMM uses, subscriptions and their pushes, every fault switch observed from the
client's side, junk requests answered with errors, and the `flashmm localnet` command itself."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tapebuilder import steady, write_tape
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from adapters.sei import tx as txlib
from adapters.sei.codec import decode_tx
from adapters.sei.events import EventDecodeError, decode_events, wasm_events
from adapters.sei.keys import load_signer
from adapters.sei.localnet.chain import ChainConfig
from adapters.sei.localnet.server import LocalnetThread

BLOCK_MS = 50
GAS = 2_000_000
FEE = 40_000
TX_QUERY = "tm.event='Tx' AND execute._contract_address='{contract}'"


class Client:
    """A JSON-RPC client over one websocket that keeps pushes aside while waiting for responses."""

    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url, max_size=None))
        self.pushes: list[dict] = []
        self._next_id = 0

    def send(self, payload: str | bytes) -> dict:
        self.ws.send(payload)
        return self._response(lambda m: True)

    def call(self, method: str, params: dict | None = None, request_id: int | str | None = None) -> dict:
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}))
        return self._response(lambda m: m.get("id") == request_id)

    def result(self, method: str, params: dict | None = None) -> dict:
        response = self.call(method, params)
        assert "result" in response, response
        return response["result"]

    def _response(self, wanted, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout  # pushes keep coming, so recv alone would never time out
        while True:
            assert time.monotonic() < deadline, "no response"
            message = json.loads(self.ws.recv(timeout=5))
            if _is_push(message):
                self.pushes.append(message)
            elif wanted(message):
                return message

    def push(self, request_id, timeout: float = 5.0) -> dict:
        """The next push for the subscription made with `request_id`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.pushes):
                if message["id"] == request_id:
                    return self.pushes.pop(i)
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            assert _is_push(message), message
            self.pushes.append(message)

    def close(self) -> None:
        self._stack.close()


def _is_push(message: dict) -> bool:
    result = message.get("result")
    return isinstance(result, dict) and "query" in result and "data" in result


@pytest.fixture
def net():
    with LocalnetThread(ChainConfig(seed=5), block_interval_ms=BLOCK_MS) as localnet:
        yield localnet
        assert localnet.failure is None


@pytest.fixture
def client(net):
    c = Client(net.url)
    yield c
    c.close()


def signed(net: LocalnetThread, client: Client, msg: dict, sequence: int | None = None) -> bytes:
    account = account_info(net, client)
    return txlib.build_execute_tx(
        net.dev_signer, chain_id=net.chain_id, account_number=account.account_number,
        sequence=account.sequence if sequence is None else sequence, contract=net.contract, msg=msg,
        fee_amount=FEE, gas_limit=GAS,
    )


def account_info(net: LocalnetThread, client: Client) -> txlib.AccountInfo:
    data = txlib.encode_account_request(net.dev_signer.address).hex()
    response = client.result("abci_query",
                             {"path": txlib.ACCOUNT_QUERY_PATH, "data": data, "height": "0", "prove": False})
    return txlib.decode_account_response(base64.b64decode(response["response"]["value"]))


def broadcast(client: Client, raw: bytes) -> dict:
    return client.result("broadcast_tx_sync", {"tx": base64.b64encode(raw).decode()})


def place(coid: str, price: str = "0.4") -> dict:
    return {"place_order": {"client_order_id": coid, "side": "buy", "price": price, "quantity": "10",
                            "post_only": True}}


def height_of(push: dict) -> int:
    return int(push["result"]["data"]["value"]["block"]["header"]["height"])


# ---- methods ------------------------------------------------------------------------------------


def test_status_health_and_blocks(net, client):
    status = client.result("status")
    assert status["node_info"]["network"] == net.chain_id == "flashmm-localnet-1"
    assert status["node_info"]["version"] == "0.35.0-sei-localnet"
    assert status["sync_info"]["catching_up"] is False
    assert client.result("health") == {}
    first = int(status["sync_info"]["latest_block_height"])
    time.sleep(4 * BLOCK_MS / 1000)
    latest = int(client.result("status")["sync_info"]["latest_block_height"])
    assert latest > first  # the block timer runs
    block = client.result("block", {"height": str(latest)})
    assert block["block"]["header"]["height"] == str(latest)
    assert client.result("block_results", {"height": latest})["height"] == str(latest)


def test_placed_order_arrives_in_the_next_block_push_and_in_block_results(net, client):
    new_block = client.call("subscribe", {"query": "tm.event='NewBlock'"}, request_id="blocks")
    tx_sub = client.call("subscribe", {"query": TX_QUERY.format(contract=net.contract)}, request_id=77)
    assert new_block["result"] == {} and tx_sub["result"] == {}
    raw = signed(net, client, place("srv-1", "0.4213"))
    accepted = broadcast(client, raw)
    assert accepted["code"] == 0 and accepted["hash"] == decode_tx(raw).hash

    encoded = base64.b64encode(raw).decode()
    deadline = time.monotonic() + 10
    while True:  # NewBlock pushes until the one carrying our tx
        assert time.monotonic() < deadline, "the tx never landed in a block"
        push = client.push("blocks")
        if encoded in push["result"]["data"]["value"]["block"]["data"]["txs"]:
            break
    height = height_of(push)
    assert push["result"]["query"] == "tm.event='NewBlock'"
    assert push["result"]["events"]["tm.event"] == ["NewBlock"]
    tx_push = client.push(77)
    assert tx_push["id"] == 77 and tx_push["result"]["data"]["type"] == "tendermint/event/Tx"
    tx_result = tx_push["result"]["data"]["value"]["TxResult"]
    assert (tx_result["height"], tx_result["tx"]) == (str(height), encoded)
    assert tx_push["result"]["events"]["tx.hash"] == [accepted["hash"]]
    (placed,) = [e for e in wasm_events(decode_events(tx_result["result"]["events"]), net.contract)
                 if e.type == "wasm-placed"]
    assert placed.get("client_order_id") == "srv-1" and placed.get("owner") == net.dev_signer.address

    results = client.result("block_results", {"height": str(height)})
    assert tx_result["result"] in results["txs_results"]
    query = txlib.encode_smart_query_request(net.contract, {"book": {"depth": 3}}).hex()
    answer = client.result("abci_query", {"path": txlib.SMART_QUERY_PATH, "data": query})["response"]
    assert txlib.decode_smart_query_response(base64.b64decode(answer["value"]))["bids"] == [
        {"price": "0.4213", "quantity": "10"}]


def test_pushes_of_a_block_come_newblock_first_then_txs_in_order(net, client):
    client.call("subscribe", {"query": "tm.event='NewBlock'"}, request_id="b")
    client.call("subscribe", {"query": "tm.event='Tx'"}, request_id="t")
    sequence = account_info(net, client).sequence
    # Hold blocks back while the three go in, so that one block carries all of them however slow
    # this machine is; pushes that arrive while we wait for a broadcast's answer are kept in order.
    assert net.fault(stall_ms=3000) == ["stall_ms"]
    accepted = [broadcast(client, signed(net, client, place(f"o{i}", f"0.4{i}"), sequence + i)) for i in range(3)]
    assert [a["code"] for a in accepted] == [0, 0, 0], accepted
    hashes = [a["hash"] for a in accepted]
    deadline = time.monotonic() + 10
    while len([m for m in client.pushes if m["id"] == "t"]) < 3:
        assert time.monotonic() < deadline, f"no tx pushes for {hashes}: {[m['id'] for m in client.pushes]}"
        message = json.loads(client.ws.recv(timeout=5))
        assert _is_push(message), message
        client.pushes.append(message)
    order = [(m["id"], m) for m in client.pushes]
    kinds = [kind for kind, _ in order]
    first_tx = kinds.index("t")
    assert kinds[first_tx - 1] == "b"  # the block carrying them was announced first
    txs = [m for kind, m in order if kind == "t"]
    assert [m["result"]["events"]["tx.hash"][0] for m in txs] == hashes
    assert [m["result"]["data"]["value"]["TxResult"]["index"] for m in txs] == [0, 1, 2]


def test_subscription_limit_duplicates_and_unsubscribe(net, client):
    queries = [f"tm.event='Tx' AND tx.height={h}" for h in range(1000, 1005)]
    for q in queries:
        assert client.result("subscribe", {"query": q}) == {}
    sixth = client.call("subscribe", {"query": "tm.event='NewBlock'"})
    assert sixth["error"]["code"] == -32603 and sixth["error"]["data"] == "max_subscriptions_per_client 5 reached"
    assert client.result("unsubscribe", {"query": queries[0]}) == {}
    assert client.call("unsubscribe", {"query": queries[0]})["error"]["data"] == "subscription not found"
    assert client.result("subscribe", {"query": "tm.event='NewBlock'"}) == {}
    assert client.call("subscribe", {"query": queries[1]})["error"]["data"] == "already subscribed"
    assert client.result("unsubscribe_all") == {}
    assert client.result("subscribe", {"query": queries[0]}) == {}
    # Another connection has its own five.
    other = Client(net.url)
    for q in queries:
        assert other.result("subscribe", {"query": q}) == {}
    other.close()


@pytest.mark.parametrize("query", ["tm.event='NewBlock' OR tm.event='Tx'", "tm.event > 3", "", "tm.event='Tx' AND"])
def test_unsupported_queries_are_refused(client, query):
    response = client.call("subscribe", {"query": query})
    assert response["error"]["code"] == -32602


def test_wrong_path_is_refused(net):
    with pytest.raises(InvalidStatus) as info:
        connect(net.url.replace("/websocket", "/"))
    assert info.value.response.status_code == 404


# ---- faults -------------------------------------------------------------------------------------


def test_drop_connections_closes_every_socket_and_the_server_lives_on(net, client):
    other = Client(net.url)
    other.call("subscribe", {"query": "tm.event='NewBlock'"})
    response = client.call("flashmm_fault", {"drop_connections": True})
    assert response["result"] == {"applied": ["drop_connections"]}
    for c in (client, other):
        deadline = time.monotonic() + 5
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:
                c.ws.recv(timeout=5)
    fresh = Client(net.url)
    assert fresh.result("health") == {}
    fresh.close()


def test_refuse_turns_new_connections_away_for_a_while(net, client):
    assert client.result("flashmm_fault", {"refuse_ms": 800}) == {"applied": ["refuse_ms"]}
    with pytest.raises(InvalidStatus) as info:
        connect(net.url)
    assert info.value.response.status_code == 503
    assert client.result("health") == {}  # connections already open are not affected
    time.sleep(0.9)
    fresh = Client(net.url)
    assert fresh.result("health") == {}
    fresh.close()


def test_stall_pauses_blocks_then_heights_continue(net, client):
    client.call("subscribe", {"query": "tm.event='NewBlock'"}, request_id="b")
    before = height_of(client.push("b"))
    assert client.result("flashmm_fault", {"stall_ms": 600}) == {"applied": ["stall_ms"]}
    client.pushes.clear()
    stalled_at = time.monotonic()
    pushes = [client.push("b", timeout=5)]
    gap = time.monotonic() - stalled_at
    pushes += [client.push("b") for _ in range(2)]
    heights = [height_of(p) for p in pushes]
    assert gap >= 0.45, gap
    assert heights == list(range(heights[0], heights[0] + 3)) and heights[0] <= before + 2


def test_reject_txs(net, client):
    assert client.result("flashmm_fault", {"reject_txs": 1, "code": 20}) == {"applied": ["reject_txs"]}
    raw = signed(net, client, place("r1"))
    rejected = broadcast(client, raw)
    assert (rejected["code"], rejected["codespace"]) == (20, "sdk")
    assert broadcast(client, raw)["code"] == 0


def test_sequence_skew(net, client):
    start = account_info(net, client).sequence
    stale = signed(net, client, place("s1"))
    applied = client.result("flashmm_fault", {"sequence_skew": {"address": net.dev_signer.address, "by": 3}})
    assert applied == {"applied": ["sequence_skew"]}
    assert account_info(net, client).sequence == start + 3
    refused = broadcast(client, stale)
    assert refused["code"] == 32
    assert refused["log"] == f"account sequence mismatch, expected {start + 3}, got {start}: incorrect account sequence"
    assert broadcast(client, signed(net, client, place("s2")))["code"] == 0


def test_swallowed_tx_never_lands(net, client):
    client.call("subscribe", {"query": "tm.event='NewBlock'"}, request_id="b")
    client.result("flashmm_fault", {"swallow_txs": 1})
    raw = signed(net, client, place("gone"))
    accepted = broadcast(client, raw)
    assert accepted["code"] == 0
    start = height_of(client.push("b"))
    heights = [height_of(client.push("b")) for _ in range(3)]
    encoded = base64.b64encode(raw).decode()
    for h in [start] + heights:
        assert encoded not in client.result("block", {"height": str(h)})["block"]["data"]["txs"]
    assert account_info(net, client).sequence == decode_tx(raw).signers[0].sequence


def _broken(message: str | bytes) -> bool:
    """True when a push cannot be read as CometBFT's: FlashMM's client must count and skip it."""
    try:
        obj = json.loads(message)
        data = obj["result"]["data"]
        value = data["value"]
        if data["type"] == "tendermint/event/NewBlock":
            header = value["block"]["header"]
            int(header["height"])
            assert isinstance(header["chain_id"], str) and isinstance(value["block"]["data"]["txs"], list)
            return False
        result = value["TxResult"]
        int(result["height"])
        assert isinstance(result["index"], int)
        base64.b64decode(result["tx"], validate=True)
        decode_events(result["result"]["events"])
        return False
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError, EventDecodeError):
        return True


def test_malformed_pushes_reach_every_subscriber(net, client):
    idle = Client(net.url)  # not subscribed: gets none
    client.call("subscribe", {"query": "tm.event='Tx'"}, request_id="t")
    assert client.result("flashmm_fault", {"malformed": 8}) == {"applied": ["malformed"]}
    received = [client.ws.recv(timeout=5) for _ in range(8)]
    assert all(_broken(m) for m in received)
    parsed = [json.loads(m) for m in received if isinstance(m, str) and _parses(m)]
    assert all(m.get("id") == "t" for m in parsed)  # addressed to the real subscription
    assert idle.result("health") == {} and not idle.pushes
    assert client.result("health") == {}
    idle.close()


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("switches,error", [
    ({}, "no fault switch"),
    ({"explode": True}, "unknown fault switches"),
    ({"reject_txs": 1}, "go together"),
    ({"reject_txs": 1, "code": 0}, "code"),
    ({"stall_ms": -5}, "stall_ms"),
    ({"sequence_skew": {"address": "sei1nobody", "by": 1}}, "sequence_skew"),
    ({"drop_connections": "yes"}, "drop_connections"),
])
def test_bad_fault_switches_are_refused(client, switches, error):
    response = client.call("flashmm_fault", switches)
    assert response["error"]["code"] == -32602 and error in response["error"]["data"]


def test_in_process_fault_switches(net, client):
    assert net.fault(reject_txs=1, code=7) == ["reject_txs"]
    assert broadcast(client, signed(net, client, place("p1")))["code"] == 7


# ---- junk ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload,code,request_id", [
    ("not json", -32700, None),
    (b"\xff\x00binary", -32700, None),
    ("[1, 2]", -32600, None),
    ('{"jsonrpc": "2.0", "id": 1.5, "method": "status"}', -32600, None),
    ('{"jsonrpc": "1.0", "id": 3, "method": "status"}', -32600, 3),
    ('{"jsonrpc": "2.0", "id": 4, "method": 17}', -32600, 4),
    ('{"jsonrpc": "2.0", "id": 5, "method": "tx_search"}', -32601, 5),
    ('{"jsonrpc": "2.0", "id": 6, "method": "status", "params": [1]}', -32602, 6),
    ('{"jsonrpc": "2.0", "id": 7, "method": "broadcast_tx_sync", "params": {"tx": "!!"}}', -32602, 7),
    ('{"jsonrpc": "2.0", "id": 8, "method": "abci_query", "params": {"path": "/x", "data": "zz"}}', -32602, 8),
    ('{"jsonrpc": "2.0", "id": 9, "method": "block", "params": {"height": "-1"}}', -32602, 9),
    ('{"jsonrpc": "2.0", "id": 10, "method": "block", "params": {"height": "999999"}}', -32603, 10),
    ('{"jsonrpc": "2.0", "id": "s", "method": "status", "params": {"verbose": true}}', -32602, "s"),
    ("[" * 100_000, -32700, None),
    (json.dumps({"jsonrpc": "2.0", "id": 11, "method": "status", "pad": "x" * (1 << 20)}), -32600, None),
])
def test_junk_requests_get_errors_and_the_connection_lives_on(client, payload, code, request_id):
    response = client.send(payload)
    assert response["jsonrpc"] == "2.0" and response["id"] == request_id
    assert response["error"]["code"] == code and response["error"]["data"]
    assert client.result("health") == {}


@pytest.fixture(scope="module")
def shared_net():
    with LocalnetThread(ChainConfig(seed=9), block_interval_ms=1000) as localnet:
        yield localnet


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                 max_leaves=10).map(json.dumps),
    st.fixed_dictionaries({
        "jsonrpc": st.just("2.0"), "id": st.integers(0, 10**6),
        "method": st.sampled_from(["status", "subscribe", "unsubscribe", "broadcast_tx_sync", "abci_query", "block",
                                   "block_results", "flashmm_fault", "unsubscribe_all"]),
        "params": st.dictionaries(st.sampled_from(["query", "tx", "path", "data", "height", "prove", "malformed"]),
                                  st.none() | st.integers(-5, 5) | st.text(max_size=30) | st.booleans(), max_size=3),
    }).map(json.dumps),
))
def test_hostile_requests_never_kill_the_server(shared_net, payload):
    c = Client(shared_net.url)
    try:
        response = c.send(payload)
        assert response.get("jsonrpc") == "2.0" and ("result" in response) != ("error" in response)
        assert c.result("health") == {}
    finally:
        c.close()
    assert shared_net.failure is None


# ---- the command --------------------------------------------------------------------------------


def test_localnet_command_serves_writes_a_private_key_and_stops_on_sigterm(tmp_path):
    catalog = write_tape(tmp_path / "tape", steady("0.4200", "0.4202", 0, 60_000, size=500.0))
    key_file = tmp_path / "keys" / "localnet.key"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "localnet", "--catalog", str(catalog), "--port", "0", "--block-ms", "100",
         "--seed", "4", "--key-file", str(key_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        text = "".join(lines)
        assert "localnet flashmm-localnet-1 serving ws://127.0.0.1:" in text, text
        url, contract, address, printed_key_file = (line.split()[-1] for line in lines[:4])
        assert printed_key_file == str(key_file)
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        assert address == load_signer(file=key_file).address
        assert key_file.read_text().strip() not in text
        c = Client(url)
        c.call("subscribe", {"query": "tm.event='NewBlock'"}, request_id="b")
        push = c.push("b")
        assert push["result"]["data"]["value"]["block"]["data"]["txs"]  # the maker replays the tape
        query = txlib.encode_smart_query_request(contract, {"book": {"depth": 3}}).hex()
        answer = c.result("abci_query", {"path": txlib.SMART_QUERY_PATH, "data": query})["response"]
        book = txlib.decode_smart_query_response(base64.b64decode(answer["value"]))
        assert [lv["price"] for lv in book["bids"]] == ["0.42", "0.4199", "0.4198"]
        assert [lv["price"] for lv in book["asks"]] == ["0.4202", "0.4203", "0.4204"]
        c.close()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0, out
        assert "localnet stopped at height" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
