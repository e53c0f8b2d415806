"""The local Monaco's matching: the localnet's CLOB state machine, a catalog tape as the market,
on a continuous clock.

Monaco matches off-chain as orders arrive ("well under a millisecond"), so there are no blocks:
an order is matched when its request is handled, and the tape's events are applied at their own
times. Matching is `adapters.sei.localnet.clob.Clob` (price-time priority, partial fills, escrowed
balances, a self-trade rule that cancels the resting order), and the market is
`adapters.sei.localnet.replay.TapeReplay`: a background maker holds the tape's book (new size joins
the back of a level, shrinks remove the newest orders first, liquidity we take is used up) and a
background taker replays its trades. Each tape timestamp (a ~400 ms block of a synthetic tape, or a
~100 ms update of a real one) is applied at `start + (ts - first ts) / speed` of wall time, its
trades before its book, as a backtest streams them.

What a Monaco client sees comes out of here as neutral values (`wire.Order`, `wire.Trade`, book
levels) through the `on_*` callbacks; `server` turns them into frames. Accounts are wallet
addresses (the maker and taker are two internal names); amounts follow the pair's decimals.
Every order and fill of a wallet is kept in `records` (and appended to JSON lines when the command
is given a records directory), so a test or an operator can hold the node's files against the
venue's. The local Monaco reports FILLED for a filled order and never the on-chain settlement
states (SETTLED_ON_CHAIN, SETTLED) that follow it on Monaco.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.monaco.wire import Ack, Balance, Fill, Level, Order, Pair, Trade
from adapters.sei.localnet.clob import Clob, ContractError, Market
from adapters.sei.localnet.replay import TapeBlock, TapeReplay
from data.catalog import Tape

MAKER, TAKER = "flashmm-local-maker", "flashmm-local-taker"
_BACKGROUND_BASE = 10**12  # whole base units each background account holds: the tape never runs out
_BACKGROUND_QUOTE = 10**15
_NAMESPACE = uuid.UUID("6f1c2a0e-8a53-4c61-9a9e-1d5c0f6b7a01")


class OrderRefused(Exception):
    """A malformed or impossible order: HTTP 400 with `code` and the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OrderNotFound(Exception):
    pass


@dataclass(slots=True)
class _UserOrder:
    id: str
    clob_id: int
    owner: str
    side: str
    price: Decimal
    quantity: Decimal
    created_ns: int
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    status: str = "SUBMITTED"
    tape_index: int = -1

    def view(self, pair_id: str, **extra: Any) -> Order:
        avg = self.notional / self.filled if self.filled else None
        return Order(self.id, pair_id, self.side, self.price, self.quantity, self.filled, avg, self.status,
                     self.created_ns, **extra)


@dataclass
class ExchangeConfig:
    seed: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    speed: float = 1.0  # tape seconds per wall second
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(5)  # the backtest's default taker fee, 0.0005
    base_decimals: int = 18  # SEI on Sei EVM
    quote_decimals: int = 6  # USDC
    max_open_orders: int = 400
    # The tape's best levels a side the market holds; deeper ones are left out (a real tape's
    # thousand-level book would cost the background maker tens of ms per update).
    tape_depth: int = 50
    funded: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # address -> (base, quote)
    token_contracts: tuple[str, str] = ("", "")  # the pair's base and quote ERC-20s on Sei EVM, if any
    records_dir: Path | None = None


class LocalExchange:
    def __init__(self, tape: Tape, config: ExchangeConfig | None = None) -> None:
        self.config = cfg = config or ExchangeConfig()
        if cfg.speed <= 0:
            raise ValueError(f"speed must be > 0, got {cfg.speed}")
        instrument = tape.instrument
        base, quote = instrument.base_currency.code, instrument.quote_currency.code
        tick = Decimal(1).scaleb(-instrument.price_precision)
        lot = Decimal(1).scaleb(-instrument.size_precision)
        self.market = Market(base_denom=base, quote_denom=quote, base_decimals=cfg.base_decimals,
                             quote_decimals=cfg.quote_decimals, tick_size=tick, lot_size=lot, min_quantity=lot,
                             maker_fee_rate=cfg.maker_fee_bps / 10_000, taker_fee_rate=cfg.taker_fee_bps / 10_000,
                             max_open_orders=cfg.max_open_orders)
        self.clob = Clob(self.market)
        symbol = f"{base}/{quote}"
        self.pair = Pair(
            id=str(uuid.uuid5(_NAMESPACE, f"{cfg.seed}/pair/{symbol}")), symbol=symbol, base_token=base,
            quote_token=quote, base_asset_id=str(uuid.uuid5(_NAMESPACE, f"{cfg.seed}/asset/{base}")),
            quote_asset_id=str(uuid.uuid5(_NAMESPACE, f"{cfg.seed}/asset/{quote}")),
            base_decimals=cfg.base_decimals, quote_decimals=cfg.quote_decimals, tick_size=tick, lot_size=lot,
            min_order_size=lot, max_order_size=Decimal(10) ** 9, maker_fee_bps=cfg.maker_fee_bps,
            taker_fee_bps=cfg.taker_fee_bps, is_active=True, base_token_contract=cfg.token_contracts[0],
            quote_token_contract=cfg.token_contracts[1],
        )
        self.replay = TapeReplay(tape, maker=MAKER, taker=TAKER, start_ns=cfg.start_ns, end_ns=cfg.end_ns)
        self._advance = self.replay.advance
        self._height = 0
        for owner in (MAKER, TAKER):
            self._deposit(owner, Decimal(_BACKGROUND_BASE), Decimal(_BACKGROUND_QUOTE))
        for owner, (b, q) in cfg.funded.items():
            self._deposit(owner.lower(), b, q)
        self.orders: dict[str, _UserOrder] = {}
        self._by_clob: dict[int, _UserOrder] = {}
        self._next_local_id = 0
        self.book_sequence = 0
        self.trade_sequence = 0
        self.order_sequence: dict[str, int] = {}
        self._published: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
        self.records: list[dict[str, Any]] = []
        self._record_files: dict[str, Any] = {}
        if cfg.records_dir is not None:
            cfg.records_dir.mkdir(parents=True, exist_ok=True)
            for name in ("orders", "fills"):
                self._record_files[name] = (cfg.records_dir / f"{name}.jsonl").open("a", encoding="utf-8")
        # The tape: its first block's time is the replay's origin.
        self._next_block: TapeBlock | None = self._read_block()
        self.tape_origin_ns = self._next_block.ts_ns if self._next_block else 0
        self.wall_origin_ns = 0
        self.tape_index = -1  # the last tape block applied
        self.tape_ts: list[int] = []  # tape time of each applied block, by index
        self.tape_done = self._next_block is None
        # Where frames go (set by the server): book changes, public trades, a wallet's order events.
        self.on_book: Callable[[list[Level], list[Level], int, int], None] = lambda bids, asks, seq, ts: None
        self.on_trade: Callable[[Trade, int], None] = lambda trade, raw: None
        self.on_order: Callable[[str, Order], None] = lambda owner, order: None

    # -- the tape ------------------------------------------------------------------------------

    def start_clock(self, now_ns: int | None = None) -> None:
        self.wall_origin_ns = time.time_ns() if now_ns is None else now_ns

    def next_due_ns(self) -> int | None:
        """Wall time the next tape block is due, None once the tape is exhausted."""
        if self._next_block is None:
            return None
        return self.wall_origin_ns + int((self._next_block.ts_ns - self.tape_origin_ns) / self.config.speed)

    def apply_due(self, now_ns: int) -> int:
        """Apply every tape block due by `now_ns`; returns how many."""
        applied = 0
        while self._next_block is not None and self.next_due_ns() <= now_ns:
            block, self._next_block = self._next_block, self._read_block()
            self._apply_block(block, now_ns)
            applied += 1
        if self._next_block is None:
            self.tape_done = True
        return applied

    def _read_block(self) -> TapeBlock | None:
        block = self._advance()
        depth = self.config.tape_depth
        if block is not None and (len(block.bids) > depth or len(block.asks) > depth):
            block = dataclasses.replace(block, bids=block.bids[:depth], asks=block.asks[:depth])
        return block

    def _apply_block(self, block: TapeBlock, now_ns: int) -> None:
        self._height += 1
        self.tape_index = block.index
        self.tape_ts.append(block.ts_ns)
        events = []
        for msg in self.replay.taker_msgs(block, self.clob, self._height):
            events += self.clob.execute(TAKER, msg, self._height, snapshot=False)
        for msg in self.replay.maker_msgs(block, self.clob, self._height):
            events += self.clob.execute(MAKER, msg, self._height, snapshot=False)
        self._publish(events, now_ns)

    # -- accounts ------------------------------------------------------------------------------

    def _deposit(self, owner: str, base: Decimal, quote: Decimal) -> None:
        m = self.market
        funds = [(m.base_denom, int(base.scaleb(m.base_decimals))),
                 (m.quote_denom, int(quote.scaleb(m.quote_decimals)))]
        self._height += 1
        self.clob.execute(owner, {"deposit": {}}, self._height, funds=[f for f in funds if f[1] > 0], snapshot=False)

    def fund(self, owner: str, base: Decimal, quote: Decimal) -> None:
        self._deposit(owner.lower(), base, quote)

    def balances(self, owner: str) -> list[Balance]:
        m, p = self.market, self.pair
        rows = self.clob.query({"balances": {"owner": owner.lower()}}, self._height)["balances"]
        out = []
        for row in rows:
            base = row["denom"] == m.base_denom
            decimals = m.base_decimals if base else m.quote_decimals
            free = Decimal(int(row["free"])).scaleb(-decimals)
            locked = Decimal(int(row["locked"])).scaleb(-decimals)
            out.append(Balance(p.base_asset_id if base else p.quote_asset_id, row["denom"], decimals, free, locked,
                               free + locked))
        return out

    # -- orders --------------------------------------------------------------------------------

    def place(self, owner: str, side: str, price: Decimal, quantity: Decimal, now_ns: int) -> Ack:
        owner = owner.lower()
        self._check(price, quantity)
        self._next_local_id += 1
        local = f"u{self._next_local_id}"
        order_id = str(uuid.uuid5(_NAMESPACE, f"{self.config.seed}/order/{self._next_local_id}"))
        self._height += 1
        try:
            events = self.clob.execute(owner, {"place_order": {
                "client_order_id": local, "side": side, "price": _text(price), "quantity": _text(quantity),
                "post_only": False,
            }}, self._height, snapshot=False)
        except ContractError as e:
            return Ack("", False, f"{e.code.upper()}: {e.message}", None, Decimal(0), None)
        placed_clob_id = next(int(e.get("order_id")) for e in events
                              if e.type == "wasm-placed" and e.get("client_order_id") == local)
        order = _UserOrder(order_id, placed_clob_id, owner, side, price, quantity, now_ns, tape_index=self.tape_index)
        self.orders[order_id] = order
        self._by_clob[placed_clob_id] = order
        self._record("orders", {"event": "created", "order_id": order_id, "owner": owner, "side": side,
                                "price": _text(price), "quantity": _text(quantity), "ts_ns": now_ns,
                                "tape_index": self.tape_index})
        self._emit_order(order, "created", now_ns)
        self._publish(events, now_ns)
        avg = order.notional / order.filled if order.filled else None
        return Ack(order_id, True, "Order created successfully", order.status, order.filled, avg)

    def cancel(self, owner: str, order_id: str, now_ns: int) -> Order:
        order = self._open_order(owner, order_id)
        self._height += 1
        events = self.clob.execute(order.owner, {"cancel_order": {"order_id": str(order.clob_id)}}, self._height,
                                   snapshot=False)
        self._publish(events, now_ns)
        return order.view(self.pair.id)

    def replace(self, owner: str, order_id: str, price: Decimal, quantity: Decimal, now_ns: int) -> Ack:
        """A new order (a new id, [TS] replaceOrder returns it) for the old one's place: the old one
        is cancelled first, so the new one queues at the back."""
        old = self._open_order(owner, order_id)
        self._check(price, quantity)
        self._height += 1
        events = self.clob.execute(old.owner, {"cancel_order": {"order_id": str(old.clob_id)}}, self._height,
                                   snapshot=False)
        self._publish(events, now_ns, replaced={old.clob_id})
        ack = self.place(owner, old.side, price, quantity, now_ns)
        if ack.ok:
            self._emit_order(old, "replaced", now_ns, replaced_by=ack.order_id)
        else:
            self._emit_order(old, "cancelled", now_ns)
        return ack

    def order(self, owner: str, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.owner != owner.lower():
            raise OrderNotFound(order_id)
        return order.view(self.pair.id)

    def orders_of(self, owner: str, status: str | None = None) -> list[Order]:
        """A wallet's orders, newest first, optionally of one status."""
        owner = owner.lower()
        rows = [o for o in self.orders.values() if o.owner == owner and (status is None or o.status == status)]
        return [o.view(self.pair.id) for o in reversed(rows)]

    def _open_order(self, owner: str, order_id: str) -> _UserOrder:
        order = self.orders.get(order_id)
        if order is None or order.owner != owner.lower():
            raise OrderNotFound(order_id)
        if order.status not in ("SUBMITTED", "PARTIALLY_FILLED"):
            raise OrderRefused("ORDER_NOT_OPEN", f"order {order_id} is {order.status}")
        return order

    def _check(self, price: Decimal, quantity: Decimal) -> None:
        m, p = self.market, self.pair
        if price <= 0 or price % m.tick_size:
            raise OrderRefused("INVALID_PRICE", f"price {_text(price)} is not a positive multiple of the tick "
                                                f"{_text(m.tick_size)}")
        if quantity % m.lot_size or quantity < p.min_order_size or (p.max_order_size and quantity > p.max_order_size):
            raise OrderRefused("INVALID_QUANTITY", f"quantity {_text(quantity)} must be a multiple of "
                                                   f"{_text(m.lot_size)} between {_text(p.min_order_size)} and "
                                                   f"{_text(p.max_order_size)}")

    # -- book ----------------------------------------------------------------------------------

    def levels(self, depth: int) -> tuple[list[Level], list[Level]]:
        book = self.clob.query({"book": {"depth": min(depth, 100)}}, self._height)
        return ([(Decimal(lv["price"]), Decimal(lv["quantity"])) for lv in book["bids"]],
                [(Decimal(lv["price"]), Decimal(lv["quantity"])) for lv in book["asks"]])

    # -- events --------------------------------------------------------------------------------

    def _publish(self, events: list, now_ns: int, replaced: set[int] = frozenset()) -> None:
        for event in events:
            kind = event.type
            if kind == "wasm-trade":
                self.trade_sequence += 1
                qty = Decimal(event.get("quantity"))
                maker_side = "sell" if event.get("taker_side") == "buy" else "buy"
                trade = Trade(self.pair.id, str(uuid.uuid5(_NAMESPACE, f"{self.config.seed}/trade/"
                                                                       f"{event.get('trade_id')}")),
                              Decimal(event.get("price")), qty, maker_side, now_ns, self.trade_sequence)
                self.on_trade(trade, int(qty.scaleb(self.market.base_decimals)))
                continue
            order = self._by_clob.get(int(event.get("order_id") or 0))
            if order is None:
                continue  # the background maker's and taker's own orders
            if kind == "wasm-filled":
                self._filled(order, event, now_ns)
            elif kind in ("wasm-cancelled", "wasm-expired"):
                order.status = "CANCELLED"
                self._by_clob.pop(order.clob_id, None)
                self._record("orders", {"event": "cancelled", "order_id": order.id, "owner": order.owner,
                                        "reason": event.get("reason"), "ts_ns": now_ns, "tape_index": self.tape_index})
                if order.clob_id not in replaced:
                    self._emit_order(order, "cancelled", now_ns)
        self._publish_book(now_ns)

    def _filled(self, order: _UserOrder, event, now_ns: int) -> None:
        qty, price = Decimal(event.get("quantity")), Decimal(event.get("price"))
        fee_text = event.get("fee") or "0"
        fee = Decimal(int(fee_text[: len(fee_text) - len(self.market.quote_denom)] or 0)).scaleb(
            -self.market.quote_decimals)
        order.filled += qty
        order.notional += qty * price
        order.status = "FILLED" if order.filled == order.quantity else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._by_clob.pop(order.clob_id, None)
        trade_id = str(uuid.uuid5(_NAMESPACE, f"{self.config.seed}/trade/{event.get('trade_id')}"))
        fill = Fill(trade_id, price, qty, event.get("liquidity"), fee)
        self._record("fills", {"order_id": order.id, "owner": order.owner, "trade_id": trade_id, "side": order.side,
                               "price": _text(price), "quantity": _text(qty), "liquidity": fill.liquidity,
                               "fee": _text(fee), "ts_ns": now_ns, "tape_index": self.tape_index})
        self._emit_order(order, "fill", now_ns, fill=fill)

    def _emit_order(self, order: _UserOrder, event: str, now_ns: int, **extra: Any) -> None:
        seq = self.order_sequence[order.owner] = self.order_sequence.get(order.owner, 0) + 1
        self.on_order(order.owner, order.view(self.pair.id, event=event, sequence=seq, ts_ns=now_ns, **extra))

    def _publish_book(self, now_ns: int) -> None:
        bids, asks = self.levels(100)
        changes = {}
        for side, levels in (("buy", bids), ("sell", asks)):
            new = dict(levels)
            old = self._published[side]
            changed = [(p, q) for p, q in new.items() if old.get(p) != q]
            changed += [(p, Decimal(0)) for p in old if p not in new]
            changes[side] = sorted(changed, reverse=side == "buy")
            self._published[side] = new
        if changes["buy"] or changes["sell"]:
            self.book_sequence += 1
            self.on_book(changes["buy"], changes["sell"], self.book_sequence, now_ns)

    def book_state(self) -> tuple[list[Level], list[Level], int]:
        """The book as last published, best first, with its sequence: a snapshot consistent with
        the updates that follow it."""
        return (sorted(self._published["buy"].items(), reverse=True), sorted(self._published["sell"].items()),
                self.book_sequence)

    # -- records -------------------------------------------------------------------------------

    def _record(self, kind: str, row: dict[str, Any]) -> None:
        self.records.append({"kind": kind, **row})
        f = self._record_files.get(kind)
        if f is not None:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def fills_of(self, owner: str) -> list[dict[str, Any]]:
        owner = owner.lower()
        return [r for r in self.records if r["kind"] == "fills" and r["owner"] == owner]

    def close(self) -> None:
        for f in self._record_files.values():
            f.close()
        self._record_files.clear()


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")
