"""The v1 CLOB contract (CONTRACT.md) as a pure-Python state machine.

The localnet runs this in place of the CosmWasm contract, so FlashMM's venue layer can be tested
against the contract's exact rules rather than a loose mock. Everything is deterministic: the
caller supplies the block height, ids come from counters, and there is no clock or randomness.

Where CONTRACT.md is silent, this implementation chooses, and the localnet's behaviour is defined
by these choices:

- Parsing follows `cw_serde`: unknown fields, wrong JSON types, malformed decimal strings,
  decimals above `cosmwasm_std::Decimal::MAX` and a zero `withdraw.amount` (a zero bank send
  would fail the transaction on chain anyway) are `invalid_message`. A batch is parsed whole
  before any action runs, so no action can fail with `invalid_message` on its own.
- `place_order` checks run in this order, the message first, then the owner's state, then the
  book: `market_halted`, `invalid_client_order_id`, `invalid_price`, `invalid_quantity`,
  `expiry_in_past`, `duplicate_client_order_id`, `too_many_open_orders` (counted before
  matching: an order that would fill at once still needs a slot), `insufficient_balance`,
  `post_only_would_cross`. A post-only order is checked against the best unexpired opposite order
  of any owner, the sender's own included.
- Settlement needs more than the reserve in rare cases: a buy's reserve is recomputed on its
  remaining quantity after each fill, and the per-fill ceilings of price and fee (or a maker fee
  above the taker fee the reserve assumes) can exceed what that releases by a few atomic units.
  The shortfall is taken from the payer's free quote balance; whatever that cannot cover is
  forgiven, fee first, because the debt is the contract's own rounding and must never make a
  balance negative or undo a fill. The buyer always pays at least `floor(n)`, which is what the
  seller receives, so forgiving never breaks conservation. A seller's fee comes out of its
  proceeds the same way. `fee` in `wasm-filled` is the amount actually charged.
- Queries take the height they are run at and apply lazy expiry virtually: expired orders are
  out of `book` and `open_orders`, and `balances` shows their reserves as free, which is what
  the owner's next execute will find after the purge. `balances` always lists the base and the
  quote denom, in that order. `open_orders.limit` defaults to 100; `limit` outside 1–500 and
  `depth` outside 1–100 are `invalid_message`.
- `cancel_order` by `client_order_id` checks the id's format (`invalid_client_order_id`) before
  looking it up. A deposit without funds succeeds and emits nothing; a deposit while halted is
  `market_halted`.
- Events carry no `_contract_address`: wasmd adds it, so the chain layer does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact
from typing import Any

from adapters.sei.events import Event

INTERFACE_VERSION = "1"

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]{1,18})?")
_UINT = re.compile(r"[0-9]+")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UINT64_MAX = 2**64 - 1
_UINT128_MAX = 2**128 - 1
_DECIMAL_MAX = Decimal(f"{_UINT128_MAX}e-18")
# Prices, quantities and rates are bounded by _DECIMAL_MAX with at most 18 fractional digits, so
# every product below fits in 200 digits; trapping Inexact proves settlement never rounds silently.
_EXACT = Context(prec=200, traps=[Inexact])
_DEFAULT_OPEN_ORDERS_LIMIT = 100
_MAX_OPEN_ORDERS_LIMIT = 500
_MAX_BOOK_DEPTH = 100


class ContractError(Exception):
    """A failed execute or query, as the contract reports it (`flashmm_clob: <code>: <detail>`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"flashmm_clob: {code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Market:
    """One contract instance's market. `halted` is not here: it changes while the market lives."""

    base_denom: str
    quote_denom: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    max_batch_actions: int = 64
    max_open_orders: int = 200

    def __post_init__(self) -> None:
        if self.base_denom == self.quote_denom:
            raise ValueError("base and quote denoms must differ")
        if not (0 <= self.base_decimals <= 18 and 0 <= self.quote_decimals <= 18):
            raise ValueError("decimals must be within 0..18")
        if self.tick_size <= 0 or self.lot_size <= 0 or self.min_quantity < 0:
            raise ValueError("tick_size and lot_size must be > 0, min_quantity >= 0")
        # Base moves in whole atomic units, so every valid quantity must be one.
        if _EXACT.remainder(self.lot_size.scaleb(self.base_decimals, _EXACT), Decimal(1)) != 0:
            raise ValueError("lot_size must be a whole number of base atomic units")
        if not all(0 <= r <= 1 for r in (self.maker_fee_rate, self.taker_fee_rate)):
            raise ValueError("fee rates must be within 0..1")
        if self.max_batch_actions < 1 or self.max_open_orders < 1:
            raise ValueError("max_batch_actions and max_open_orders must be >= 1")


@dataclass(slots=True)
class _Order:
    order_id: int
    client_order_id: str
    owner: str
    side: str
    price: Decimal
    quantity: Decimal
    remaining: Decimal
    post_only: bool
    expiry_height: int | None
    placed_height: int

    def expired_at(self, height: int) -> bool:
        return self.expiry_height is not None and height > self.expiry_height


@dataclass(slots=True)
class _State:
    """Everything a failed transaction must leave untouched, so it can be snapshotted whole."""

    orders: dict[int, _Order]  # insertion order is ascending order_id
    free: dict[tuple[str, str], int]
    locked: dict[tuple[str, str], int]
    next_order_id: int = 1
    next_trade_id: int = 1
    fees_collected: int = 0
    rounding_remainder: int = 0


@dataclass(frozen=True, slots=True)
class _Place:
    client_order_id: str
    side: str
    price: Decimal
    quantity: Decimal
    post_only: bool
    expiry_height: int | None


@dataclass(frozen=True, slots=True)
class _Cancel:
    order_id: int | None
    client_order_id: str | None


@dataclass(frozen=True, slots=True)
class _Reduce:
    order_id: int | None
    client_order_id: str | None
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class _CancelAll:
    pass


@dataclass(frozen=True, slots=True)
class _Batch:
    actions: tuple[_Place | _Cancel | _Reduce | _CancelAll, ...]


@dataclass(frozen=True, slots=True)
class _Deposit:
    pass


@dataclass(frozen=True, slots=True)
class _Withdraw:
    denom: str
    amount: int


class Clob:
    """One market's contract state. `halted` is set by whoever administers the localnet."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.halted = False
        self._s = _State(orders={}, free={}, locked={})

    @property
    def fees_collected(self) -> int:
        """Quote atomic units taken as fees; they stay in the contract."""
        return self._s.fees_collected

    @property
    def rounding_remainder(self) -> int:
        """Quote atomic units buyers paid above what sellers received (`ceil(n) - floor(n)`)."""
        return self._s.rounding_remainder

    # -- execute -------------------------------------------------------------------------------

    def execute(
        self, sender: str, msg: Any, height: int, funds: Sequence[tuple[str, int]] = (), *, snapshot: bool = True,
    ) -> list[Event]:
        """Run one `MsgExecuteContract`. `funds` are the attached coins, already validated and
        moved by the chain's bank; on `ContractError` nothing of the transaction is applied.

        `snapshot=False` skips the copy of the state kept for that rollback. It is only for a caller
        that never gives an order an `expiry_height`: purging expired orders is the one mutation
        that can precede a failing check (every other check runs before the first mutation), so
        without expiry a failed execute changes nothing anyway. The local Monaco is such a caller;
        its market is hundreds of orders deep and changes every 100 ms, and the copy cost ~25 ms."""
        cmd = _parse_execute(msg)
        if not snapshot:
            return self._run(sender, cmd, height, tuple(funds))
        snapshot = copy.deepcopy(self._s)
        try:
            return self._run(sender, cmd, height, tuple(funds))
        except ContractError:
            self._s = snapshot
            raise

    def _run(self, sender: str, cmd: Any, height: int, funds: tuple[tuple[str, int], ...]) -> list[Event]:
        if funds and not isinstance(cmd, _Deposit):
            raise ContractError("unexpected_funds", "funds are accepted only by deposit")
        if isinstance(cmd, _Batch) and len(cmd.actions) > self.market.max_batch_actions:
            raise ContractError(
                "batch_too_large", f"{len(cmd.actions)} actions, at most {self.market.max_batch_actions}"
            )
        events = [self._expire(o) for o in list(self._s.orders.values()) if o.owner == sender and o.expired_at(height)]
        if isinstance(cmd, _Batch):
            for index, action in enumerate(cmd.actions):
                try:
                    events += self._action(sender, action, height)
                except ContractError as e:
                    events.append(_rejected(index, action, e.code))
        elif isinstance(cmd, _Deposit):
            events += self._deposit(sender, funds)
        elif isinstance(cmd, _Withdraw):
            events += self._withdraw(sender, cmd)
        else:
            events += self._action(sender, cmd, height)
        return events

    def _action(self, sender: str, action: _Place | _Cancel | _Reduce | _CancelAll, height: int) -> list[Event]:
        """Every check raises before the first mutation: a rejected batch action has no effect."""
        if isinstance(action, _Place):
            return self._place(sender, action, height)
        if isinstance(action, _Cancel):
            return [self._cancel(self._find(sender, action), "user")]
        if isinstance(action, _Reduce):
            return [self._reduce(self._find(sender, action), action.quantity)]
        return [self._cancel(o, "cancel_all") for o in self._open(sender)]

    def _place(self, sender: str, p: _Place, height: int) -> list[Event]:
        m = self.market
        if self.halted:
            raise ContractError("market_halted", "the market is halted")
        _check_client_order_id(p.client_order_id)
        if p.price <= 0 or _EXACT.remainder(p.price, m.tick_size) != 0:
            raise ContractError("invalid_price", f"{_fmt(p.price)} is not a positive multiple of {_fmt(m.tick_size)}")
        if _EXACT.remainder(p.quantity, m.lot_size) != 0 or p.quantity < m.min_quantity:
            raise ContractError(
                "invalid_quantity",
                f"{_fmt(p.quantity)}: need a multiple of {_fmt(m.lot_size)}, at least {_fmt(m.min_quantity)}",
            )
        if p.expiry_height is not None and p.expiry_height < height:
            raise ContractError("expiry_in_past", f"expiry_height {p.expiry_height} < height {height}")
        mine = self._open(sender)
        if any(o.client_order_id == p.client_order_id for o in mine):
            raise ContractError("duplicate_client_order_id", p.client_order_id)
        if len(mine) >= m.max_open_orders:
            raise ContractError("too_many_open_orders", f"at most {m.max_open_orders}")
        denom, reserve = self._reserve(p.side, p.price, p.quantity)
        if self._s.free.get((sender, denom), 0) < reserve:
            raise ContractError("insufficient_balance", f"reserve {reserve}{denom}")
        if p.post_only and any(not o.expired_at(height) for o in self._crossing(p.side, p.price)):
            raise ContractError("post_only_would_cross", f"{p.side} at {_fmt(p.price)}")

        order = _Order(
            self._s.next_order_id, p.client_order_id, sender, p.side, p.price, p.quantity,
            p.quantity, p.post_only, p.expiry_height, height,
        )
        self._s.next_order_id += 1
        self._add(self._s.free, sender, denom, -reserve)
        self._add(self._s.locked, sender, denom, reserve)
        attrs = [
            ("order_id", str(order.order_id)), ("client_order_id", order.client_order_id),
            ("owner", sender), ("side", order.side), ("price", _fmt(order.price)),
            ("quantity", _fmt(order.quantity)), ("post_only", "true" if order.post_only else "false"),
        ]
        if order.expiry_height is not None:
            attrs.append(("expiry_height", str(order.expiry_height)))
        events = [_event("placed", attrs)]
        for maker in self._crossing(order.side, order.price):
            if order.remaining == 0:
                break
            if maker.expired_at(height):
                events.append(self._expire(maker))
            elif maker.owner == sender:
                events.append(self._cancel(maker, "self_trade"))
            else:
                events += self._fill(maker, order)
        if order.remaining > 0:
            self._s.orders[order.order_id] = order
        return events

    def _fill(self, maker: _Order, taker: _Order) -> list[Event]:
        m, s = self.market, self._s
        qty = min(maker.remaining, taker.remaining)
        price = maker.price
        n = _EXACT.multiply(_EXACT.multiply(price, qty), Decimal(10) ** m.quote_decimals)
        base_units = int(qty.scaleb(m.base_decimals, _EXACT))
        buyer, seller = (taker, maker) if taker.side == "buy" else (maker, taker)
        rate = {maker.order_id: m.maker_fee_rate, taker.order_id: m.taker_fee_rate}

        _, release = self._reserve("buy", buyer.price, buyer.remaining)
        release -= self._reserve("buy", buyer.price, _EXACT.subtract(buyer.remaining, qty))[1]
        available = release + s.free.get((buyer.owner, m.quote_denom), 0)
        principal = min(_ceil(n), available)
        buyer_fee = min(_ceil(_EXACT.multiply(n, rate[buyer.order_id])), available - principal)
        self._add(s.locked, buyer.owner, m.quote_denom, -release)
        self._add(s.free, buyer.owner, m.quote_denom, release - principal - buyer_fee)
        self._add(s.free, buyer.owner, m.base_denom, base_units)

        proceeds = _floor(n)
        # The reserve released covers floor(price x qty x 10^quote_decimals) at the buyer's limit.
        assert principal >= proceeds
        available = proceeds + s.free.get((seller.owner, m.quote_denom), 0)
        seller_fee = min(_ceil(_EXACT.multiply(n, rate[seller.order_id])), available)
        self._add(s.locked, seller.owner, m.base_denom, -base_units)
        self._add(s.free, seller.owner, m.quote_denom, proceeds - seller_fee)

        s.rounding_remainder += principal - proceeds
        s.fees_collected += buyer_fee + seller_fee
        fee = {buyer.order_id: buyer_fee, seller.order_id: seller_fee}
        maker.remaining = _EXACT.subtract(maker.remaining, qty)
        taker.remaining = _EXACT.subtract(taker.remaining, qty)
        if maker.remaining == 0:
            del s.orders[maker.order_id]
        trade_id = str(s.next_trade_id)
        s.next_trade_id += 1
        trade = _event("trade", [
            ("trade_id", trade_id), ("price", _fmt(price)), ("quantity", _fmt(qty)),
            ("taker_side", taker.side), ("maker_order_id", str(maker.order_id)),
            ("taker_order_id", str(taker.order_id)), ("maker", maker.owner), ("taker", taker.owner),
        ])
        return [trade] + [
            _event("filled", [
                ("order_id", str(o.order_id)), ("client_order_id", o.client_order_id), ("owner", o.owner),
                ("side", o.side), ("liquidity", liquidity), ("trade_id", trade_id), ("price", _fmt(price)),
                ("quantity", _fmt(qty)), ("remaining_quantity", _fmt(o.remaining)),
                ("fee", f"{fee[o.order_id]}{m.quote_denom}"),
            ])
            for o, liquidity in ((maker, "maker"), (taker, "taker"))
        ]

    def _cancel(self, order: _Order, reason: str) -> Event:
        self._release(order)
        return _event("cancelled", [
            ("order_id", str(order.order_id)), ("client_order_id", order.client_order_id),
            ("owner", order.owner), ("side", order.side), ("price", _fmt(order.price)),
            ("remaining_quantity", _fmt(order.remaining)), ("reason", reason),
        ])

    def _expire(self, order: _Order) -> Event:
        self._release(order)
        return _event("expired", [
            ("order_id", str(order.order_id)), ("client_order_id", order.client_order_id),
            ("owner", order.owner), ("side", order.side), ("price", _fmt(order.price)),
            ("remaining_quantity", _fmt(order.remaining)), ("expiry_height", str(order.expiry_height)),
        ])

    def _reduce(self, order: _Order, quantity: Decimal) -> Event:
        """Take `quantity` off a resting order in place: it keeps its time priority."""
        lots = _EXACT.divide(quantity, self.market.lot_size)
        if quantity <= 0 or lots != lots.to_integral_value() or quantity >= order.remaining:
            raise ContractError(
                "invalid_quantity", f"reduce by {_fmt(quantity)}: a positive multiple of the lot "
                f"below the remaining {_fmt(order.remaining)}"
            )
        denom, before = self._reserve(order.side, order.price, order.remaining)
        order.remaining = _EXACT.subtract(order.remaining, quantity)
        _, after = self._reserve(order.side, order.price, order.remaining)
        self._add(self._s.locked, order.owner, denom, after - before)
        self._add(self._s.free, order.owner, denom, before - after)
        return _event("reduced", [
            ("order_id", str(order.order_id)), ("client_order_id", order.client_order_id),
            ("owner", order.owner), ("side", order.side), ("price", _fmt(order.price)),
            ("quantity", _fmt(quantity)), ("remaining_quantity", _fmt(order.remaining)),
        ])

    def _release(self, order: _Order) -> None:
        del self._s.orders[order.order_id]
        denom, amount = self._reserve(order.side, order.price, order.remaining)
        self._add(self._s.locked, order.owner, denom, -amount)
        self._add(self._s.free, order.owner, denom, amount)

    def _find(self, sender: str, c: _Cancel | _Reduce) -> _Order:
        if c.client_order_id is not None:
            _check_client_order_id(c.client_order_id)
            found = next((o for o in self._open(sender) if o.client_order_id == c.client_order_id), None)
        else:
            found = self._s.orders.get(c.order_id)
            if found is not None and found.owner != sender:
                found = None
        if found is None:
            raise ContractError("order_not_found", c.client_order_id or str(c.order_id))
        return found

    def _deposit(self, sender: str, funds: tuple[tuple[str, int], ...]) -> list[Event]:
        if self.halted:
            raise ContractError("market_halted", "the market is halted")
        for denom, _ in funds:
            if denom not in (self.market.base_denom, self.market.quote_denom):
                raise ContractError("invalid_deposit_denom", denom)
        for denom, amount in funds:
            self._add(self._s.free, sender, denom, amount)
        return [_event("deposit", [("owner", sender), ("amount", f"{a}{d}")]) for d, a in funds]

    def _withdraw(self, sender: str, w: _Withdraw) -> list[Event]:
        if self._s.free.get((sender, w.denom), 0) < w.amount:
            raise ContractError("insufficient_balance", f"withdraw {w.amount}{w.denom}")
        self._add(self._s.free, sender, w.denom, -w.amount)
        return [_event("withdraw", [("owner", sender), ("amount", f"{w.amount}{w.denom}")])]

    # -- book and balances ---------------------------------------------------------------------

    def _open(self, owner: str) -> list[_Order]:
        return [o for o in self._s.orders.values() if o.owner == owner]

    def _crossing(self, side: str, limit: Decimal) -> list[_Order]:
        """Resting orders an incoming order at `limit` would reach, in price-time priority. A
        snapshot list, so matching may remove orders from the book while walking it."""
        if side == "buy":
            makers = [o for o in self._s.orders.values() if o.side == "sell" and o.price <= limit]
            return sorted(makers, key=lambda o: (o.price, o.order_id))
        makers = [o for o in self._s.orders.values() if o.side == "buy" and o.price >= limit]
        return sorted(makers, key=lambda o: (-o.price, o.order_id))

    def _reserve(self, side: str, price: Decimal, quantity: Decimal) -> tuple[str, int]:
        """What an order of `quantity` locks. A buy's reserve is a function of its remaining
        quantity, so `locked` always equals the reserves of the open orders."""
        m = self.market
        if side == "sell":
            return m.base_denom, int(quantity.scaleb(m.base_decimals, _EXACT))
        n = _EXACT.multiply(_EXACT.multiply(price, quantity), _EXACT.add(1, m.taker_fee_rate))
        return m.quote_denom, _ceil(n.scaleb(m.quote_decimals, _EXACT))

    @staticmethod
    def _add(book: dict[tuple[str, str], int], owner: str, denom: str, amount: int) -> None:
        value = book.get((owner, denom), 0) + amount
        assert value >= 0, (owner, denom, value)
        book[(owner, denom)] = value

    # -- queries -------------------------------------------------------------------------------

    def query(self, msg: Any, height: int) -> dict[str, Any]:
        """Answer a smart query as of block `height` (lazy expiry applied, nothing mutated)."""
        name, body = _variant(msg)
        if name == "market":
            _fields(body)
            m = self.market
            return {
                "interface_version": INTERFACE_VERSION, "base_denom": m.base_denom,
                "quote_denom": m.quote_denom, "base_decimals": m.base_decimals,
                "quote_decimals": m.quote_decimals, "tick_size": _fmt(m.tick_size),
                "lot_size": _fmt(m.lot_size), "min_quantity": _fmt(m.min_quantity),
                "maker_fee_rate": _fmt(m.maker_fee_rate), "taker_fee_rate": _fmt(m.taker_fee_rate),
                "max_batch_actions": m.max_batch_actions, "max_open_orders": m.max_open_orders,
                "halted": self.halted,
            }
        if name == "book":
            _fields(body, required=("depth",), optional=("exclude_owner",))
            depth = _int(body["depth"], "depth", 1, _MAX_BOOK_DEPTH)
            excluded = _str(body["exclude_owner"], "exclude_owner") if "exclude_owner" in body else None
            live = [o for o in self._s.orders.values() if not o.expired_at(height) and o.owner != excluded]
            return {
                "height": height,
                "bids": _levels([o for o in live if o.side == "buy"], depth, descending=True),
                "asks": _levels([o for o in live if o.side == "sell"], depth, descending=False),
            }
        if name == "open_orders":
            _fields(body, required=("owner",), optional=("start_after", "limit"))
            owner = _str(body["owner"], "owner")
            start_after = _uint(body.get("start_after", "0"), "start_after", _UINT64_MAX)
            limit = _int(body.get("limit", _DEFAULT_OPEN_ORDERS_LIMIT), "limit", 1, _MAX_OPEN_ORDERS_LIMIT)
            orders = [
                o for o in self._open(owner) if o.order_id > start_after and not o.expired_at(height)
            ][:limit]
            return {"orders": [
                {
                    "order_id": str(o.order_id), "client_order_id": o.client_order_id, "side": o.side,
                    "price": _fmt(o.price), "quantity": _fmt(o.quantity),
                    "remaining_quantity": _fmt(o.remaining), "post_only": o.post_only,
                    "expiry_height": o.expiry_height, "placed_height": o.placed_height,
                }
                for o in orders
            ]}
        if name == "balances":
            _fields(body, required=("owner",))
            owner = _str(body["owner"], "owner")
            expired = [self._reserve(o.side, o.price, o.remaining) for o in self._open(owner) if o.expired_at(height)]
            balances = []
            for denom in (self.market.base_denom, self.market.quote_denom):
                released = sum(amount for d, amount in expired if d == denom)
                free = self._s.free.get((owner, denom), 0) + released
                locked = self._s.locked.get((owner, denom), 0) - released
                balances.append({"denom": denom, "free": str(free), "locked": str(locked)})
            return {"balances": balances}
        raise ContractError("invalid_message", f"unknown query {name!r}")


# -- parsing -----------------------------------------------------------------------------------


def _invalid(detail: str) -> ContractError:
    return ContractError("invalid_message", detail)


def _variant(msg: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(msg, dict) or len(msg) != 1:
        raise _invalid("expected an object with exactly one message")
    ((name, body),) = msg.items()
    if not isinstance(body, dict):
        raise _invalid(f"{name}: expected an object")
    return name, body


def _fields(body: dict[str, Any], required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in body]
    unknown = [k for k in body if k not in required and k not in optional]
    if missing or unknown:
        raise _invalid(f"missing {missing}, unknown {unknown}")


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name}: expected a string")
    return value


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{name}: expected an integer in {low}..{high}")
    return value


def _uint(value: Any, name: str, high: int) -> int:
    if not isinstance(value, str) or not _UINT.fullmatch(value) or int(value) > high:
        raise _invalid(f"{name}: expected an unsigned integer string")
    return int(value)


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _invalid(f"{name}: expected a decimal string")
    d = Decimal(value)
    if d > _DECIMAL_MAX:
        raise _invalid(f"{name}: above Decimal::MAX")
    return d


def _parse_execute(msg: Any) -> Any:
    name, body = _variant(msg)
    if name == "batch":
        _fields(body, required=("actions",))
        if not isinstance(body["actions"], list):
            raise _invalid("batch.actions: expected a list")
        return _Batch(tuple(_parse_action(a) for a in body["actions"]))
    if name == "deposit":
        _fields(body)
        return _Deposit()
    if name == "withdraw":
        _fields(body, required=("denom", "amount"))
        amount = _uint(body["amount"], "amount", _UINT128_MAX)
        if amount == 0:
            raise _invalid("withdraw.amount: must be > 0")
        return _Withdraw(_str(body["denom"], "denom"), amount)
    return _parse_action(msg)


def _parse_action(msg: Any) -> _Place | _Cancel | _Reduce | _CancelAll:
    name, body = _variant(msg)
    if name == "place_order":
        _fields(body, required=("client_order_id", "side", "price", "quantity", "post_only"),
                optional=("expiry_height",))
        if body["side"] not in ("buy", "sell"):
            raise _invalid("side: expected buy or sell")
        if not isinstance(body["post_only"], bool):
            raise _invalid("post_only: expected a boolean")
        expiry = body.get("expiry_height")
        return _Place(
            _str(body["client_order_id"], "client_order_id"), body["side"],
            _decimal(body["price"], "price"), _decimal(body["quantity"], "quantity"), body["post_only"],
            None if expiry is None else _int(expiry, "expiry_height", 0, _UINT64_MAX),
        )
    if name == "cancel_order":
        _fields(body, optional=("order_id", "client_order_id"))
        if len(body) != 1:
            raise _invalid("cancel_order: give exactly one of order_id, client_order_id")
        if "order_id" in body:
            return _Cancel(_uint(body["order_id"], "order_id", _UINT64_MAX), None)
        return _Cancel(None, _str(body["client_order_id"], "client_order_id"))
    if name == "reduce_order":
        _fields(body, required=("quantity",), optional=("order_id", "client_order_id"))
        if len(body) != 2:
            raise _invalid("reduce_order: give exactly one of order_id, client_order_id")
        quantity = _decimal(body["quantity"], "quantity")
        if "order_id" in body:
            return _Reduce(_uint(body["order_id"], "order_id", _UINT64_MAX), None, quantity)
        return _Reduce(None, _str(body["client_order_id"], "client_order_id"), quantity)
    if name == "cancel_all":
        _fields(body)
        return _CancelAll()
    raise _invalid(f"unknown message {name!r}")


# -- formatting --------------------------------------------------------------------------------


def _check_client_order_id(client_order_id: str) -> None:
    if not _CLIENT_ORDER_ID.fullmatch(client_order_id):
        raise ContractError("invalid_client_order_id", repr(client_order_id[:70]))


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding=ROUND_CEILING))


def _floor(d: Decimal) -> int:
    return int(d.to_integral_value(rounding=ROUND_FLOOR))


def _fmt(d: Decimal) -> str:
    return format(d.normalize(_EXACT), "f")


def _event(name: str, attributes: list[tuple[str, str]]) -> Event:
    return Event(f"wasm-{name}", tuple(attributes))


def _rejected(index: int, action: _Place | _Cancel | _Reduce | _CancelAll, code: str) -> Event:
    attrs = [("index", str(index))]
    if isinstance(action, _Place):
        attrs += [("action", "place_order"), ("code", code), ("client_order_id", action.client_order_id)]
    elif isinstance(action, (_Cancel, _Reduce)):
        attrs += [("action", "cancel_order" if isinstance(action, _Cancel) else "reduce_order"), ("code", code)]
        if action.client_order_id is not None:
            attrs.append(("client_order_id", action.client_order_id))
        else:
            attrs.append(("order_id", str(action.order_id)))
    else:
        attrs += [("action", "cancel_all"), ("code", code)]
    return _event("rejected", attrs)


def _levels(orders: list[_Order], depth: int, descending: bool) -> list[dict[str, str]]:
    totals: dict[Decimal, Decimal] = {}
    for o in orders:
        totals[o.price] = _EXACT.add(totals.get(o.price, Decimal(0)), o.remaining)
    prices = sorted(totals, reverse=descending)[:depth]
    return [{"price": _fmt(p), "quantity": _fmt(totals[p])} for p in prices]
