"""Execution on Monaco: orders go out over REST, their fills come on the orders channel, and the
venue's REST view settles any doubt.

- **Ids.** Monaco has no client order id ([RS] CreateOrderRequest has none): the create's answer
  names the venue's id, and this client keeps the map (our client order id -> venue order ids) in
  the node's cache, persisted to Redis when configured, so a restarted node knows its orders.
- **Post-only** has no flag on Monaco either: an order priced at or through the venue's opposite
  best is refused here (`due_post_only`) and never sent. If the book moved and the venue fills it
  as a taker anyway, the fill is reported as TAKER, truthfully.
- **Replace.** A cancel and a new order on the same side issued in the same reaction (the
  strategy moving a quote) go out as one replace (the venue answers with the new order's id): one
  round trip instead of two. A new order never waits. A reaction to a book update is whole once
  the update's handling is over (the node's direct dispatch runs it inside), and its commands go
  out then, unpaired cancels too. Any other command batch (a timer's, an order event's, or any
  with NautilusTrader's queued dispatch, which hands cancels and submits over through different
  queues, a fraction of a millisecond apart) keeps its cancels up to `replace_window_ms` for a new
  order to pair with.
- **Nothing counted twice.** Fills are booked per venue order against the venue's cumulative
  filled quantity: a fill event, a REST read of the order or a replayed event only ever adds what
  the venue says is filled beyond what was booked.
- **Doubt.** A create whose answer was lost (a timeout, a 5xx, a dropped connection) may or may
  not have made an order. It stays SUBMITTED until `in_doubt_secs`, then reconciliation looks for
  it among the wallet's orders (same side, price and quantity, created after it was sent) and
  adopts it, or rejects it as lost. A create refused before processing (429, no connection, 4xx)
  is rejected at once with the venue's reason; it is never re-sent.
- **Reconciliation** on start and after every reconnect: our orders' state and fills from REST,
  orders in doubt, orphans (open orders of the wallet this node does not know) cancelled as
  configured, balances. Order events arriving meanwhile are held and applied after it.
- **Stop** cancels every open order of the wallet on the pair and returns once the venue lists
  none (there is no confirmed cancel-all).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.common.enums import LogColor
from nautilus_trader.execution.messages import (
    BatchCancelOrders,
    CancelAllOrders,
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
    SubmitOrder,
    SubmitOrderList,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.enums import AccountType, LiquiditySide, OmsType, OrderSide, OrderType, TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import AccountId, ClientId, ClientOrderId, TradeId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity

from adapters.monaco.config import MonacoExecClientConfig
from adapters.monaco.errors import FateUnknown, Rejected, VenueError
from adapters.monaco.providers import MonacoInstrumentProvider
from adapters.monaco.venue import MonacoVenue
from adapters.monaco.wire import TERMINAL_STATUSES, Ack, Fill, Order, WireError

_CLOCK_SLACK_NS = 5_000_000_000  # a venue order created this long before we sent ours may still be it
_UNCLAIMED_MAX = 2_000
_MEMORY = 20_000
_ORDER_ROUTES = ("create_order", "replace_order", "cancel_order")
_ID_NAMESPACE = uuid.UUID("1c1f1d8e-7c3a-4f3b-9d57-4f4d6a1b2c90")


@dataclass(slots=True)
class _Live:
    """One of our orders that is open or on its way."""

    coid: ClientOrderId
    side: str
    price: Decimal
    quantity: Decimal
    submitted_ns: int
    venue_id: str | None = None
    in_doubt: bool = False
    cancel_wanted: bool = False


@dataclass(slots=True)
class ExecStats:
    places: int = 0
    cancels: int = 0
    replaces: int = 0
    fills: int = 0
    reconciled_fills: int = 0
    rejects: int = 0
    post_only_rejects: int = 0
    cancel_rejects: int = 0
    in_doubt: int = 0
    adopted: int = 0
    lost: int = 0
    orphans_cancelled: int = 0
    reconciliations: int = 0
    tick_to_order_ns: deque = field(default_factory=lambda: deque(maxlen=5_000))


class MonacoExecutionClient(LiveExecutionClient):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, venue: MonacoVenue, msgbus: MessageBus, cache: Cache,
        clock: LiveClock, instrument_provider: MonacoInstrumentProvider, config: MonacoExecClientConfig,
    ) -> None:
        super().__init__(loop=loop, client_id=ClientId(config.venue), venue=instrument_provider.venue,
                         oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
                         instrument_provider=instrument_provider, msgbus=msgbus, cache=cache, clock=clock,
                         config=config)
        self._cfg = config
        self._monaco = venue
        self._provider = instrument_provider
        if venue.owner is None:
            raise VenueError("the execution client needs a wallet key (set key_env or key_file)")
        self.owner = venue.owner
        self._set_account_id(AccountId(f"{config.venue}-{self.owner}"))
        self._codec = venue.codec
        self._live: dict[ClientOrderId, _Live] = {}
        self._by_venue: OrderedDict[str, ClientOrderId] = OrderedDict()  # every venue id we placed, bounded
        self._booked: dict[str, tuple[Decimal, Decimal]] = {}  # venue id -> (quantity, notional) booked
        self._filled: dict[ClientOrderId, Decimal] = {}  # our order -> quantity booked over all its venue ids
        self._trade_ids: OrderedDict[str, None] = OrderedDict()
        # Venue orders we closed (a cancel's or replace's answer) before the venue told us their final
        # filled quantity (a terminal event or a REST read): a fill made while the socket was down
        # would otherwise be lost with them. Reconciliation and the stop read them back.
        self._unsettled: set[str] = set()
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._unclaimed: OrderedDict[str, list[tuple[Order, int]]] = OrderedDict()
        self._held: list[tuple[Order, int]] | None = None  # order events held during a reconciliation
        self._sending: set[ClientOrderId] = set()  # creates whose answer has not come yet
        self._pending: list[SubmitOrder | CancelOrder] = []
        self._flush_handle: asyncio.Handle | None = None
        self._waiting_cancels: list[CancelOrder] = []  # cancels held for a new order to pair with
        self._reaction: list[int] | None = None  # [trigger ns] until its first order request is on the wire
        self._trigger: int | None = None  # the book update whose reaction the pending commands are
        self._reconcile_lock = asyncio.Lock()
        self._balances_due = False
        self._map_key = f"flashmm.monaco.{self.owner}.{config.symbol}.orders"
        self.stats = ExecStats()
        venue.rest.on_sent = self._on_sent

    # -- connection -------------------------------------------------------------------------------

    async def _connect(self) -> None:
        self._held = []  # order events wait until the cached orders are reconciled
        self._monaco.order_listeners.append(self._on_order_event)
        self._monaco.on_reconnect.append(self._reconcile_after_reconnect)
        self._monaco.book_handled.append(self._flush_reaction)
        await self._monaco.start()
        for instrument in self._provider.list_all():
            self._cache.add_instrument(instrument)
        self._load_state()
        await self._reconcile("start", strict=True)  # a node that cannot read its orders must not trade

    async def _disconnect(self) -> None:
        """Leave nothing on the book: cancel every open order of the wallet and wait until the venue
        lists none."""
        try:
            await asyncio.wait_for(self._cancel_everything(), timeout=self._cfg.stop_timeout_secs)
            await asyncio.wait_for(self._settle_closed(), timeout=self._cfg.stop_timeout_secs)
        except (TimeoutError, VenueError, WireError, OSError) as exc:
            self._log.error(f"stop: could not confirm that no order is left open and every fill booked ({exc!r})")
        finally:
            _discard(self._monaco.order_listeners, self._on_order_event)
            _discard(self._monaco.on_reconnect, self._reconcile_after_reconnect)
            _discard(self._monaco.book_handled, self._flush_reaction)
            await self._monaco.stop()

    def _load_state(self) -> None:
        """What an earlier run left: the persisted id map and the cached orders with their fills."""
        saved = self._cache.get(self._map_key)
        try:
            mapping = json.loads(saved.decode()) if saved else {}
        except (ValueError, UnicodeDecodeError):
            self._log.error(f"unreadable order map under {self._map_key}; relying on the cached orders")
            mapping = {}
        for order in self._cache.orders(venue=self.venue):
            coid = order.client_order_id
            for event in order.events:
                if isinstance(event, OrderFilled):
                    self._note_booked(event.venue_order_id.value, coid, event.last_qty.as_decimal(),
                                      event.last_px.as_decimal(), event.trade_id.value)
            if order.venue_order_id is not None:
                self._remember(order.venue_order_id.value, coid)
            if order.is_open or order.is_inflight:
                live = _Live(coid, "buy" if order.side == OrderSide.BUY else "sell", order.price.as_decimal(),
                             order.quantity.as_decimal(), order.ts_init)
                live.venue_id = mapping.get(coid.value) or (order.venue_order_id.value
                                                            if order.venue_order_id else None)
                if live.venue_id:
                    self._remember(live.venue_id, coid)
                self._live[coid] = live
                self._own(live)

    def _save_map(self) -> None:
        mapping = {coid.value: live.venue_id for coid, live in self._live.items() if live.venue_id}
        self._cache.add(self._map_key, json.dumps(mapping).encode())

    def _remember(self, venue_id: str, coid: ClientOrderId) -> None:
        self._by_venue[venue_id] = coid
        if len(self._by_venue) > _MEMORY:
            self._by_venue.popitem(last=False)

    def _own(self, live: _Live) -> None:
        """Our resting size at its level, for the book the data client publishes."""
        left = live.quantity - self._filled.get(live.coid, Decimal(0))
        if left > 0:
            self._monaco.own[live.coid.value] = (live.side, live.price, left)
        else:
            self._monaco.own.pop(live.coid.value, None)

    # -- commands: gathered per reaction --------------------------------------------------------

    def submit_order(self, command: SubmitOrder) -> None:
        self._log.debug(f"Submit {command.order}", LogColor.BLUE)  # audit.jsonl has every order event
        self._gather(command)

    def cancel_order(self, command: CancelOrder) -> None:
        self._log.debug(f"Cancel {command.client_order_id!r}", LogColor.BLUE)
        self._gather(command)

    def _gather(self, command: SubmitOrder | CancelOrder) -> None:
        self._pending.append(command)
        if self._trigger is None:
            self._trigger = self._monaco.handling_book_ns  # set while a book update's reaction runs
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush_reaction(self) -> None:
        """A book update's handling is over, and with direct dispatch so is its reaction: flush now.
        The send tasks then start on the loop's next pass, ahead of the socket's next frame; left to
        `call_soon`, they would start a pass later, behind the next frame's reaction (in a burst of
        buffered updates, each reaction's orders waited for the next one's). Commands gathered
        outside the update's handling (NautilusTrader's queued dispatch) are not its reaction, and
        keep their `call_soon`."""
        if self._flush_handle is not None and self._trigger is not None:
            self._flush_handle.cancel()
            self._flush(whole=True)

    def _flush(self, whole: bool = False) -> None:
        """Pair cancels with new orders of the same side into replaces; send new orders at once and
        cancels once nothing more can come to pair with them: now for a `whole` reaction, otherwise
        after `replace_window_ms`."""
        self._flush_handle = None
        commands, self._pending = self._pending, []
        # A reaction to a book update (not a timer's, an order event's or a snapshot's): its first
        # request on the wire times tick-to-order.
        self._reaction, self._trigger = ([self._trigger] if self._trigger else None), None
        cancels = self._waiting_cancels + [c for c in commands if isinstance(c, CancelOrder)]
        self._waiting_cancels = []
        for submit in (c for c in commands if isinstance(c, SubmitOrder)):
            pair = self._pair(submit, cancels) if self._cfg.use_replace else None
            if pair is not None:
                cancels.remove(pair)
                self.create_task(self._replace_pair(pair, submit), log_msg="monaco_replace")
            else:
                self.create_task(self._submit_order(submit), log_msg="monaco_submit")
        if self._cfg.use_replace and cancels and commands and not whole:
            self._waiting_cancels = cancels
            self._loop.call_later(self._cfg.replace_window_ms / 1000, self._release_cancels)
            return
        for cancel in cancels:
            self.create_task(self._cancel_order(cancel), log_msg="monaco_cancel")

    def _pair(self, submit: SubmitOrder, cancels: list[CancelOrder]) -> CancelOrder | None:
        side = "buy" if submit.order.side == OrderSide.BUY else "sell"
        for cancel in cancels:
            live = self._live.get(cancel.client_order_id)
            if live is not None and live.side == side and live.venue_id and not live.in_doubt:
                return cancel
        return None

    def _release_cancels(self) -> None:
        cancels, self._waiting_cancels = self._waiting_cancels, []
        for cancel in cancels:
            self.create_task(self._cancel_order(cancel), log_msg="monaco_cancel")

    def _on_sent(self, route: str, sent_ns: int) -> None:
        """The first order request of a reaction is on the wire: tick-to-order."""
        if self._reaction is not None and route in _ORDER_ROUTES:
            self.stats.tick_to_order_ns.append(sent_ns - self._reaction[0])
            self._reaction = None

    # -- submit -----------------------------------------------------------------------------------

    def _check(self, order) -> str | None:
        """Why the venue must not see this order, or None."""
        instrument = self._cache.instrument(order.instrument_id)
        if order.order_type != OrderType.LIMIT:
            return f"only LIMIT orders are supported, not {order.type_string()}"
        if order.time_in_force != TimeInForce.GTC:
            return f"time in force {order.tif_string()} is not supported (GTC only)"
        if instrument is None or order.instrument_id != self._provider.instrument_id:
            return f"instrument {order.instrument_id} is not this venue's {self._provider.instrument_id}"
        if order.quantity.as_decimal() < self._provider.min_quantity:
            return f"quantity {order.quantity} is below the pair's minimum {self._provider.min_quantity}"
        return None

    def _crosses(self, side: str, price: Decimal) -> Decimal | None:
        """The venue's opposite best that a post-only order at `price` would take, or None."""
        best = self._monaco.best_ask if side == "buy" else self._monaco.best_bid
        if best is None:
            return None
        return best if (price >= best if side == "buy" else price <= best) else None

    def _begin(self, order) -> _Live | None:
        """Checks, SUBMITTED, and our size registered; None when the order was refused here."""
        problem = self._check(order)
        now = self._clock.timestamp_ns()
        if problem is not None:
            self.generate_order_denied(order.strategy_id, order.instrument_id, order.client_order_id, problem, now)
            return None
        side = "buy" if order.side == OrderSide.BUY else "sell"
        price = order.price.as_decimal()
        self.generate_order_submitted(order.strategy_id, order.instrument_id, order.client_order_id, now)
        if order.is_post_only and (best := self._crosses(side, price)) is not None:
            self.stats.post_only_rejects += 1
            self.generate_order_rejected(order.strategy_id, order.instrument_id, order.client_order_id,
                                         f"post-only {side} at {price} would take the venue's best {best}", now,
                                         due_post_only=True)
            return None
        live = _Live(order.client_order_id, side, price, order.quantity.as_decimal(), now)
        self._live[live.coid] = live
        self._own(live)
        self.stats.places += 1
        return live

    async def _submit_order(self, command: SubmitOrder) -> None:
        live = self._begin(command.order)
        if live is None:
            return
        body = self._codec.create_order(self._provider.pair.id, live.side, live.price, live.quantity)
        self._sending.add(live.coid)
        try:
            ack = self._codec.read_ack(await self._monaco.rest.call("create_order", body=body))
        except (FateUnknown, WireError) as exc:
            self._doubt(live, str(exc))
            return
        except VenueError as exc:  # refused before the venue processed it: 4xx, 429, no connection, auth
            self._reject(live, str(exc))
            return
        finally:
            self._sending.discard(live.coid)
        self._answered(live, ack)

    def _answered(self, live: _Live, ack: Ack) -> None:
        if ack.ok:
            self._accept(live, ack.order_id)
        else:
            self._reject(live, f"the venue refused the order: {ack.message}")

    def _accept(self, live: _Live, venue_id: str) -> None:
        order = self._cache.order(live.coid)
        live.venue_id, live.in_doubt = venue_id, False
        self._remember(venue_id, live.coid)
        self._save_map()
        if order is not None and order.venue_order_id is None:
            self.generate_order_accepted(order.strategy_id, order.instrument_id, live.coid, VenueOrderId(venue_id),
                                         self._clock.timestamp_ns())
        for event, received_ns in self._unclaimed.pop(venue_id, []):
            self._apply_event(event, received_ns)
        if live.cancel_wanted and live.coid in self._live:
            self.create_task(self._cancel_live(live), log_msg="monaco_cancel_on_accept")

    def _reject(self, live: _Live, reason: str) -> None:
        order = self._cache.order(live.coid)
        self._forget(live)
        self.stats.rejects += 1
        self._log.warning(f"{live.coid} rejected: {reason}")
        if order is not None and not order.is_closed:
            self.generate_order_rejected(order.strategy_id, order.instrument_id, live.coid, reason[:500],
                                         self._clock.timestamp_ns())

    def _doubt(self, live: _Live, reason: str) -> None:
        live.in_doubt = True
        self.stats.in_doubt += 1
        self._log.warning(f"{live.coid}: the create's answer was lost ({reason}); looking for it on the venue in "
                          f"{self._cfg.in_doubt_secs:g} s")
        self.create_task(self._resolve_later(), log_msg="monaco_in_doubt")

    async def _resolve_later(self) -> None:
        await asyncio.sleep(self._cfg.in_doubt_secs)
        await self._reconcile("an order in doubt")

    def _forget(self, live: _Live) -> None:
        self._live.pop(live.coid, None)
        self._monaco.own.pop(live.coid.value, None)
        self._save_map()

    async def _submit_order_list(self, command: SubmitOrderList) -> None:
        for order in command.order_list.orders:
            await self._submit_order(SubmitOrder(trader_id=command.trader_id, strategy_id=command.strategy_id,
                                                 order=order, command_id=command.id, ts_init=command.ts_init))

    # -- replace ----------------------------------------------------------------------------------

    async def _replace_pair(self, cancel: CancelOrder, submit: SubmitOrder) -> None:
        """Cancel A and place B as one replace of A's venue order: B takes the new venue id."""
        old = self._live.get(cancel.client_order_id)
        if old is None or not old.venue_id:  # closed (or moved) since the reaction: nothing to replace
            if old is not None:
                await self._cancel_live(old)
            await self._submit_order(submit)
            return
        new = self._begin(submit.order)
        if new is None:
            await self._cancel_live(old)
            return
        self.stats.replaces += 1
        old_id = old.venue_id
        self._monaco.own.pop(old.coid.value, None)
        self._sending.add(new.coid)
        try:
            ack = self._codec.read_ack(await self._monaco.rest.call(
                "replace_order", params={"order_id": old_id}, body=self._codec.replace_order(new.price, new.quantity)))
        except (FateUnknown, WireError) as exc:
            self._doubt(new, str(exc))
            await self._settle_old(old, cancel_if_open=True)
            return
        except VenueError as exc:
            self._reject(new, str(exc))
            await self._settle_old(old, cancel_if_open=True)
            return
        finally:
            self._sending.discard(new.coid)
        if not ack.ok:
            self._reject(new, f"the venue refused the replace: {ack.message}")
            await self._settle_old(old, cancel_if_open=True)
            return
        self._accept(new, ack.order_id)
        self._canceled(old, self._clock.timestamp_ns())

    async def _settle_old(self, old: _Live, cancel_if_open: bool) -> None:
        """After a replace that did not go as planned: read A back; cancel it if still open."""
        try:
            order = await self._read_order(old.venue_id)
        except (VenueError, WireError) as exc:
            self._log.warning(f"{old.coid}: state unknown after a failed replace ({exc}); cancelling it")
            order = None
        if order is not None:
            self._sync(old, order)
        if old.coid in self._live:
            self._own(old)
            if cancel_if_open:
                await self._cancel_live(old)

    async def _modify_order(self, command: ModifyOrder) -> None:
        live = self._live.get(command.client_order_id)
        order = self._cache.order(command.client_order_id)
        now = self._clock.timestamp_ns()
        if live is None or order is None or not live.venue_id:
            self.generate_order_modify_rejected(command.strategy_id, command.instrument_id, command.client_order_id,
                                                command.venue_order_id, "not open on the venue", now)
            return
        price = command.price.as_decimal() if command.price is not None else live.price
        quantity = command.quantity.as_decimal() if command.quantity is not None else live.quantity
        best = self._crosses(live.side, price) if order.is_post_only else None
        if best is not None:
            self.generate_order_modify_rejected(command.strategy_id, command.instrument_id, live.coid,
                                                command.venue_order_id, f"post-only at {price} would take {best}", now)
            return
        try:
            ack = self._codec.read_ack(await self._monaco.rest.call(
                "replace_order", params={"order_id": live.venue_id}, body=self._codec.replace_order(price, quantity)))
        except (VenueError, WireError) as exc:
            ack = Ack("", False, str(exc), None, Decimal(0), None)
        if not ack.ok:
            self.generate_order_modify_rejected(command.strategy_id, command.instrument_id, live.coid,
                                                command.venue_order_id, ack.message[:500], self._clock.timestamp_ns())
            await self._settle_old(live, cancel_if_open=False)
            return
        live.venue_id, live.price, live.quantity = ack.order_id, price, quantity
        self._remember(ack.order_id, live.coid)
        self._save_map()
        self._own(live)
        instrument = self._cache.instrument(order.instrument_id)
        self.generate_order_updated(order.strategy_id, order.instrument_id, live.coid, VenueOrderId(ack.order_id),
                                    Quantity(quantity, instrument.size_precision),
                                    Price(price, instrument.price_precision), None, self._clock.timestamp_ns(),
                                    venue_order_id_modified=True)

    # -- cancel -----------------------------------------------------------------------------------

    async def _cancel_order(self, command: CancelOrder) -> None:
        live = self._live.get(command.client_order_id)
        if live is None:
            return  # closed meanwhile: its terminal event is on its way to the strategy
        await self._cancel_live(live)

    async def _cancel_live(self, live: _Live) -> None:
        if live.venue_id is None:
            live.cancel_wanted = True  # on its way (or in doubt): cancelled once it has an id
            return
        self.stats.cancels += 1
        try:
            await self._monaco.rest.call("cancel_order", params={"order_id": live.venue_id})
        except Rejected as exc:
            # Not open any more (filled, cancelled) or unknown: the venue's view decides.
            try:
                order = await self._read_order(live.venue_id)
            except (VenueError, WireError):
                order = None
            if order is not None:
                self._sync(live, order)
            if live.coid in self._live:
                self._cancel_rejected(live, str(exc))
            return
        except (VenueError, WireError) as exc:
            self._cancel_rejected(live, str(exc))
            return
        self._canceled(live, self._clock.timestamp_ns())

    def _canceled(self, live: _Live, ts: int, settled: bool = False) -> None:
        order = self._cache.order(live.coid)
        self._forget(live)
        if live.venue_id and not settled and live.venue_id not in self._settled:
            self._unsettled.add(live.venue_id)
        if order is not None and not order.is_closed:
            self.generate_order_canceled(order.strategy_id, order.instrument_id, live.coid,
                                         VenueOrderId(live.venue_id) if live.venue_id else None, ts)

    def _cancel_rejected(self, live: _Live, reason: str) -> None:
        order = self._cache.order(live.coid)
        self.stats.cancel_rejects += 1
        if order is not None and not order.is_closed:
            self.generate_order_cancel_rejected(order.strategy_id, order.instrument_id, live.coid,
                                                order.venue_order_id, reason[:500], self._clock.timestamp_ns())

    async def _batch_cancel_orders(self, command: BatchCancelOrders) -> None:
        for cancel in command.cancels:
            await self._cancel_order(cancel)

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        for live in list(self._live.values()):
            await self._cancel_live(live)

    async def _cancel_everything(self) -> None:
        """Cancel every open order of the wallet on this pair until the venue lists none."""
        if self._provider.pair is None:
            return  # never connected: nothing can have been placed
        while True:
            if self._sending:
                await asyncio.sleep(0.05)  # an answer still coming would name an order we must cancel
                continue
            try:
                open_orders = await self._venue_orders()
            except (VenueError, WireError) as exc:
                self._log.warning(f"cannot read our open orders ({exc!r}); asking again")
                await asyncio.sleep(0.5)
                continue
            if not open_orders:
                for live in list(self._live.values()):
                    self._canceled(live, self._clock.timestamp_ns())
                self._log.info("no open orders of ours left on the venue")
                return
            for venue_order in open_orders:
                coid = self._by_venue.get(venue_order.id)
                live = self._live.get(coid) if coid else None
                if live is not None and live.venue_id == venue_order.id:
                    await self._cancel_live(live)
                else:
                    try:
                        await self._monaco.rest.call("cancel_order", params={"order_id": venue_order.id})
                    except Rejected:
                        pass  # closed meanwhile
            await asyncio.sleep(0.1)

    # -- order events -----------------------------------------------------------------------------

    def _on_order_event(self, event: Order, received_ns: int) -> None:
        if self._held is not None:
            self._held.append((event, received_ns))
        else:
            self._apply_event(event, received_ns)

    def _apply_event(self, event: Order, received_ns: int) -> None:
        coid = self._by_venue.get(event.id)
        if coid is None:
            # Not ours yet: the create's answer has not come (or never will: an order in doubt).
            self._unclaimed.setdefault(event.id, []).append((event, received_ns))
            if len(self._unclaimed) > _UNCLAIMED_MAX:
                self._unclaimed.popitem(last=False)
            return
        ts = event.ts_ns or received_ns
        if event.event == "fill" and event.fill is not None:
            self._book(coid, event.id, event.filled_quantity, event.fill, ts)
        elif event.event in ("cancelled", "rejected", "replaced"):
            self._book(coid, event.id, event.filled_quantity, None, ts, event.average_fill_price)
            self._settle(event.id)
            live = self._live.get(coid)
            if live is not None and live.venue_id == event.id:  # not an id a replace moved us away from
                self._canceled(live, ts, settled=True)

    def _sync(self, live: _Live, order: Order) -> None:
        """Bring one of our orders in line with the venue's view of it."""
        ts = self._clock.timestamp_ns()
        self._book(live.coid, order.id, order.filled_quantity, None, ts, order.average_fill_price)
        if order.status in TERMINAL_STATUSES:
            self._settle(order.id)
            if live.coid in self._live and live.venue_id == order.id:
                self._canceled(live, ts, settled=True)

    def _settle(self, venue_id: str) -> None:
        self._unsettled.discard(venue_id)
        self._settled[venue_id] = None
        if len(self._settled) > _MEMORY:
            self._settled.popitem(last=False)

    async def _settle_closed(self) -> None:
        """Read back the orders we closed before the venue reported their final fills."""
        for venue_id in list(self._unsettled):
            coid = self._by_venue.get(venue_id)
            order = await self._read_order(venue_id)
            if order is not None and coid is not None:
                self._book(coid, venue_id, order.filled_quantity, None, self._clock.timestamp_ns(),
                           order.average_fill_price)
            if order is None or order.status in TERMINAL_STATUSES:
                self._settle(venue_id)

    def _note_booked(self, venue_id: str, coid: ClientOrderId, qty: Decimal, price: Decimal, trade_id: str) -> None:
        booked_qty, notional = self._booked.get(venue_id, (Decimal(0), Decimal(0)))
        self._booked[venue_id] = (booked_qty + qty, notional + qty * price)
        self._filled[coid] = self._filled.get(coid, Decimal(0)) + qty
        self._trade_ids[trade_id] = None
        if len(self._trade_ids) > _MEMORY:
            self._trade_ids.popitem(last=False)

    def _book(self, coid: ClientOrderId, venue_id: str, cumulative: Decimal, fill: Fill | None, ts: int,
              average: Decimal | None = None) -> None:
        """Book what the venue says is filled on `venue_id` beyond what was booked, once.

        With a fill (the orders channel) that fill is booked, at most up to the venue's cumulative
        quantity; without one (a REST read, a cancel event) the missing quantity is booked at the
        price that makes our average the venue's, as one reconciled fill."""
        order = self._cache.order(coid)
        instrument = self._cache.instrument(self._provider.instrument_id)
        if order is None or instrument is None:
            return
        booked_qty, notional = self._booked.get(venue_id, (Decimal(0), Decimal(0)))
        room = order.quantity.as_decimal() - self._filled.get(coid, Decimal(0))
        missing = min(cumulative - booked_qty, room)
        if fill is not None:
            if fill.trade_id in self._trade_ids:
                return
            qty = min(fill.quantity, missing) if cumulative > 0 else min(fill.quantity, room)
            price, liquidity, trade_id = fill.price, fill.liquidity, fill.trade_id
            fee = fill.fee * qty / fill.quantity
        else:
            qty = missing
            if qty <= 0 or average is None:
                return
            price = ((average * cumulative - notional) / qty).quantize(Decimal(1).scaleb(-instrument.price_precision),
                                                                        rounding=ROUND_HALF_EVEN)
            liquidity = "maker"  # a resting post-only order, as far as a REST read can tell
            trade_id = str(uuid.uuid5(_ID_NAMESPACE, f"{venue_id}/{cumulative}"))
            fee = qty * price * instrument.maker_fee
            self.stats.reconciled_fills += 1
        if qty <= 0:
            return
        self._note_booked(venue_id, coid, qty, price, trade_id)
        self.stats.fills += 1
        self._balances_soon()
        live = self._live.get(coid)
        self.generate_order_filled(
            order.strategy_id, order.instrument_id, coid, VenueOrderId(venue_id), None, TradeId(trade_id[:36]),
            order.side, OrderType.LIMIT, Quantity(qty, instrument.size_precision),
            Price(price, instrument.price_precision), instrument.quote_currency,
            Money(fee, instrument.quote_currency), LiquiditySide.MAKER if liquidity == "maker" else LiquiditySide.TAKER,
            ts,
        )
        if live is not None:
            if self._filled[coid] >= live.quantity:
                self._forget(live)  # filled: NautilusTrader closes it with this fill
            else:
                self._own(live)

    # -- reconciliation ---------------------------------------------------------------------------

    async def _reconcile_after_reconnect(self) -> None:
        await self._reconcile("a reconnect")

    async def _reconcile(self, reason: str, strict: bool = False) -> None:
        async with self._reconcile_lock:
            if self._held is None:
                self._held = []
            try:
                await self._reconcile_once(reason)
            except (VenueError, WireError) as exc:
                if strict:
                    raise
                self._log.warning(f"reconciliation after {reason} failed ({exc!r}); next reconnect retries")
            finally:
                held, self._held = self._held, None
                for event, received_ns in held:
                    self._apply_event(event, received_ns)
            await self._update_balances()

    async def _reconcile_once(self, reason: str) -> None:
        self.stats.reconciliations += 1
        await self._settle_closed()
        open_now = {o.id: o for o in await self._venue_orders()}
        for live in list(self._live.values()):
            if live.coid in self._sending or live.venue_id is None:
                continue
            order = open_now.get(live.venue_id) or await self._read_order(live.venue_id)
            if order is None:
                self._log.warning(f"{live.coid} ({live.venue_id}) is unknown to the venue: closed")
                self._canceled(live, self._clock.timestamp_ns())
            else:
                self._sync(live, order)
        unclaimed = {vid: o for vid, o in open_now.items() if vid not in self._by_venue}
        doubtful = [live for live in self._live.values() if live.venue_id is None and live.coid not in self._sending]
        if doubtful:
            await self._claim(doubtful, unclaimed)
        if unclaimed and self._cfg.cancel_orphans_on_start:
            self._log.warning(f"{len(unclaimed)} open orders of this wallet that this node does not know: cancelling")
            for venue_id in unclaimed:
                try:
                    await self._monaco.rest.call("cancel_order", params={"order_id": venue_id})
                    self.stats.orphans_cancelled += 1
                except Rejected:
                    pass
        self._save_map()
        self._log.info(f"reconciled with Monaco after {reason}: {len(self._live)} orders working")

    async def _claim(self, doubtful: list[_Live], unclaimed: dict[str, Order]) -> None:
        """Orders whose create went unanswered: adopt the venue order that is theirs, or reject them."""
        recent = None
        for live in sorted(doubtful, key=lambda lv: lv.submitted_ns):
            match = self._match(live, unclaimed.values())
            if match is None:
                if recent is None:
                    rows, _ = self._codec.read_orders_page(await self._monaco.rest.call(
                        "list_orders", query=self._codec.list_orders_query(self._provider.pair.id, None, 1, 100)))
                    recent = [o for o in rows if o.id not in self._by_venue]
                match = self._match(live, recent)
            if match is None:
                self.stats.lost += 1
                self._reject(live, "lost: its create went unanswered and the venue has no such order")
                continue
            unclaimed.pop(match.id, None)
            if recent is not None:
                recent = [o for o in recent if o.id != match.id]
            self.stats.adopted += 1
            self._log.warning(f"{live.coid}: found on the venue as {match.id} ({match.status}): adopted")
            self._accept(live, match.id)
            self._sync(live, match)

    def _match(self, live: _Live, orders) -> Order | None:
        candidates = [o for o in orders if o.side == live.side and o.price == live.price
                      and o.quantity == live.quantity and o.id not in self._by_venue
                      and (o.created_ns is None or o.created_ns >= live.submitted_ns - _CLOCK_SLACK_NS)]
        return min(candidates, key=lambda o: o.created_ns or 0) if candidates else None

    async def _venue_orders(self) -> list[Order]:
        """The wallet's open orders on this pair, every open status, every page."""
        out: list[Order] = []
        for status in self._codec.wire.open_statuses:
            page, pages = 1, 1
            while page <= min(pages, 50):
                rows, pages = self._codec.read_orders_page(await self._monaco.rest.call(
                    "list_orders", query=self._codec.list_orders_query(self._provider.pair.id, status, page, 100)))
                out += [o for o in rows if o.status == status or not o.status]
                page += 1
        return out

    async def _read_order(self, venue_id: str) -> Order | None:
        try:
            return self._codec.read_order(await self._monaco.rest.call("get_order", params={"order_id": venue_id}))
        except Rejected as exc:
            if exc.error.status == 404:
                return None
            raise

    # -- account ----------------------------------------------------------------------------------

    def _balances_soon(self) -> None:
        if not self._balances_due:
            self._balances_due = True
            self._loop.call_later(0.5, lambda: self.create_task(self._update_balances(), log_msg="monaco_balances"))

    async def _update_balances(self) -> None:
        self._balances_due = False
        try:
            rows = self._codec.read_balances(await self._monaco.rest.call("balances"))
        except (VenueError, WireError) as exc:
            self._log.warning(f"balances unavailable ({exc})")
            return
        balances = self._provider.account_balances(rows)
        if balances:
            self.generate_account_state(balances=balances, margins=[], reported=True,
                                        ts_event=self._clock.timestamp_ns())

    # NautilusTrader's own reconciliation: this client reconciled itself in `_connect`, before it;
    # reports would race the events that reconciliation generated (and be counted twice).
    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        return []

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        return None

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        return []

    async def generate_position_status_reports(
        self, command: GeneratePositionStatusReports,
    ) -> list[PositionStatusReport]:
        return []  # spot: holdings are balances, reported through the account state

    def snapshot(self) -> dict:
        """Counters and latency for status pages and benchmarks."""
        s = self.stats
        lat = sorted(s.tick_to_order_ns)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6) if lat else (lambda q: None)
        return {
            "places": s.places, "cancels": s.cancels, "replaces": s.replaces, "fills": s.fills,
            "reconciled_fills": s.reconciled_fills, "rejects": s.rejects, "post_only_rejects": s.post_only_rejects,
            "cancel_rejects": s.cancel_rejects, "in_doubt": s.in_doubt, "adopted": s.adopted, "lost": s.lost,
            "orphans_cancelled": s.orphans_cancelled, "reconciliations": s.reconciliations,
            "working_orders": len(self._live),
            "tick_to_order_ms_p50": pick(0.50), "tick_to_order_ms_p90": pick(0.90),
            "tick_to_order_ms_p99": pick(0.99), "tick_to_order_ms_max": pick(1.0),
            "tick_to_order_samples": len(lat), **self._monaco.stats(),
        }


def _discard(listeners: list, listener) -> None:
    if listener in listeners:
        listeners.remove(listener)
