"""Execution on the CLOB contract: one transaction per block carrying every cancel and place.

Sei makes a block every ~400 ms and a transaction costs gas, so the client does what a human
desk would: it collects the strategy's commands while it reacts to a block, then sends them as
one `batch` (cancels first, then places, so a cancel-replace frees its reserve before the place
needs it). At most one transaction goes out per block; commands that arrive after it wait for
the next block.

Order state comes only from the contract's events (`wasm-placed`, `-filled`, `-cancelled`,
`-expired`, `-rejected`), never from the act of sending: a tx the node accepted may still fail
or never be included. Every tx carries `timeout_height`, so once the chain is past it an absent
tx is certainly dead: its places are rejected (the strategy quotes again), its cancels are sent
again (a cancel must not be lost), and the account sequence is re-read.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.core.uuid import UUID4
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
from nautilus_trader.model.enums import (
    AccountType,
    LiquiditySide,
    OmsType,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from nautilus_trader.model.identifiers import AccountId, ClientId, ClientOrderId, TradeId, VenueOrderId
from nautilus_trader.model.objects import Price, Quantity

from adapters.sei.config import SeiExecClientConfig
from adapters.sei.events import Event
from adapters.sei.feed import VenueBlock
from adapters.sei.providers import SeiInstrumentProvider
from adapters.sei.rpc import RpcError
from adapters.sei.venue import CODE_SEQUENCE_MISMATCH, SeiVenue, TxFateUnknown, VenueError

_BLOCK_TRIGGERED_NS = 20_000_000  # a batch started this soon after a block is that block's reaction
_CLOSED_MEMORY = 10_000
_REPLAY_OVERLAP_BLOCKS = 5


@dataclass(slots=True)
class _Action:
    kind: str  # place | cancel | cancel_all
    body: dict
    client_order_id: ClientOrderId | None = None
    retries: int = 0


@dataclass(slots=True)
class _Inflight:
    actions: list[_Action]
    timeout_height: int
    sequence: int


@dataclass(slots=True)
class ExecStats:
    txs: int = 0
    txs_failed: int = 0
    txs_expired: int = 0
    tx_rejected_checktx: int = 0
    places: int = 0
    cancels: int = 0
    fills: int = 0
    rejects: int = 0
    cancel_rejects: int = 0
    orphans_cancelled: int = 0
    unbooked_fills: int = 0
    tick_to_tx_ns: deque = field(default_factory=lambda: deque(maxlen=5_000))  # recent txs only


class SeiExecutionClient(LiveExecutionClient):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        venue: SeiVenue,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_provider: SeiInstrumentProvider,
        config: SeiExecClientConfig,
    ) -> None:
        super().__init__(
            loop=loop,
            client_id=ClientId(config.venue),
            venue=instrument_provider.venue,
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            base_currency=None,
            instrument_provider=instrument_provider,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            config=config,
        )
        self._cfg = config
        self._sei = venue
        self._provider = instrument_provider
        owner = venue.transport.owner
        if owner is None:
            raise VenueError("the execution client needs a signing key (set key_env or key_file)")
        self.owner = owner
        self._set_account_id(AccountId(f"{config.venue}-{owner}"))
        self._buffer: list[_Action] = []
        self._inflight: dict[str, _Inflight] = {}
        self._tx_block = -1  # height of the latest block when the last tx was sent
        self._flush_task: asyncio.Task | None = None
        self._batch_started_ns = 0
        self._refresh_balances = False
        # Orders the venue's events closed; the cache learns it only after the engine's queue runs.
        self._closed: OrderedDict[ClientOrderId, None] = OrderedDict()
        self._placed_during_replay: set[ClientOrderId] = set()  # until the cached orders are settled
        self._settled = False
        self._saved_height: int | None = None  # the last block an earlier run processed, if persisted
        # The last block processed, kept in the cache (Redis when configured), so a restarted node
        # replays the blocks it missed. The events of the last few blocks may still have been in
        # the engine's queue at a crash, so it replays from a little earlier and skips what it has.
        self._height_key = f"flashmm.sei.{config.contract}.{owner}.last_height"
        venue.resume_height = self._resume_height
        self.stats = ExecStats()

    # -- connection -----------------------------------------------------------------------------

    async def _connect(self) -> None:
        # Listen before the stream starts: a restarted node first replays the blocks it missed.
        self._sei.add_listener(SeiVenue.EXECUTION, self._on_block)
        await self._sei.start()  # loads the instrument before the first block is handed out
        for instrument in self._provider.list_all():
            self._cache.add_instrument(instrument)
        await asyncio.wait_for(self._caught_up(), timeout=self._cfg.catch_up_timeout_secs)
        await self._settle_cached_orders()
        await self._update_balances()
        if self._cfg.cancel_orphans_on_start:
            orphans = [o for o in await self._open_orders()
                       if self._cache.order(ClientOrderId(o["client_order_id"])) is None]
            if orphans:
                # Orders this node has no record of (a crash, another process with this key) would
                # rest unmanaged: take them down before the strategy starts quoting.
                self._log.warning(f"{len(orphans)} open orders on the venue that this node does not know: "
                                  "cancelling all")
                await asyncio.wait_for(self._cancel_everything(), timeout=self._cfg.stop_timeout_secs)
                self.stats.orphans_cancelled += len(orphans)
                await self._update_balances()

    def _resume_height(self) -> int | None:
        saved = self._cache.get(self._height_key)
        self._saved_height = int(saved.decode()) if saved else None
        return max(1, self._saved_height + 1 - _REPLAY_OVERLAP_BLOCKS) if saved else None

    async def _caught_up(self) -> None:
        """Replayed up to the chain's head, and past the timeout height of any tx the node may have
        sent before it went down: only then is an order the venue never saw certainly lost."""
        await self._sei.caught_up.wait()
        if self._saved_height is None or self._sei.transport.resumed_from is None:
            return  # nothing saved, or saved on another chain
        last_timeout = self._saved_height + _REPLAY_OVERLAP_BLOCKS + self._cfg.timeout_blocks
        while self._sei.last_height <= last_timeout:
            await asyncio.sleep(self._cfg.poll_interval_secs)

    async def _settle_cached_orders(self) -> None:
        """After a restart, every order the cache remembers as open or in flight must be open on
        the venue, or have been closed by the blocks just replayed; anything else is closed here."""
        cached = {o.client_order_id: o
                  for o in self._cache.orders_open(venue=self.venue) + self._cache.orders_inflight(venue=self.venue)
                  if o.client_order_id not in self._closed}
        if not cached:
            self._settled = True
            return
        open_ids = {o["client_order_id"] for o in await self._open_orders()}
        now = self._clock.timestamp_ns()
        for order in cached.values():
            if order.client_order_id.value in open_ids or order.client_order_id in self._closed:
                continue
            self._close(order.client_order_id)
            if order.venue_order_id is None and order.client_order_id not in self._placed_during_replay:
                self._log.warning(f"{order.client_order_id} never reached the venue before the restart")
                self.generate_order_rejected(order.strategy_id, order.instrument_id, order.client_order_id,
                                             "lost in flight across a restart", now)
            else:
                self._log.warning(f"{order.client_order_id} closed on the venue while this node was down")
                self.generate_order_canceled(order.strategy_id, order.instrument_id, order.client_order_id,
                                             order.venue_order_id, now)
        self._settled = True
        self._placed_during_replay.clear()

    async def _disconnect(self) -> None:
        """Leave nothing on the book: cancel all of our orders and wait until the chain agrees."""
        try:
            await asyncio.wait_for(self._cancel_everything(), timeout=self._cfg.stop_timeout_secs)
        except (TimeoutError, VenueError, RpcError, OSError) as exc:
            self._log.error(f"stop: could not confirm that no order is left open ({exc!r})")
        finally:
            self._sei.remove_listener(self._on_block)
            await self._sei.stop()

    async def _cancel_everything(self) -> None:
        """Send `cancel_all` and return once the contract lists no open order of ours.

        `cancel_all` is sent again while orders stay open with nothing in flight (it failed, or
        an order landed after it), still at most one tx per block. With the block stream dead,
        nothing in flight can be seen to land, so the contract's open orders alone decide. A node
        that cannot be reached is asked again (the caller bounds the wait): a stop that comes
        during a reconnect must not leave the quotes resting."""
        self._drop_unsent_places()
        self._buffer.append(_Action("cancel_all", {"cancel_all": {}}))
        while True:
            blind = self._sei.failure is not None
            if not self._buffer and (blind or not self._inflight):
                try:
                    left = await self._open_orders()
                except (TimeoutError, VenueError, RpcError, OSError) as exc:
                    self._log.warning(f"cannot read our open orders ({exc!r}); asking again")
                    left = None
                if left == []:
                    self._log.info("no open orders of ours left on the venue")
                    return
                if left and not self._buffer and (blind or not self._inflight):
                    self._buffer.append(_Action("cancel_all", {"cancel_all": {}}))
            if self._buffer and self._flush_task is None and (blind or self._tx_block < self._sei.last_height):
                self._schedule_flush()
            await asyncio.sleep(self._cfg.poll_interval_secs)

    # -- commands -------------------------------------------------------------------------------

    async def _submit_order(self, command: SubmitOrder) -> None:
        order = command.order
        instrument = self._cache.instrument(order.instrument_id)
        problem = None
        if order.order_type != OrderType.LIMIT:
            problem = f"only LIMIT orders are supported, not {order.type_string()}"
        elif order.time_in_force != TimeInForce.GTC:
            problem = f"time in force {order.tif_string()} is not supported (GTC only; see order_expiry_blocks)"
        elif instrument is None:
            problem = f"instrument {order.instrument_id} is not loaded"
        if problem is not None:
            self.generate_order_denied(order.strategy_id, order.instrument_id, order.client_order_id, problem,
                                       self._clock.timestamp_ns())
            return
        self.generate_order_submitted(order.strategy_id, order.instrument_id, order.client_order_id,
                                      self._clock.timestamp_ns())
        body = {
            "client_order_id": order.client_order_id.value,
            "side": "buy" if order.side == OrderSide.BUY else "sell",
            "price": _decimal(order.price.as_decimal()),
            "quantity": _decimal(order.quantity.as_decimal()),
            "post_only": bool(order.is_post_only),
        }
        if self._cfg.order_expiry_blocks:
            body["expiry_height"] = self._sei.transport.head_height + self._cfg.order_expiry_blocks
        self._queue(_Action("place", {"place_order": body}, order.client_order_id))
        self.stats.places += 1

    async def _submit_order_list(self, command: SubmitOrderList) -> None:
        for order in command.order_list.orders:
            await self._submit_order(SubmitOrder(
                trader_id=command.trader_id, strategy_id=command.strategy_id, order=order,
                command_id=UUID4(), ts_init=command.ts_init,
            ))

    async def _modify_order(self, command: ModifyOrder) -> None:
        self.generate_order_modify_rejected(
            command.strategy_id, command.instrument_id, command.client_order_id, command.venue_order_id,
            "the CLOB contract has no modify: cancel and place instead", self._clock.timestamp_ns(),
        )

    async def _cancel_order(self, command: CancelOrder) -> None:
        coid = command.client_order_id
        for i, action in enumerate(self._buffer):
            if action.kind == "place" and action.client_order_id == coid:
                # Never sent: the venue never knew it, so it is canceled here.
                del self._buffer[i]
                self.generate_order_canceled(command.strategy_id, command.instrument_id, coid, None,
                                             self._clock.timestamp_ns())
                return
        self._queue(_Action("cancel", {"cancel_order": {"client_order_id": coid.value}}, coid))
        self.stats.cancels += 1

    async def _batch_cancel_orders(self, command: BatchCancelOrders) -> None:
        for cancel in command.cancels:
            await self._cancel_order(cancel)

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        self._drop_unsent_places()
        self._queue(_Action("cancel_all", {"cancel_all": {}}))

    def _drop_unsent_places(self) -> None:
        """Places still in the buffer never reached the venue: they are canceled here."""
        now = self._clock.timestamp_ns()
        for action in [a for a in self._buffer if a.kind == "place"]:
            order = self._cache.order(action.client_order_id)
            if order is not None and not self._is_closed(order.client_order_id):
                self._close(order.client_order_id)
                self.generate_order_canceled(order.strategy_id, order.instrument_id, order.client_order_id, None, now)
        self._buffer = [a for a in self._buffer if a.kind != "place"]

    # -- batching -------------------------------------------------------------------------------

    def _queue(self, action: _Action) -> None:
        if not self._buffer:
            self._batch_started_ns = time.time_ns()
        self._buffer.append(action)
        if self._flush_task is None and self._tx_block < self._sei.last_height:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        self._flush_task = self.create_task(self._flush_when_quiet(), log_msg="sei_flush")

    async def _flush_when_quiet(self) -> None:
        """Wait until the strategy has stopped issuing commands for this block, then send."""
        try:
            deadline = time.monotonic() + self._cfg.batch_max_ms / 1000
            seen = -1
            while seen != len(self._buffer) and time.monotonic() < deadline:
                seen = len(self._buffer)
                await asyncio.sleep(self._cfg.batch_idle_ms / 1000)
            await self._send()
        finally:
            self._flush_task = None

    async def _send(self) -> None:
        if not self._buffer:
            return
        limit = self._provider.max_batch_actions
        cancels = [a for a in self._buffer if a.kind != "place"]
        places = [a for a in self._buffer if a.kind == "place"]
        actions = (cancels + places)[:limit]
        self._buffer = (cancels + places)[limit:]
        self._tx_block = self._sei.last_height
        head = self._sei.transport.head_height
        if self._sei.failure is not None:
            # Blind (the stream is dead, typically while the stop's cancel_all goes out): the chain
            # has moved on since the last block seen.
            try:
                head = max(head, await self._sei.transport.read_head_height())
            except (TimeoutError, VenueError, RpcError, OSError, ValueError) as exc:
                self._log.warning(f"chain height unknown ({exc!r}); timeout height from block {head}")
        trigger_ns = self._sei.last_received_ns
        started_ns = self._batch_started_ns
        msg = {"batch": {"actions": [a.body for a in actions]}}
        timeout_height = head + self._cfg.timeout_blocks
        try:
            sub = await self._sei.transport.submit(msg, timeout_height=timeout_height, actions=len(actions))
        except TxFateUnknown as exc:
            # It may be in the mempool: in flight like any tx, until it lands or its timeout height passes.
            self.stats.txs += 1
            self._inflight[exc.hash] = _Inflight(actions, timeout_height, exc.sequence)
            self._log.warning(f"{exc}; in flight until height {timeout_height}")
            return
        except (TimeoutError, VenueError, RpcError, OSError) as exc:
            self._log.warning(f"tx not sent ({exc!r}); retrying next block")
            self._retry_or_fail(actions, f"not sent: {exc!r}")
            return
        self.stats.txs += 1
        if trigger_ns and 0 <= started_ns - trigger_ns < _BLOCK_TRIGGERED_NS:
            self.stats.tick_to_tx_ns.append(sub.sent_ns - trigger_ns)
        if not sub.accepted:
            self.stats.tx_rejected_checktx += 1
            self._log.warning(f"tx refused by the node: code {sub.code} ({sub.codespace}): {sub.log[:200]}")
            self._retry_or_fail(actions, f"tx refused: code {sub.code}: {sub.log[:200]}")
            return
        self._inflight[sub.hash] = _Inflight(actions, timeout_height, sub.sequence)
        self._log.debug(f"tx {sub.hash} seq {sub.sequence}: {len(actions)} actions, timeout height {timeout_height}")

    def _retry_or_fail(self, actions: list[_Action], reason: str) -> None:
        """Cancels are retried (bounded); places are rejected so the strategy decides afresh."""
        now = self._clock.timestamp_ns()
        for action in actions:
            if action.kind != "place" and action.retries < self._cfg.max_retries:
                action.retries += 1
                self._buffer.insert(0, action)
            else:
                self._fail(action, reason, now)

    def _fail(self, action: _Action, reason: str, now: int, due_post_only: bool = False) -> None:
        order = self._cache.order(action.client_order_id) if action.client_order_id else None
        if order is None or self._is_closed(action.client_order_id):
            if action.kind == "cancel_all":
                self._log.error(f"cancel_all failed: {reason}")
            return
        if action.kind == "place":
            self.stats.rejects += 1
            self._close(order.client_order_id)
            self.generate_order_rejected(
                order.strategy_id, order.instrument_id, order.client_order_id, reason, now, due_post_only
            )
        else:
            self.stats.cancel_rejects += 1
            self.generate_order_cancel_rejected(
                order.strategy_id, order.instrument_id, order.client_order_id, order.venue_order_id, reason, now
            )

    # -- blocks ---------------------------------------------------------------------------------

    def _on_block(self, block: VenueBlock) -> None:
        ts = block.time_ns
        for tx in block.txs:
            mine = self._inflight.pop(tx.hash, None)
            if mine is not None and tx.code != 0:
                self.stats.txs_failed += 1
                self._log.warning(f"tx {tx.hash} failed in block {block.height}: code {tx.code}: {tx.log[:200]}")
                self._retry_or_fail(mine.actions, f"tx failed: code {tx.code}: {tx.log[:200]}")
                if tx.code == CODE_SEQUENCE_MISMATCH and tx.codespace == "sdk":
                    self.create_task(self._sei.transport.resync(), log_msg="sei_sequence_resync")
                continue
            for event in tx.events:
                if event.type == "wasm-rejected":
                    if mine is not None:
                        self._on_rejected(event, mine, ts)
                elif event.get("owner") == self.owner:
                    self._on_own_event(event, ts)
        self._expire_inflight(block.height)
        self._cache.add(self._height_key, str(block.height).encode())
        if self._refresh_balances:
            self._refresh_balances = False
            self.create_task(self._update_balances(), log_msg="sei_balances")
        if self._buffer and self._flush_task is None:
            self._schedule_flush()

    def _expire_inflight(self, height: int) -> None:
        dead = [h for h, f in self._inflight.items() if f.timeout_height < height]
        if not dead:
            return
        for tx_hash in dead:
            flight = self._inflight.pop(tx_hash)
            self.stats.txs_expired += 1
            self._log.warning(f"tx {tx_hash} (seq {flight.sequence}) not included by height {flight.timeout_height}")
            self._retry_or_fail(flight.actions, f"tx not included by timeout height {flight.timeout_height}")
        self.create_task(self._sei.transport.resync(), log_msg="sei_sequence_resync")

    def _on_rejected(self, event: Event, flight: _Inflight, ts: int) -> None:
        try:
            action = flight.actions[int(event.get("index") or "")]
        except (ValueError, IndexError):
            self._log.error(f"wasm-rejected with a bad index: {event.attributes!r:.200}")
            return
        code = event.get("code") or "unknown"
        if action.kind == "cancel" and code == "order_not_found" and self._is_closed(action.client_order_id):
            return  # it filled or was cancelled before the cancel ran: nothing to reject
        self._fail(action, code, ts, due_post_only=code == "post_only_would_cross")

    def _is_closed(self, coid: ClientOrderId | None) -> bool:
        if coid is None or coid in self._closed:
            return True
        order = self._cache.order(coid)
        return order is None or order.is_closed

    def _close(self, coid: ClientOrderId) -> None:
        self._closed[coid] = None
        if len(self._closed) > _CLOSED_MEMORY:
            self._closed.popitem(last=False)

    def _on_own_event(self, event: Event, ts: int) -> None:
        coid_text = event.get("client_order_id")
        order = self._cache.order(ClientOrderId(coid_text)) if coid_text else None
        if order is None:
            self._log.warning(f"{event.type} for an order this node does not know: {coid_text!r:.70}")
            return
        coid = order.client_order_id
        venue_order_id = VenueOrderId(event.get("order_id") or "0")
        kind = event.type
        if kind == "wasm-placed":
            if not self._settled:
                self._placed_during_replay.add(coid)
            if coid in self._closed:
                # Given up for lost (a send that failed late), yet it landed: it must not rest unmanaged.
                self._log.warning(f"{coid} landed after it was given up: cancelling it")
                self._queue(_Action("cancel", {"cancel_order": {"order_id": venue_order_id.value}}))
            elif order.venue_order_id is None:
                self.generate_order_accepted(order.strategy_id, order.instrument_id, coid, venue_order_id, ts)
        elif kind == "wasm-filled":
            self._on_fill(order, venue_order_id, event, ts)
            if _is_zero(event.get("remaining_quantity")):
                self._close(coid)
        elif kind in ("wasm-cancelled", "wasm-expired") and not self._is_closed(coid):
            self._close(coid)
            generate = self.generate_order_canceled if kind == "wasm-cancelled" else self.generate_order_expired
            generate(order.strategy_id, order.instrument_id, coid, venue_order_id, ts)

    def _on_fill(self, order, venue_order_id: VenueOrderId, event: Event, ts: int) -> None:
        instrument = self._cache.instrument(order.instrument_id)
        try:
            qty = Quantity(Decimal(event.get("quantity") or ""), instrument.size_precision)
            px = Price(Decimal(event.get("price") or ""), instrument.price_precision)
            fee = self._provider.fee_money(event.get("fee") or "", instrument)
        except (ValueError, ArithmeticError) as exc:
            self._log.error(f"unreadable fill event ({exc}): {event.attributes!r:.300}")
            return
        trade_id = TradeId(event.get("trade_id") or "0")
        if trade_id in order.trade_ids:
            return  # replayed after a restart: the cache already has it
        if order.status == OrderStatus.REJECTED:
            # NautilusTrader cannot fill a rejected order. Rejections are only issued once an order
            # certainly cannot land, so this is a bug: say so loudly, the books now differ from the chain.
            self.stats.unbooked_fills += 1
            self._log.error(f"fill {trade_id} for {order.client_order_id}, which was rejected: not booked; "
                            f"inventory differs from the chain by {event.get('quantity')}")
            return
        liquidity = LiquiditySide.MAKER if event.get("liquidity") == "maker" else LiquiditySide.TAKER
        self.stats.fills += 1
        self._refresh_balances = True
        self.generate_order_filled(
            order.strategy_id, order.instrument_id, order.client_order_id, venue_order_id, None,
            trade_id, order.side, OrderType.LIMIT, qty, px,
            instrument.quote_currency, fee, liquidity, ts,
        )

    # -- account and reconciliation -------------------------------------------------------------

    async def _update_balances(self) -> None:
        answer = await self._sei.transport.query({"balances": {"owner": self.owner}})
        balances = self._provider.account_balances(answer)
        self.generate_account_state(balances=balances, margins=[], reported=True, ts_event=self._clock.timestamp_ns())

    async def _open_orders(self) -> list[dict]:
        orders: list[dict] = []
        start_after = None
        while True:
            query: dict = {"owner": self.owner, "limit": 500}
            if start_after is not None:
                query["start_after"] = start_after
            page = (await self._sei.transport.query({"open_orders": query})).get("orders", [])
            orders.extend(page)
            if len(page) < 500:
                return orders
            start_after = page[-1]["order_id"]

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        now = self._clock.timestamp_ns()
        reports = []
        for instrument in self._provider.list_all():
            if command.instrument_id is not None and command.instrument_id != instrument.id:
                continue
            for o in await self._open_orders():
                qty = Decimal(o["quantity"])
                filled = qty - Decimal(o["remaining_quantity"])
                reports.append(OrderStatusReport(
                    account_id=self.account_id, instrument_id=instrument.id,
                    client_order_id=ClientOrderId(o["client_order_id"]), venue_order_id=VenueOrderId(o["order_id"]),
                    order_side=OrderSide.BUY if o["side"] == "buy" else OrderSide.SELL,
                    order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC,
                    order_status=OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED,
                    quantity=Quantity(qty, instrument.size_precision),
                    filled_qty=Quantity(filled, instrument.size_precision),
                    price=Price(Decimal(o["price"]), instrument.price_precision), post_only=bool(o.get("post_only")),
                    report_id=UUID4(), ts_accepted=now, ts_last=now, ts_init=now,
                ))
        return reports

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        reports = await self.generate_order_status_reports(GenerateOrderStatusReports(
            instrument_id=command.instrument_id, start=None, end=None, open_only=True,
            command_id=UUID4(), ts_init=self._clock.timestamp_ns(),
        ))
        for report in reports:
            if report.client_order_id == command.client_order_id or (
                command.venue_order_id is not None and report.venue_order_id == command.venue_order_id
            ):
                return report
        return None

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        # The contract keeps no fill history; open orders' filled quantities carry what matters.
        return []

    async def generate_position_status_reports(
        self, command: GeneratePositionStatusReports,
    ) -> list[PositionStatusReport]:
        return []  # spot: holdings are balances, reported through the account state

    def snapshot(self) -> dict:
        """Counters and latency for status pages and benchmarks."""
        s = self.stats
        lat = sorted(s.tick_to_tx_ns)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6) if lat else (lambda q: None)
        return {
            "txs": s.txs, "txs_failed": s.txs_failed, "txs_expired": s.txs_expired,
            "txs_refused": s.tx_rejected_checktx, "places": s.places, "cancels": s.cancels, "fills": s.fills,
            "rejects": s.rejects, "cancel_rejects": s.cancel_rejects, "orphans_cancelled": s.orphans_cancelled,
            "unbooked_fills": s.unbooked_fills,
            "inflight": len(self._inflight),
            "tick_to_tx_ms_p50": pick(0.50), "tick_to_tx_ms_p99": pick(0.99), "tick_to_tx_samples": len(lat),
            **self._sei.transport.stats(),
        }


def _is_zero(text: str | None) -> bool:
    try:
        return Decimal(text or "") == 0
    except ArithmeticError:
        return False


def _decimal(value: Decimal) -> str:
    """CONTRACT.md decimals: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


