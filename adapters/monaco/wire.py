"""Monaco's wire protocol, in one place: paths, JSON field names and casing, value spellings,
WebSocket frames and the login signature, for the client and for the local Monaco alike.

Nothing here was observed on a live connection (no machine of the project can reach Monaco).
Each default comes from a public source, named next to it and in VENUE.md:

- [RS]  the Rust crate `monaco-sdk` on docs.rs (generated from Monaco's OpenAPI spec), 0.8.x-1.0.x;
- [OAS] the first part of that OpenAPI spec, `openapi/openapi.yaml` in the crate's source view;
- [TS]  integration tests and tools written against Monaco's TypeScript SDK (`@0xmonaco/core`,
        `@0xmonaco/types`): `createMonacoSDK`, `sdk.login(clientId)`, `ws.orderbook(pairId, "SPOT", ...)`;
- [3P]  a third-party script calling Monaco's staging API with raw `fetch` (the only raw-HTTP source).

Where no source shows a detail it is marked UNCONFIRMED: the default is this module's choice, and
`Wire` (the `[monaco.wire]` table of a node config, `--wire` of `flashmm monaco-local`) changes it
without touching code. A user who can reach Monaco and finds a field spelt differently corrects it
here, in `renames` or `cases`, once; the local Monaco then speaks the corrected dialect too.

The module encodes and decodes; it never does I/O. Decoders raise `WireError` naming the message and
the field that is wrong and never quote the offending value: a login answer carries tokens, and
nothing the venue sends may reach a log unchecked.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

Case = Literal["snake", "camel"]


class WireError(ValueError):
    """A message does not have the shape the wire mapping expects (never quotes the value)."""


# -- the mapping --------------------------------------------------------------------------------


class Routes(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """`METHOD /path` of every REST call; `{pair_id}` and `{order_id}` are filled in."""

    challenge: str = "POST /api/v1/auth/challenge"  # [3P] raw fetch to staging
    verify: str = "POST /api/v1/auth/verify"  # [3P] raw fetch to staging
    refresh: str = "POST /api/v1/auth/refresh"  # inferred from the SDK's error label "auth/refresh"; path UNCONFIRMED
    revoke: str = "POST /api/v1/auth/revoke"  # UNCONFIRMED (the SDK has revokeSession(); "body must be empty")
    trading_pairs: str = "GET /api/v1/trading-pairs"  # UNCONFIRMED path ([RS] list_trading_pairs)
    orderbook: str = "GET /api/v1/orderbook/{pair_id}"  # UNCONFIRMED path ([RS] get_orderbook_snapshot)
    create_order: str = "POST /api/v1/orders"  # UNCONFIRMED path ([RS] create_order)
    replace_order: str = "PUT /api/v1/orders/{order_id}"  # UNCONFIRMED method and path ([RS] replace_order)
    cancel_order: str = "DELETE /api/v1/orders/{order_id}"  # UNCONFIRMED method and path ([TS] cancelOrder)
    get_order: str = "GET /api/v1/orders/{order_id}"  # UNCONFIRMED path ([RS] get_order_by_id)
    list_orders: str = "GET /api/v1/orders"  # UNCONFIRMED path ([TS] getPaginatedOrders)
    balances: str = "GET /api/v1/accounts/balances"  # [OAS] get_user_balances
    websocket: str = "/ws"  # [TS] NETWORK_PRESETS: wss://<api host>/ws

    def split(self, name: str) -> tuple[str, str]:
        method, _, path = getattr(self, name).partition(" ")
        return method.upper(), path


class VaultAbi(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Custody calls on Sei EVM, as Solidity signatures. ERC-20 is the standard (EIP-20); that
    Monaco's vault takes an `approve`d ERC-20 deposit and pays out withdrawals is [TS] (socket.dev
    README of @0xmonaco/core 0.3.0: "ERC20 token approvals for vault usage", "Deposits",
    "Withdrawals ... with cryptographic validation"). The vault's address and function signatures
    are UNCONFIRMED (they ship in @0xmonaco/contracts, which no source here holds): these are
    this adapter's defaults, and a withdrawal that needs a signature from Monaco's API is not
    supported."""

    deposit: str = "deposit(address,uint256)"  # (token, amount in the token's smallest unit)
    withdraw: str = "withdraw(address,uint256)"  # (token, amount)


class Wire(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The dialect both sides speak. Every field has a default; see the module docstring."""

    routes: Routes = Routes()
    vault: VaultAbi = VaultAbi()
    # Casing of each message's keys ("snake" or "camel"), overriding DEFAULT_CASES per message.
    cases: dict[str, Case] = {}
    # "message.field" -> the key on the wire (after casing), for a single field spelt otherwise.
    renames: dict[str, str] = {}
    # Login: the wallet signs the challenge's `message` (EIP-191 personal_sign: [RS] tests/auth.rs
    # `sign_message`, [3P] `wallet.signMessage(challengeRes.message)`), or EIP-712 typed data over
    # the challenge (the issue names EIP-712; no domain or types were found: UNCONFIRMED, see below).
    login_signature: Literal["personal_sign", "eip712"] = "personal_sign"
    eip712_name: str = "Monaco"  # UNCONFIRMED
    eip712_version: str = "1"  # UNCONFIRMED
    # How an authenticated request proves itself: a bearer access token ([RS] 0.8.1 "Authenticated
    # endpoints require a Bearer token", refresh token rotation), or an ed25519 session key
    # registered at login, signing each request ([RS] 0.8.7+ README "noncustodial session-key auth").
    request_auth: Literal["bearer", "session_key"] = "bearer"
    # Session signatures: hex or base64 of the 64-byte ed25519 signature. UNCONFIRMED (hex likely).
    session_signature_encoding: Literal["hex", "base64"] = "hex"
    # `chain_id` in login bodies: [3P] sends a number (1328), [RS] types it as a string.
    chain_id_type: Literal["number", "string"] = "number"
    # The client id sent at login ([TS] sdk.login(clientId); [RS] example "monaco-frontend").
    # WebSocket: how the token reaches the socket (UNCONFIRMED: [TS] ws.setToken(); a weak hint of
    # `?token=`), and the frames (UNCONFIRMED: no subscribe frame was found in any source).
    ws_auth: Literal["frame", "query"] = "frame"
    ws_type_key: str = "type"
    ws_channel_key: str = "channel"
    ws_types: dict[str, str] = msgspec.field(default_factory=lambda: {
        "subscribe": "subscribe", "unsubscribe": "unsubscribe", "auth": "auth", "subscribed": "subscribed",
        "authenticated": "authenticated", "error": "error", "snapshot": "snapshot", "update": "update",
        "event": "event",
    })
    ws_channels: dict[str, str] = msgspec.field(default_factory=lambda: {
        "orderbook": "orderbook", "trades": "trades", "orders": "orders", "balances": "balances"})
    # orders-channel `eventType` values (the key is [TS] OrderEvent.eventType; values UNCONFIRMED).
    order_event_types: dict[str, str] = msgspec.field(default_factory=lambda: {
        "created": "CREATED", "fill": "FILLED", "cancelled": "CANCELLED", "replaced": "REPLACED",
        "rejected": "REJECTED"})
    # Book levels: objects {price, quantity} ([TS] `orderbook.bids[0].price`; the quantity key is
    # UNCONFIRMED) or [price, quantity] pairs.
    book_levels: Literal["objects", "pairs"] = "objects"
    # [TS] ws.orderbook(pairId, "SPOT", magnitude 1, "BASE"); getOrderbook(..., {depth, tradingMode, ...}).
    trading_mode: str = "SPOT"
    book_depth: int = 100
    # Order states that are still working ([TS] isOrderStatus).
    open_statuses: tuple[str, ...] = ("SUBMITTED", "PARTIALLY_FILLED")
    # A 429's wait (RFC 9110 Retry-After, seconds). Monaco's rate-limit headers are UNCONFIRMED.
    retry_after_header: str = "Retry-After"

    def method_path(self, route: str, **params: str) -> tuple[str, str]:
        method, path = self.routes.split(route)
        return method, path.format(**params) if params else path


# Casing per message, and where it comes from. A message not named here is snake_case.
DEFAULT_CASES: dict[str, Case] = {
    "challenge_request": "snake",  # [RS] 0.8.1 ChallengeRequest {address, chain_id, client_id}; [3P] sends camelCase
    "challenge_response": "camel",  # [RS] ChallengeResponse {expiresAt, message, nonce}
    "verify_request": "snake",  # [RS] VerifyRequest {address, nonce, signature, session_public_key, ...}
    "verify_response": "camel",  # [TS] response.accessToken/refreshToken/expiresAt/user (raw names UNCONFIRMED)
    "refresh_request": "camel",  # UNCONFIRMED ([TS] refreshToken(refreshToken))
    "refresh_response": "camel",  # [TS] {accessToken, expiresAt} (raw names UNCONFIRMED)
    "pair": "snake",  # [RS] 0.8.x TradingPairData (1.0.21 went camelCase: set cases.pair = "camel")
    "pairs_page": "snake",  # [RS] 0.8.1 ListTradingPairsResponse {trading_pairs, page, page_size, total, total_pages}
    "book": "camel",  # [TS] orderbook.bestBid / bestAsk / bids[].price
    "create_order": "snake",  # [RS] CreateOrderRequest
    "order_ack": "snake",  # [RS] CreateOrderResponse {order_id, status, message, match_result}
    "match_result": "snake",  # [RS] MatchResult
    "replace_order": "snake",  # [RS] ReplaceOrderRequest {price, quantity, use_master_balance}
    "order": "snake",  # [RS] GetOrderResponse
    "orders_page": "snake",  # [TS] {orders, total_pages, ...}
    "balance": "snake",  # [TS] AccountBalance {asset_id, token, symbol, decimals, available_balance, ...}
    "balances": "snake",  # [TS] {balances, total_count, ...}
    "error": "snake",  # [3P] a top-level `error` key; the rest UNCONFIRMED
    "ws": "camel",  # [TS] OrderbookEvent {tradingPairId, tradingMode, baseDecimals, quoteDecimals}, OrderEvent
    "ws_trade": "camel",  # [RS] 1.0.3 TradeData {tradeId, price, quantity, quantityRaw, makerSide, executedAt}
    "ws_fill": "camel",  # UNCONFIRMED: the fill carried by an orders-channel event
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


# -- neutral values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    """A trading pair's metadata: the instrument is built from it ([RS] TradingPairData)."""

    id: str
    symbol: str
    base_token: str
    quote_token: str
    base_asset_id: str
    quote_asset_id: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal | None  # `quantity_step_size` ([RS] 1.0.21); None before that
    min_order_size: Decimal
    max_order_size: Decimal | None
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    is_active: bool
    market_type: str = "SPOT"
    base_token_contract: str = ""
    quote_token_contract: str = ""


Level = tuple[Decimal, Decimal]  # (price, quantity); quantity 0 removes the level in an update


@dataclass(frozen=True, slots=True)
class Book:
    """A REST snapshot or a WebSocket book message (kind "snapshot" or "update")."""

    kind: str
    pair_id: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int | None
    ts_ns: int | None


@dataclass(frozen=True, slots=True)
class Trade:
    pair_id: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    maker_side: str  # "buy" | "sell"
    ts_ns: int | None
    sequence: int | None


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    price: Decimal
    quantity: Decimal
    liquidity: str  # "maker" | "taker"
    fee: Decimal  # in the quote asset


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the venue reports it (REST order, or an orders-channel event)."""

    id: str
    pair_id: str
    side: str  # "buy" | "sell"
    price: Decimal
    quantity: Decimal
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    status: str
    created_ns: int | None
    event: str | None = None  # orders channel: created | fill | cancelled | replaced | rejected
    fill: Fill | None = None
    replaced_by: str | None = None
    sequence: int | None = None
    ts_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a create or replace ([RS] CreateOrderResponse): `ok` is status SUCCESS."""

    order_id: str
    ok: bool
    message: str
    order_status: str | None
    total_filled: Decimal
    average_fill_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Balance:
    asset_id: str
    symbol: str
    decimals: int
    available: Decimal
    locked: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Challenge:
    message: str
    nonce: str
    expires_ns: int | None


@dataclass(frozen=True, slots=True)
class Session:
    """What a login or refresh returns. Tokens are secrets: `repr` leaves them out."""

    access_token: str | None = None
    refresh_token: str | None = None
    expires_ns: int | None = None
    user_id: str | None = None

    def __repr__(self) -> str:
        return f"Session(user_id={self.user_id!r}, expires_ns={self.expires_ns!r}, tokens=<hidden>)"


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    code: str
    message: str


SIDES = {"buy": "BUY", "sell": "SELL"}  # [TS] side "BUY" / "SELL"
_SIDE_BACK = {v: k for k, v in SIDES.items()}
LIMIT, GTC = "LIMIT", "GTC"  # [RS] order_type "LIMIT", time_in_force "GTC"
SUCCESS, FAILED = "SUCCESS", "FAILED"  # [RS]/[TS] response-level status
TERMINAL_STATUSES = frozenset({"FILLED", "SETTLED_ON_CHAIN", "SETTLED", "CANCELLED", "REJECTED", "EXPIRED"})  # [TS]


# -- the codec ----------------------------------------------------------------------------------


class Codec:
    """Encoders and decoders for one `Wire` dialect (keys resolved once, at construction)."""

    def __init__(self, wire: Wire | None = None) -> None:
        self.wire = wire or Wire()
        unknown = sorted(set(self.wire.cases) - set(DEFAULT_CASES))
        if unknown:
            raise WireError(f"wire.cases names unknown messages {unknown}; known: {sorted(DEFAULT_CASES)}")
        self._cases = {**DEFAULT_CASES, **self.wire.cases}
        self._keys: dict[tuple[str, str], str] = {}
        self._types = self.wire.ws_types
        self._types_back = {v: k for k, v in self._types.items()}
        self._channels_back = {v: k for k, v in self.wire.ws_channels.items()}
        self._events_back = {v: k for k, v in self.wire.order_event_types.items()}

    def key(self, message: str, field: str) -> str:
        found = self._keys.get((message, field))
        if found is None:
            found = self.wire.renames.get(f"{message}.{field}")
            if found is None:
                found = camel(field) if self._cases.get(message, "snake") == "camel" else field
            self._keys[(message, field)] = found
        return found

    def obj(self, message: str, /, **fields: Any) -> dict[str, Any]:
        """A message dict with its keys spelt for the wire; None values are left out."""
        return {self.key(message, k): v for k, v in fields.items() if v is not None}

    # -- JSON ---------------------------------------------------------------------------------

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return msgspec.json.encode(obj)

    @staticmethod
    def loads(data: bytes | str, what: str) -> Any:
        try:
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise WireError(f"{what}: not a JSON text") from None

    # -- auth -----------------------------------------------------------------------------------

    def chain_id(self, chain_id: int) -> int | str:
        return chain_id if self.wire.chain_id_type == "number" else str(chain_id)

    def challenge_request(self, address: str, chain_id: int, client_id: str, session_public_key: str | None) -> dict:
        return self.obj("challenge_request", address=address, chain_id=self.chain_id(chain_id), client_id=client_id,
                        session_public_key=session_public_key)

    def read_challenge_request(self, body: Any) -> tuple[str, str, str | None]:
        m = "challenge_request"
        d = _object(body, m)
        return (_str(d, self.key(m, "address"), m), _str_or(d, self.key(m, "client_id"), m) or "",
                _str_or(d, self.key(m, "session_public_key"), m))

    def challenge(self, message: str, nonce: str, expires_ns: int) -> dict:
        return self.obj("challenge_response", message=message, nonce=nonce, expires_at=expires_ns // 1_000_000_000)

    def read_challenge(self, body: Any) -> Challenge:
        m = "challenge_response"
        d = _object(body, m)
        return Challenge(_str(d, self.key(m, "message"), m), _str(d, self.key(m, "nonce"), m),
                         _time_or(d, self.key(m, "expires_at"), m))

    def verify_request(self, address: str, nonce: str, signature: str, chain_id: int, client_id: str,
                       session_public_key: str | None) -> dict:
        return self.obj("verify_request", address=address, nonce=nonce, signature=signature,
                        chain_id=self.chain_id(chain_id), client_id=client_id, session_public_key=session_public_key)

    def read_verify_request(self, body: Any) -> dict[str, str | None]:
        m = "verify_request"
        d = _object(body, m)
        out: dict[str, str | None] = {k: _str(d, self.key(m, k), m) for k in ("address", "nonce", "signature")}
        out["client_id"] = _str_or(d, self.key(m, "client_id"), m)
        out["session_public_key"] = _str_or(d, self.key(m, "session_public_key"), m)
        return out

    def session(self, message: str, session: Session, address: str) -> dict:
        user = {"id": session.user_id, "address": address} if session.user_id else None
        expires = None if session.expires_ns is None else session.expires_ns // 1_000_000
        return self.obj(message, access_token=session.access_token, refresh_token=session.refresh_token,
                        expires_at=expires, user=user)

    def read_session(self, body: Any, message: str = "verify_response") -> Session:
        d = _object(body, message)
        user = d.get(self.key(message, "user"))
        user_id = user.get("id") if isinstance(user, dict) else None
        return Session(_str_or(d, self.key(message, "access_token"), message),
                       _str_or(d, self.key(message, "refresh_token"), message),
                       _time_or(d, self.key(message, "expires_at"), message),
                       user_id if isinstance(user_id, str) else None)

    def refresh_request(self, refresh_token: str | None) -> dict:
        return self.obj("refresh_request", refresh_token=refresh_token)

    def read_refresh_request(self, body: Any) -> str | None:
        return _str_or(_object(body, "refresh_request"), self.key("refresh_request", "refresh_token"),
                       "refresh_request")

    def login_typed_data(self, address: str, nonce: str, chain_id: int, session_public_key: str | None) -> dict:
        """The EIP-712 alternative (`login_signature = "eip712"`). Domain and types are this
        module's choice: no Monaco source shows them (UNCONFIRMED; see VENUE.md)."""
        return {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"}],
                "Login": [{"name": "wallet", "type": "address"}, {"name": "nonce", "type": "string"},
                          {"name": "sessionPublicKey", "type": "string"}],
            },
            "primaryType": "Login",
            "domain": {"name": self.wire.eip712_name, "version": self.wire.eip712_version, "chainId": chain_id},
            "message": {"wallet": address, "nonce": nonce, "sessionPublicKey": session_public_key or ""},
        }

    def session_signature(self, signature: bytes) -> str:
        if self.wire.session_signature_encoding == "hex":
            return signature.hex()
        return base64.b64encode(signature).decode()

    def read_session_signature(self, text: str) -> bytes:
        try:
            if self.wire.session_signature_encoding == "hex":
                return bytes.fromhex(text)
            return base64.b64decode(text, validate=True)
        except ValueError:
            raise WireError("X-Monaco-Signature is not in the configured encoding") from None

    # -- market data ----------------------------------------------------------------------------

    def pair(self, p: Pair) -> dict:
        return self.obj(
            "pair", id=p.id, symbol=p.symbol, base_token=p.base_token, quote_token=p.quote_token,
            base_asset_id=p.base_asset_id, quote_asset_id=p.quote_asset_id, base_decimals=p.base_decimals,
            quote_decimals=p.quote_decimals, tick_size=_text(p.tick_size),
            quantity_step_size=None if p.lot_size is None else _text(p.lot_size),
            min_order_size=_text(p.min_order_size),
            max_order_size=None if p.max_order_size is None else _text(p.max_order_size),
            maker_fee_bps=_bps(p.maker_fee_bps), taker_fee_bps=_bps(p.taker_fee_bps), is_active=p.is_active,
            market_type=p.market_type, base_token_contract=p.base_token_contract,
            quote_token_contract=p.quote_token_contract,
        )

    def read_pair(self, body: Any) -> Pair:
        m = "pair"
        d = _object(body, m)
        k = self.key
        step = _dec_or(d, k(m, "quantity_step_size"), m)
        return Pair(
            id=_str(d, k(m, "id"), m), symbol=_str(d, k(m, "symbol"), m),
            base_token=_str_or(d, k(m, "base_token"), m) or "", quote_token=_str_or(d, k(m, "quote_token"), m) or "",
            base_asset_id=_str_or(d, k(m, "base_asset_id"), m) or "",
            quote_asset_id=_str_or(d, k(m, "quote_asset_id"), m) or "",
            base_decimals=_int(d, k(m, "base_decimals"), m), quote_decimals=_int(d, k(m, "quote_decimals"), m),
            tick_size=_positive(_dec(d, k(m, "tick_size"), m), m, "tick_size"),
            lot_size=None if step is None else _positive(step, m, "quantity_step_size"),
            min_order_size=_dec_or(d, k(m, "min_order_size"), m) or Decimal(0),
            max_order_size=_dec_or(d, k(m, "max_order_size"), m),
            maker_fee_bps=_dec_or(d, k(m, "maker_fee_bps"), m) or Decimal(0),
            taker_fee_bps=_dec_or(d, k(m, "taker_fee_bps"), m) or Decimal(0),
            is_active=_bool_or(d, k(m, "is_active"), m, True),
            market_type=_str_or(d, k(m, "market_type"), m) or "SPOT",
            base_token_contract=_str_or(d, k(m, "base_token_contract"), m) or "",
            quote_token_contract=_str_or(d, k(m, "quote_token_contract"), m) or "",
        )

    def pairs_page(self, pairs: list[Pair], page: int, page_size: int, total: int) -> dict:
        return self.obj("pairs_page", trading_pairs=[self.pair(p) for p in pairs], page=page, page_size=page_size,
                        total=total, total_pages=max(1, -(-total // page_size)))

    def read_pairs_page(self, body: Any) -> tuple[list[Pair], int]:
        """(pairs, total_pages). Accepts the [TS] envelope {success, data: {data: [...]}} as well."""
        m = "pairs_page"
        d = _object(body, m)
        if isinstance(d.get("data"), dict):  # [TS] getPaginatedTradingPairs: {success, data: {data, total_pages}}
            d = d["data"]
            rows = d.get("data")
        else:
            rows = d.get(self.key(m, "trading_pairs"))
        if not isinstance(rows, list):
            raise WireError(f"{m}: {self.key(m, 'trading_pairs')!r} is not a list")
        pages = d.get(self.key(m, "total_pages"), 1)
        return [self.read_pair(r) for r in rows], pages if isinstance(pages, int) and pages > 0 else 1

    def _levels(self, levels: list[Level]) -> list:
        if self.wire.book_levels == "pairs":
            return [[_text(p), _text(q)] for p, q in levels]
        return [self.obj("book", price=_text(p), quantity=_text(q)) for p, q in levels]

    def _read_levels(self, rows: Any, m: str, name: str) -> tuple[Level, ...]:
        if not isinstance(rows, list):
            raise WireError(f"{m}: {name!r} is not a list")
        out = []
        pk, qk = self.key("book", "price"), self.key("book", "quantity")
        for row in rows:
            if isinstance(row, dict):
                price, qty = _decimal(row.get(pk), m, f"{name}[].{pk}"), _decimal(row.get(qk), m, f"{name}[].{qk}")
            elif isinstance(row, list) and len(row) >= 2:
                price, qty = _decimal(row[0], m, f"{name}[][0]"), _decimal(row[1], m, f"{name}[][1]")
            else:
                raise WireError(f"{m}: a {name!r} level is neither an object nor a [price, quantity] pair")
            if price <= 0 or qty < 0:
                raise WireError(f"{m}: a {name!r} level has a price <= 0 or a negative quantity")
            out.append((price, qty))
        return tuple(out)

    def book_snapshot(self, pair_id: str, bids: list[Level], asks: list[Level], sequence: int, ts_ns: int) -> dict:
        """REST snapshot ([TS] getOrderbook: bids/asks objects with `price`, bestBid, bestAsk;
        `sequence` and `timestamp` UNCONFIRMED)."""
        return self.obj("book", trading_pair_id=pair_id, bids=self._levels(bids), asks=self._levels(asks),
                        best_bid=_text(bids[0][0]) if bids else None, best_ask=_text(asks[0][0]) if asks else None,
                        sequence=sequence, timestamp=iso(ts_ns))

    def read_book_snapshot(self, body: Any, pair_id: str) -> Book:
        m = "book"
        d = _object(body, m)
        return Book("snapshot", pair_id, self._read_levels(d.get(self.key(m, "bids")), m, "bids"),
                    self._read_levels(d.get(self.key(m, "asks")), m, "asks"),
                    _int_or(d, self.key(m, "sequence"), m), _time_or(d, self.key(m, "timestamp"), m))

    # -- orders ---------------------------------------------------------------------------------

    def create_order(self, pair_id: str, side: str, price: Decimal, quantity: Decimal) -> dict:
        """[RS] CreateOrderRequest. No client order id and no post-only flag exist in any source:
        the adapter keeps its own id map and enforces post-only before sending."""
        return self.obj("create_order", trading_pair_id=pair_id, order_type=LIMIT, side=SIDES[side],
                        price=_text(price), quantity=_text(quantity), trading_mode=self.wire.trading_mode,
                        time_in_force=GTC)

    def read_create_order(self, body: Any) -> tuple[str, str, str, Decimal, Decimal, str]:
        """(pair_id, order_type, side, price, quantity, time_in_force) as the venue checks them."""
        m = "create_order"
        d = _object(body, m)
        side = _str(d, self.key(m, "side"), m)
        if side not in _SIDE_BACK:
            raise WireError(f"{m}: side must be one of {sorted(_SIDE_BACK)}")
        tif = _str_or(d, self.key(m, "time_in_force"), m) or GTC
        return (_str(d, self.key(m, "trading_pair_id"), m), _str(d, self.key(m, "order_type"), m), _SIDE_BACK[side],
                _dec(d, self.key(m, "price"), m), _dec(d, self.key(m, "quantity"), m), tif)

    def replace_order(self, price: Decimal, quantity: Decimal) -> dict:
        return self.obj("replace_order", price=_text(price), quantity=_text(quantity))

    def read_replace_order(self, body: Any) -> tuple[Decimal, Decimal]:
        m = "replace_order"
        d = _object(body, m)
        return _dec(d, self.key(m, "price"), m), _dec(d, self.key(m, "quantity"), m)

    def ack(self, a: Ack) -> dict:
        match = None
        if a.order_status is not None:
            match = self.obj("match_result", order_status=a.order_status, total_filled=_text(a.total_filled),
                             average_fill_price=None if a.average_fill_price is None else _text(a.average_fill_price))
        return self.obj("order_ack", order_id=a.order_id, status=SUCCESS if a.ok else FAILED, message=a.message,
                        match_result=match)

    def read_ack(self, body: Any) -> Ack:
        m = "order_ack"
        d = _object(body, m)
        status = _str(d, self.key(m, "status"), m)
        if status not in (SUCCESS, FAILED):
            raise WireError(f"{m}: status is neither {SUCCESS} nor {FAILED}")
        match = d.get(self.key(m, "match_result"))
        order_status, filled, avg = None, Decimal(0), None
        if isinstance(match, dict):
            mr = "match_result"
            order_status = _str_or(match, self.key(mr, "order_status"), mr)
            filled = _dec_or(match, self.key(mr, "total_filled"), mr) or Decimal(0)
            avg = _dec_or(match, self.key(mr, "average_fill_price"), mr)
        order_id = _str_or(d, self.key(m, "order_id"), m) or ""
        if status == SUCCESS and not order_id:
            raise WireError(f"{m}: a successful answer without {self.key(m, 'order_id')!r}")
        return Ack(order_id, status == SUCCESS, _str_or(d, self.key(m, "message"), m) or "", order_status, filled, avg)

    def order(self, o: Order) -> dict:
        return self.obj(
            "order", id=o.id, trading_pair_id=o.pair_id, order_type=LIMIT, side=SIDES[o.side],
            price=_text(o.price), quantity=_text(o.quantity), filled_quantity=_text(o.filled_quantity),
            average_fill_price=None if o.average_fill_price is None else _text(o.average_fill_price),
            status=o.status, time_in_force=GTC, trading_mode=self.wire.trading_mode,
            created_at=None if o.created_ns is None else iso(o.created_ns),
        )

    def read_order(self, body: Any) -> Order:
        m = "order"
        d = _object(body, m)
        side = _str(d, self.key(m, "side"), m)
        if side not in _SIDE_BACK:
            raise WireError(f"{m}: side must be one of {sorted(_SIDE_BACK)}")
        return Order(
            id=_str(d, self.key(m, "id"), m), pair_id=_str_or(d, self.key(m, "trading_pair_id"), m) or "",
            side=_SIDE_BACK[side], price=_dec(d, self.key(m, "price"), m), quantity=_dec(d, self.key(m, "quantity"), m),
            filled_quantity=_dec_or(d, self.key(m, "filled_quantity"), m) or Decimal(0),
            average_fill_price=_dec_or(d, self.key(m, "average_fill_price"), m),
            status=_str(d, self.key(m, "status"), m), created_ns=_time_or(d, self.key(m, "created_at"), m),
        )

    def orders_page(self, orders: list[Order], page: int, total_pages: int) -> dict:
        return self.obj("orders_page", orders=[self.order(o) for o in orders], page=page, total_pages=total_pages)

    def read_orders_page(self, body: Any) -> tuple[list[Order], int]:
        m = "orders_page"
        d = _object(body, m)
        if isinstance(d.get("data"), dict):  # [TS] tolerates the same nested under `data`
            d = d["data"]
        rows = d.get(self.key(m, "orders"))
        if not isinstance(rows, list):
            raise WireError(f"{m}: {self.key(m, 'orders')!r} is not a list")
        pages = d.get(self.key(m, "total_pages"), 1)
        return [self.read_order(r) for r in rows], pages if isinstance(pages, int) and pages > 0 else 1

    def list_orders_query(self, pair_id: str, status: str | None, page: int, page_size: int) -> dict[str, str]:
        """[TS] getPaginatedOrders({status, trading_pair, page, page_size}) (query keys as the SDK names
        them; newest first is assumed, UNCONFIRMED). `status` None lists every status."""
        query = {"trading_pair": pair_id, "page": str(page), "page_size": str(page_size)}
        return {"status": status, **query} if status else query

    def balances(self, rows: list[Balance]) -> dict:
        return self.obj("balances", balances=[self.obj(
            "balance", asset_id=b.asset_id, symbol=b.symbol, token=b.symbol, decimals=b.decimals,
            available_balance=_text(b.available), locked_balance=_text(b.locked), total_balance=_text(b.total),
        ) for b in rows], total_count=len(rows))

    def read_balances(self, body: Any) -> list[Balance]:
        m, b = "balances", "balance"
        d = _object(body, m)
        rows = d.get(self.key(m, "balances"))
        if not isinstance(rows, list):
            raise WireError(f"{m}: {self.key(m, 'balances')!r} is not a list")
        out = []
        for row in rows:
            r = _object(row, b)
            available = _dec(r, self.key(b, "available_balance"), b)
            locked = _dec_or(r, self.key(b, "locked_balance"), b) or Decimal(0)
            out.append(Balance(_str(r, self.key(b, "asset_id"), b), _str_or(r, self.key(b, "symbol"), b) or "",
                               _int_or(r, self.key(b, "decimals"), b) or 0, available, locked,
                               _dec_or(r, self.key(b, "total_balance"), b) or available + locked))
        return out

    def error(self, e: ApiError) -> dict:
        """UNCONFIRMED beyond a top-level `error` key ([3P] `challengeRes.error`)."""
        return self.obj("error", error=e.message, code=e.code, status=e.status)

    def read_error(self, status: int, body: bytes) -> ApiError:
        """Never raises: whatever a failed response holds becomes an ApiError (text cut short)."""
        try:
            d = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            d = None
        if isinstance(d, dict):
            msg = d.get(self.key("error", "error")) or d.get(self.key("error", "message")) or d.get("message")
            code = d.get(self.key("error", "code"))
            return ApiError(status, code if isinstance(code, str) else f"HTTP_{status}",
                            msg[:300] if isinstance(msg, str) else f"HTTP {status}")
        return ApiError(status, f"HTTP_{status}", f"HTTP {status}")

    # -- WebSocket frames (UNCONFIRMED shapes, except the fields named in DEFAULT_CASES) ----------

    def _frame(self, kind: str, channel: str | None = None, **fields: Any) -> dict:
        out: dict[str, Any] = {self.wire.ws_type_key: self._types[kind]}
        if channel is not None:
            out[self.wire.ws_channel_key] = self.wire.ws_channels[channel]
        out.update(self.obj("ws", **fields))
        return out

    def subscribe(self, channel: str, pair_id: str | None = None, *, depth: int | None = None) -> dict:
        """[TS] ws.orderbook(pairId, "SPOT", 1, "BASE", cb), ws.trades(pairId, cb), ws.orders(pairId,
        "SPOT", cb), ws.balances(cb): the frame carrying them is UNCONFIRMED."""
        mode = self.wire.trading_mode if channel in ("orderbook", "orders") else None
        return self._frame("subscribe", channel, trading_pair_id=pair_id, trading_mode=mode, depth=depth)

    def auth_frame(self, **fields: Any) -> dict:
        return self._frame("auth", None, **fields)

    def ack_frame(self, kind: str, channel: str | None = None, **fields: Any) -> dict:
        return self._frame(kind, channel, **fields)

    def book_frame(self, kind: str, pair_id: str, bids: list[Level], asks: list[Level], sequence: int, ts_ns: int,
                   base_decimals: int, quote_decimals: int) -> dict:
        """[TS] OrderbookEvent {tradingPairId, tradingMode, baseDecimals, quoteDecimals}; the
        snapshot-on-subscribe is [TS] ("receives an orderbook snapshot"); levels, `sequence` and
        update semantics (changed levels, absolute quantity, 0 = gone) are UNCONFIRMED."""
        return self._frame(kind, "orderbook", trading_pair_id=pair_id, trading_mode=self.wire.trading_mode,
                           base_decimals=base_decimals, quote_decimals=quote_decimals, sequence=sequence,
                           timestamp=iso(ts_ns), bids=self._levels(bids), asks=self._levels(asks))

    def trade_frame(self, t: Trade, quantity_raw: int) -> dict:
        """[RS] 1.0.3 TradeData "nested under `data` in the public trade event envelope"."""
        data = self.obj("ws_trade", trade_id=t.trade_id, price=_text(t.price), quantity=_text(t.quantity),
                        quantity_raw=str(quantity_raw), maker_side=SIDES[t.maker_side],
                        executed_at=None if t.ts_ns is None else iso(t.ts_ns))
        return {**self._frame("event", "trades", trading_pair_id=t.pair_id, sequence=t.sequence), "data": data}

    def order_frame(self, o: Order) -> dict:
        """[TS] OrderEvent {orderId, eventType, timestamp (a string)}; the rest UNCONFIRMED."""
        fill = None
        if o.fill is not None:
            f = o.fill
            fill = self.obj("ws_fill", trade_id=f.trade_id, price=_text(f.price), quantity=_text(f.quantity),
                            liquidity=f.liquidity.upper(), fee=_text(f.fee))
        return self._frame(
            "event", "orders", order_id=o.id, event_type=self.wire.order_event_types[o.event or "created"],
            timestamp=None if o.ts_ns is None else iso(o.ts_ns), trading_pair_id=o.pair_id, side=SIDES[o.side],
            price=_text(o.price), quantity=_text(o.quantity), filled_quantity=_text(o.filled_quantity),
            average_fill_price=None if o.average_fill_price is None else _text(o.average_fill_price),
            status=o.status, sequence=o.sequence, fill=fill, replaced_by=o.replaced_by,
        )

    def read_frame(self, data: bytes | str) -> tuple[str, str | None, dict]:
        """(kind, channel, object): kind is a key of `ws_types` ("update", "snapshot", "event",
        "error", ...), channel a key of `ws_channels` or None."""
        d = _object(self.loads(data, "websocket frame"), "websocket frame")
        kind = _lookup(self._types_back, d.get(self.wire.ws_type_key))
        if kind is None:
            raise WireError(f"websocket frame: {self.wire.ws_type_key!r} is missing or unknown")
        channel = d.get(self.wire.ws_channel_key)
        return kind, _lookup(self._channels_back, channel), d

    def read_book_frame(self, kind: str, d: dict) -> Book:
        m = "ws"
        return Book(kind, _str(d, self.key(m, "trading_pair_id"), m),
                    self._read_levels(d.get(self.key(m, "bids"), []), m, "bids"),
                    self._read_levels(d.get(self.key(m, "asks"), []), m, "asks"),
                    _int_or(d, self.key(m, "sequence"), m), _time_or(d, self.key(m, "timestamp"), m))

    def read_trade_frame(self, d: dict) -> Trade:
        m, t = "ws", "ws_trade"
        data = _object(d.get("data"), t)
        side = _str(data, self.key(t, "maker_side"), t)
        if side not in _SIDE_BACK:
            raise WireError(f"{t}: makerSide must be one of {sorted(_SIDE_BACK)}")
        price, qty = _dec(data, self.key(t, "price"), t), _dec(data, self.key(t, "quantity"), t)
        if price <= 0 or qty <= 0:
            raise WireError(f"{t}: price and quantity must be > 0")
        return Trade(_str(d, self.key(m, "trading_pair_id"), m), _str(data, self.key(t, "trade_id"), t), price, qty,
                     _SIDE_BACK[side], _time_or(data, self.key(t, "executed_at"), t),
                     _int_or(d, self.key(m, "sequence"), m))

    def read_order_frame(self, d: dict) -> Order:
        m = "ws"
        event = _lookup(self._events_back, d.get(self.key(m, "event_type")))
        if event is None:
            raise WireError(f"{m}: {self.key(m, 'event_type')!r} is missing or unknown")
        side = _str(d, self.key(m, "side"), m)
        if side not in _SIDE_BACK:
            raise WireError(f"{m}: side must be one of {sorted(_SIDE_BACK)}")
        fill = None
        raw_fill = d.get(self.key(m, "fill"))
        if raw_fill is not None:
            f, fm = _object(raw_fill, "ws_fill"), "ws_fill"
            liquidity = (_str(f, self.key(fm, "liquidity"), fm)).lower()
            if liquidity not in ("maker", "taker"):
                raise WireError(f"{fm}: liquidity must be MAKER or TAKER")
            qty = _dec(f, self.key(fm, "quantity"), fm)
            if qty <= 0:
                raise WireError(f"{fm}: quantity must be > 0")
            fill = Fill(_str(f, self.key(fm, "trade_id"), fm), _dec(f, self.key(fm, "price"), fm), qty, liquidity,
                        _dec_or(f, self.key(fm, "fee"), fm) or Decimal(0))
        return Order(
            id=_str(d, self.key(m, "order_id"), m), pair_id=_str_or(d, self.key(m, "trading_pair_id"), m) or "",
            side=_SIDE_BACK[side], price=_dec(d, self.key(m, "price"), m), quantity=_dec(d, self.key(m, "quantity"), m),
            filled_quantity=_dec_or(d, self.key(m, "filled_quantity"), m) or Decimal(0),
            average_fill_price=_dec_or(d, self.key(m, "average_fill_price"), m),
            status=_str_or(d, self.key(m, "status"), m) or "", created_ns=None, event=event, fill=fill,
            replaced_by=_str_or(d, self.key(m, "replaced_by"), m), sequence=_int_or(d, self.key(m, "sequence"), m),
            ts_ns=_time_or(d, self.key(m, "timestamp"), m),
        )

    def read_error_frame(self, d: dict) -> str:
        text = d.get(self.key("ws", "error")) or d.get(self.key("ws", "message"))
        return text[:300] if isinstance(text, str) else "(no reason given)"


# -- request signing ----------------------------------------------------------------------------


def signing_string(method: str, path_with_query: str, timestamp_ms: int, body: bytes) -> bytes:
    """[RS] 0.8.8: METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP_MS\\nSHA256_BODY_HEX, the body hashed as sent
    (the empty string's hash without a body). Whether the method is upper-cased and how the query
    is ordered are UNCONFIRMED: it is upper-cased, and the query signed as sent."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path_with_query}\n{timestamp_ms}\n{digest}".encode()


SESSION_HEADERS = ("X-Monaco-PublicKey", "X-Monaco-Timestamp", "X-Monaco-Signature")  # [TS] buildSessionAuthHeaders


# -- values -------------------------------------------------------------------------------------


def iso(ts_ns: int) -> str:
    """ISO 8601 with microseconds and Z, as [RS] timestamps ("2023-11-13T10:30:00Z")."""
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_NUMERIC = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")


def parse_time(value: Any) -> int:
    """A venue timestamp in ns: ISO 8601, or a Unix number (or numeric string) in seconds or ms
    (told apart by size, as the [TS] mach1 adapter normalises `expiresAt`)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, str):
        if _NUMERIC.fullmatch(value):
            value = Decimal(value)
        else:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("not an ISO 8601 time") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return int(dt.timestamp() * 1_000_000) * 1000
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(value) if not isinstance(value, Decimal) else value
        if not number.is_finite() or number < 0 or number > Decimal(10) ** 14:
            raise ValueError("not a plausible Unix time")
        scale = 1_000_000 if number >= Decimal(10) ** 11 else 1_000_000_000  # ms vs s
        return int(number * scale)
    raise ValueError("not a time")


def _text(value: Decimal) -> str:
    """Decimal strings as the venue writes them: no exponent, no trailing zeros ([TS] "0.01")."""
    text = format(value.normalize(), "f")
    return text


def _bps(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else _text(value)


def _lookup(table: dict[str, str], value: Any) -> str | None:
    return table.get(value) if isinstance(value, str) else None


def _object(value: Any, m: str) -> dict:
    if not isinstance(value, dict):
        raise WireError(f"{m}: expected a JSON object")
    return value


def _str(d: dict, key: str, m: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"{m}: {key!r} must be a non-empty string")
    return value


def _str_or(d: dict, key: str, m: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{m}: {key!r} must be a string")
    return value


def _int(d: dict, key: str, m: str) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**63:
        raise WireError(f"{m}: {key!r} must be a non-negative integer")
    return value


def _int_or(d: dict, key: str, m: str) -> int | None:
    return None if d.get(key) is None else _int(d, key, m)


def _bool_or(d: dict, key: str, m: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise WireError(f"{m}: {key!r} must be a boolean")
    return value


_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")


def _decimal(value: Any, m: str, key: str) -> Decimal:
    """Decimal strings ([TS]: prices, quantities and balances are strings); plain JSON numbers are
    accepted too. Exponents, NaN, infinities and absurd magnitudes are refused."""
    if isinstance(value, bool):
        raise WireError(f"{m}: {key!r} must be a decimal")
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise WireError(f"{m}: {key!r} must be a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise WireError(f"{m}: {key!r} must be a decimal string") from None


def _dec(d: dict, key: str, m: str) -> Decimal:
    return _decimal(d.get(key), m, key)


def _dec_or(d: dict, key: str, m: str) -> Decimal | None:
    return None if d.get(key) is None else _dec(d, key, m)


def _positive(value: Decimal, m: str, key: str) -> Decimal:
    if value <= 0:
        raise WireError(f"{m}: {key!r} must be > 0")
    return value


def _time_or(d: dict, key: str, m: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    try:
        return parse_time(value)
    except (ValueError, ArithmeticError):
        raise WireError(f"{m}: {key!r} is not a time") from None
