"""The Monaco wire mapping: what one side encodes the other decodes, a corrected field name changes
both sides at once, and nothing a venue could send makes a decoder fail other than by WireError."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.monaco.wire import (
    Ack,
    ApiError,
    Balance,
    Codec,
    Fill,
    Order,
    Pair,
    Session,
    Trade,
    Wire,
    WireError,
    camel,
    iso,
    parse_time,
    signing_string,
)

PAIR = Pair(id="8f3c0c2e-1111-4c61-9a9e-1d5c0f6b7a01", symbol="SEI/USDC", base_token="SEI", quote_token="USDC",
            base_asset_id="a1", quote_asset_id="a2", base_decimals=18, quote_decimals=6,
            tick_size=Decimal("0.0001"), lot_size=Decimal("0.1"), min_order_size=Decimal("0.1"),
            max_order_size=Decimal("1000000"), maker_fee_bps=Decimal(0), taker_fee_bps=Decimal("2.5"),
            is_active=True)
TS = 1_767_571_200_123_456_000  # 2026-01-05T00:00:00.123456Z


def test_camel_case():
    assert camel("trading_pair_id") == "tradingPairId"
    assert camel("id") == "id"


def test_every_message_round_trips_through_json():
    c = Codec()

    def wire(obj):  # through real JSON bytes, as on a socket
        return msgspec.json.decode(c.dumps(obj))

    assert c.read_pair(wire(c.pair(PAIR))) == PAIR
    pairs, pages = c.read_pairs_page(wire(c.pairs_page([PAIR], 1, 20, 1)))
    assert pairs == [PAIR] and pages == 1
    book = c.read_book_snapshot(wire(c.book_snapshot(PAIR.id, [(Decimal("0.4"), Decimal("10"))],
                                                     [(Decimal("0.4001"), Decimal("2.5"))], 7, TS)), PAIR.id)
    assert (book.bids, book.asks, book.sequence, book.ts_ns) == (
        ((Decimal("0.4"), Decimal("10")),), ((Decimal("0.4001"), Decimal("2.5")),), 7, TS)
    assert c.read_create_order(wire(c.create_order(PAIR.id, "sell", Decimal("0.4001"), Decimal("50")))) == (
        PAIR.id, "LIMIT", "sell", Decimal("0.4001"), Decimal("50"), "GTC")
    ack = Ack("o-1", True, "Order created successfully", "PARTIALLY_FILLED", Decimal("20"), Decimal("0.4"))
    assert c.read_ack(wire(c.ack(ack))) == ack
    order = Order("o-1", PAIR.id, "buy", Decimal("0.4"), Decimal("50"), Decimal("20"), Decimal("0.4"),
                  "PARTIALLY_FILLED", TS)
    assert c.read_order(wire(c.order(order))) == order
    rows, pages = c.read_orders_page(wire(c.orders_page([order], 1, 3)))
    assert rows == [order] and pages == 3
    balances = [Balance("a1", "SEI", 18, Decimal("10"), Decimal("2"), Decimal("12"))]
    assert c.read_balances(wire(c.balances(balances))) == balances
    session = Session("acc-token-0123456789", "ref-token-0123456789", TS - TS % 1_000_000, "u-1")
    assert c.read_session(wire(c.session("verify_response", session, "0xabc"))) == session
    # WebSocket frames
    kind, channel, frame = c.read_frame(c.dumps(c.book_frame("update", PAIR.id, [(Decimal("0.4"), Decimal(0))], [],
                                                              8, TS, 18, 6)))
    assert (kind, channel) == ("update", "orderbook")
    assert c.read_book_frame(kind, frame).bids == ((Decimal("0.4"), Decimal(0)),)
    trade = Trade(PAIR.id, "t-1", Decimal("0.4"), Decimal("5"), "buy", TS, 3)
    kind, channel, frame = c.read_frame(c.dumps(c.trade_frame(trade, 5 * 10**18)))
    assert (kind, channel) == ("event", "trades") and c.read_trade_frame(frame) == trade
    event = Order("o-1", PAIR.id, "buy", Decimal("0.4"), Decimal("50"), Decimal("25"), Decimal("0.4"),
                  "PARTIALLY_FILLED", None, event="fill", fill=Fill("t-2", Decimal("0.4"), Decimal("5"), "maker",
                                                                    Decimal("0.001")), sequence=4, ts_ns=TS)
    kind, channel, frame = c.read_frame(c.dumps(c.order_frame(event)))
    assert (kind, channel) == ("event", "orders") and c.read_order_frame(frame) == event


def test_the_defaults_spell_fields_as_the_sources_do():
    c = Codec()
    assert set(c.pair(PAIR)) >= {"base_decimals", "tick_size", "maker_fee_bps", "is_active"}  # [RS] snake_case
    assert set(c.challenge("m", "n", TS)) == {"message", "nonce", "expiresAt"}  # [RS] ChallengeResponse
    assert set(c.verify_request("0x1", "n", "0xsig", 1328, "app", "ab")) == {
        "address", "nonce", "signature", "chain_id", "client_id", "session_public_key"}  # [RS] VerifyRequest
    frame = c.book_frame("snapshot", PAIR.id, [], [], 1, TS, 18, 6)
    assert {"tradingPairId", "tradingMode", "baseDecimals", "quoteDecimals"} <= set(frame)  # [TS] OrderbookEvent
    assert set(c.trade_frame(Trade(PAIR.id, "t", Decimal(1), Decimal(1), "sell", TS, 1), 1)["data"]) == {
        "tradeId", "price", "quantity", "quantityRaw", "makerSide", "executedAt"}  # [RS] 1.0.3 TradeData
    assert c.create_order(PAIR.id, "buy", Decimal("1"), Decimal("2"))["side"] == "BUY"
    assert c.wire.method_path("cancel_order", order_id="x") == ("DELETE", "/api/v1/orders/x")


def test_one_correction_in_the_wire_changes_both_sides():
    """A user who finds a field spelt otherwise fixes it in `Wire` once: the encoder writes the new
    key, the decoder reads only the new key, and the old spelling is refused."""
    fixed = Codec(Wire(renames={"order.filled_quantity": "filledQty"}, cases={"pair": "camel"}))
    order = Order("o", PAIR.id, "buy", Decimal("1"), Decimal("2"), Decimal("1"), None, "SUBMITTED", None)
    raw = fixed.order(order)
    assert "filledQty" in raw and "filled_quantity" not in raw
    assert fixed.read_order(raw).filled_quantity == Decimal("1")
    assert Codec().read_order(raw).filled_quantity == Decimal(0)  # the default dialect does not see it
    assert "tickSize" in fixed.pair(PAIR) and fixed.read_pair(fixed.pair(PAIR)) == PAIR
    with pytest.raises(WireError, match="'baseDecimals' must be a non-negative integer"):
        fixed.read_pair(Codec().pair(PAIR))
    with pytest.raises(WireError, match="unknown messages"):
        Codec(Wire(cases={"not_a_message": "camel"}))


def test_decoders_name_the_field_and_never_quote_the_value():
    c = Codec()
    with pytest.raises(WireError) as err:
        c.read_session({"accessToken": 12345, "refreshToken": "super-secret-refresh-token"}, "verify_response")
    assert "accessToken" in str(err.value) and "super-secret" not in str(err.value)
    secret = "0xdeadbeef" * 8
    with pytest.raises(WireError) as err:
        c.read_pair({"id": secret, "symbol": "SEI/USDC", "base_decimals": "eighteen"})
    assert "base_decimals" in str(err.value) and secret not in str(err.value)
    assert "acc" not in repr(Session("acc-token-0123456789", "ref-token-0123456789", 1, "u"))


def test_errors_are_read_from_any_body():
    c = Codec()
    assert c.read_error(400, c.dumps(c.error(ApiError(400, "INVALID_PRICE", "off the tick")))) == ApiError(
        400, "INVALID_PRICE", "off the tick")
    assert c.read_error(502, b"<html>bad gateway</html>") == ApiError(502, "HTTP_502", "HTTP 502")
    assert c.read_error(400, b'{"error": "' + b"x" * 1000 + b'"}').message == "x" * 300


def test_times_in_every_form_the_sources_show():
    assert parse_time(iso(TS)) == TS
    assert parse_time("2023-11-13T10:30:00Z") == 1_699_871_400 * 10**9  # [RS] example
    assert parse_time(1_699_871_400) == parse_time(1_699_871_400_000) == 1_699_871_400 * 10**9  # s or ms
    assert parse_time("1699871400000") == 1_699_871_400 * 10**9
    for bad in (True, "yesterday", -5, float("nan"), 10**20, None, [1]):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_the_session_signing_string():
    """[RS] 0.8.8: METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP_MS\\nSHA256_BODY_HEX."""
    body = b'{"price":"0.4"}'
    assert signing_string("post", "/api/v1/orders?x=1", 1700000000000, body) == (
        f"POST\n/api/v1/orders?x=1\n1700000000000\n{hashlib.sha256(body).hexdigest()}".encode())
    assert signing_string("GET", "/ws", 1, b"").endswith(hashlib.sha256(b"").hexdigest().encode())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.sampled_from(["BUY", "SELL", "update", "event", "orderbook", "orders", "trades", "FILLED", "1e999",
                       "0.4", "-1", "2026-01-05T00:00:00Z", "NaN"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "channel", "tradingPairId", "sequence", "bids", "asks", "price", "quantity",
                         "data", "orderId", "eventType", "side", "fill", "timestamp", "tradeId", "makerSide",
                         "status", "order_id", "match_result", "balances", "trading_pairs", "tick_size",
                         "accessToken", "expiresAt", "user", "liquidity"]) | st.text(max_size=8),
        children, max_size=8),
    max_leaves=25,
)


# Frames that get past the envelope: a known type and channel, then anything.
FRAMES = st.builds(
    lambda kind, channel, rest: {**rest, "type": kind, "channel": channel},
    st.sampled_from(["update", "snapshot", "event", "error"]), st.sampled_from(["orderbook", "trades", "orders"]),
    st.dictionaries(st.sampled_from(["tradingPairId", "sequence", "bids", "asks", "data", "orderId", "eventType",
                                     "side", "price", "quantity", "fill", "timestamp", "filledQuantity", "status"]),
                    JSON, max_size=10),
)


@settings(max_examples=400, deadline=None)
@given(JSON | FRAMES)
def test_decoders_only_ever_raise_wire_error(value):
    c = Codec()
    for read in (c.read_pair, c.read_pairs_page, c.read_ack, c.read_order, c.read_orders_page, c.read_balances,
                 c.read_challenge, lambda v: c.read_session(v), lambda v: c.read_book_snapshot(v, "p"),
                 c.read_create_order, c.read_verify_request):
        try:
            read(value)
        except WireError:
            pass
    try:
        kind, channel, frame = c.read_frame(msgspec.json.encode(value))
    except (WireError, OverflowError, TypeError):  # encoding hypothesis' own value may fail: not the decoder
        return
    for read in (lambda f: c.read_book_frame(kind, f), c.read_trade_frame, c.read_order_frame):
        try:
            read(frame)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_frames_of_any_bytes_only_raise_wire_error(data):
    try:
        Codec().read_frame(data)
    except WireError:
        pass


def test_the_evm_libraries_leave_the_recursion_limit_alone():
    """py_ecc (under eth-account) raises the recursion limit to 100,000 on import; deep junk then
    overflows the C stack and kills the process instead of raising RecursionError, which every
    parser of the node (Sei's JSON-RPC, the localnet, Monaco's frames) relies on."""
    import subprocess
    import sys

    probe = ("import sys, json; limit = sys.getrecursionlimit()\n"
             "import adapters.monaco.vault, adapters.monaco.local.server, web3, eth_account\n"
             "assert sys.getrecursionlimit() == limit, sys.getrecursionlimit()\n"
             "try:\n    json.loads('[' * 100_000)\nexcept RecursionError:\n    print('recursion error, alive')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.strip() == "recursion error, alive", out.stderr[-2000:]
