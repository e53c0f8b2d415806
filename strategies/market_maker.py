"""FlashMM market maker: a quote ladder around a skewed fair value, with its own order tracking.

Working orders are tracked here, from submit to terminal event, instead of asking the cache:
`cache.orders_open()` misses orders still in flight and scans every order ever seen, which both
leaks in-flight orders on cancel-replace and slows down as a session ages.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import pandas as pd
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import BookType, OrderSide, TimeInForce
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPendingCancel,
    OrderRejected,
    OrderSubmitted,
)
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.trading.strategy import Strategy

from models.signal_data import SignalData
from strategies.config import MarketMakerConfig
from strategies.control import HALT_ENDPOINT
from strategies.quoting import (
    BUY,
    SELL,
    Grid,
    Quote,
    Resting,
    Top,
    build_ladder,
    capacities,
    match_ladder,
    signal_fair,
)
from strategies.signal import NEUTRAL, ModelSignal, NoSignal, Signal, SignalSource, clamped, is_current

PENDING, WORKING, CANCELLING = "pending", "working", "cancelling"
# A signal's spread scale must move this much before the ladder is rebuilt for it: a model's
# confidence wobbles every block, and chasing it would cancel and replace orders for nothing.
SPREAD_SCALE_STEP = 0.05
NS = 1_000_000_000


@dataclass
class WorkingOrder:
    side: str
    price_ticks: int
    leaves: float
    ts_submitted: int
    state: str = PENDING
    cancel_on_accept: bool = False


class RollingVol:
    """Mid volatility per sqrt(second) from squared log returns over a time window."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.points: deque[tuple[int, float]] = deque()
        self.sum_sq = 0.0
        self.last: tuple[int, float] | None = None

    def update(self, ts: int, mid: float) -> None:
        if self.last is not None and mid != self.last[1]:
            r = math.log(mid / self.last[1])
            self.points.append((ts, r * r))
            self.sum_sq += r * r
        self.last = (ts, mid)
        while self.points and self.points[0][0] < ts - self.window_ns:
            self.sum_sq -= self.points.popleft()[1]

    def sigma(self, mid: float) -> float:
        """Volatility in price units per sqrt(second)."""
        return math.sqrt(max(self.sum_sq, 0.0) / (self.window_ns / NS)) * mid


class MarketMaker(Strategy):
    """Quotes a ladder on both sides; the same class runs in backtests and on the live node."""

    def __init__(self, config: MarketMakerConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.signal_source: SignalSource = NoSignal()
        self.orders: dict[ClientOrderId, WorkingOrder] = {}
        self.inventory = 0.0  # net base bought since start
        self.cash = 0.0  # quote received minus paid, after fees
        self.action_cost = 0.0  # quote currency per place / cancel (the venue's; see set_action_cost)
        self.costs = 0.0  # what our actions have cost so far
        self.peak_pnl = 0.0
        self.halted = False
        self.halt_reason = ""
        self.winding_down = False
        self.stale = False
        self.book: OrderBook | None = None
        self.last_book_ns = 0
        self.last_quote_fair = 0.0
        self.last_spread_scale = 1.0
        self.last_signal_shape = NEUTRAL.shape()
        self._effective: tuple = (None, NEUTRAL)  # (raw signal, its clamped form)
        self._quiet: tuple | None = None  # (top, raw signal, until): see _needs_requote
        self._top_seen: tuple | None = None  # (book, its update count, its last time) of `_top_seen_top`
        self._top_seen_top: Top | None = None
        self.dirty = True  # the ladder must be rebuilt at the next opportunity
        self.max_age_ns = int(config.max_order_age_secs * NS)
        self.actions: deque[int] = deque()  # timestamps of submits/cancels, for the rate cap
        self.vol = RollingVol(int(config.vol_window_secs * NS))
        self.stats = {"requotes": 0, "rate_limited": 0, "stale_pulls": 0, "post_only_rejects": 0}
        self.resumed: dict | None = None  # what an earlier run left, when the cache is persisted

    # -- lifecycle ------------------------------------------------------------------------------

    def set_signal_source(self, source: SignalSource) -> None:
        self.signal_source = source

    def set_action_cost(self, cost: float) -> None:
        """What each order action (place, cancel) costs on this venue, in the quote currency: gas on
        a chain, nothing on an off-chain book. It counts against PnL, so the kill switch sees it.
        Set by whoever knows the venue (the backtest runner, the node), before the start."""
        self.action_cost = cost

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.cfg.instrument_id)
        if self.instrument is None:
            raise RuntimeError(f"instrument {self.cfg.instrument_id} is not in the cache")
        if self.cfg.requote_interval_ms is None:
            raise RuntimeError("strategy.requote_interval_ms is unset: the runner or node sets it to the venue's "
                               "cadence (resolve the config against its venue profile first)")
        self.grid = Grid(float(self.instrument.price_increment), float(self.instrument.size_increment))
        self.base, self.quote_ccy = self.instrument.base_currency, self.instrument.quote_currency
        self._resume()
        if self.halted:  # set before the start by a node that was halted when it went down
            self._cancel_all(reason="halted")
        self.subscribe_order_book_deltas(self.cfg.instrument_id, book_type=BookType.L2_MBP)
        if self.cfg.use_signal:
            self.signal_source = ModelSignal(self.cfg)
            self.subscribe_data(DataType(SignalData))
        self.clock.set_timer(
            "requote", interval=pd.Timedelta(milliseconds=self.cfg.requote_interval_ms), callback=self._on_timer
        )

    def on_data(self, data) -> None:
        if isinstance(data, SignalData) and isinstance(self.signal_source, ModelSignal):
            self.signal_source.update(data)

    def on_stop(self) -> None:
        self._cancel_all(reason="stop")

    def pull_quotes(self, reason: str) -> None:
        """Stop quoting for good and cancel everything, while still running: an order in flight is
        cancelled when the venue accepts it, which a stopped strategy would never hear of. The
        backtest runner calls it when the tape ends, before it stops the engine."""
        self.winding_down = True
        self._cancel_all(reason=reason)

    # -- market data ----------------------------------------------------------------------------

    def on_order_book_deltas(self, deltas) -> None:
        # One clock: every decision runs on the engine's clock (the receive time, a batch's
        # ts_init). The venue's ts_event is data: it may run ahead of or behind our clock.
        now = self.clock.timestamp_ns()
        self.last_book_ns = now
        self.book = self.cache.order_book(self.cfg.instrument_id)
        top = self._top()
        if top is None:
            return
        self.vol.update(now, top.mid)
        self.stale = False
        if self._needs_requote(top, now):
            self._requote(top)

    def _on_timer(self, event) -> None:
        now = self.clock.timestamp_ns()
        if self.last_book_ns and now - self.last_book_ns > self.cfg.stale_after_secs * NS:
            if not self.stale:
                self.stale = True
                self.stats["stale_pulls"] += 1
                self.log.warning("book is stale: pulling quotes")
                self._cancel_all(reason="stale")
            return
        top = self._top()
        if top is None or self._check_kill_switch(top.mid):
            return
        if self._needs_requote(top, now):
            self._requote(top)

    def _needs_requote(self, top: Top, now: int) -> bool:
        """Requote only when something the ladder depends on changed: an order left or filled,
        the (signal-adjusted) fair value moved beyond the tolerance, the signal's spread scale
        moved by more than SPREAD_SCALE_STEP, it stepped a side back or pulled it, or changed a
        side's size, or an order aged out.

        A "no" holds while its inputs do: the same top of book, the same signal from the source,
        no requote since, and the clock before the first moment an order ages out or the signal
        turns stale or current. The requote timer's ticks between two book batches then cost a
        comparison (`_quiet`)."""
        if self.dirty:
            return True
        raw = self.signal_source.latest(now)
        quiet = self._quiet
        if quiet is not None and quiet[0] is top and quiet[1] is raw and now <= quiet[2]:
            return False
        signal = self._current(raw, now)
        fair = signal_fair(top, self.cfg.fair_value, signal)
        if abs(fair / self.last_quote_fair - 1) * 1e4 > self.cfg.requote_tolerance_bps:
            return True
        if abs(signal.spread_scale - self.last_spread_scale) > SPREAD_SCALE_STEP:
            return True
        if signal.shape() != self.last_signal_shape:
            return True
        until = math.inf  # the last moment this answer holds
        if self.orders:
            oldest = min(o.ts_submitted for o in self.orders.values())
            if now - oldest > self.max_age_ns:
                return True
            until = oldest + self.max_age_ns
        if raw is not None:
            until = min(until, raw.ts_ns - 1 if raw.ts_ns > now else raw.ts_ns + self.cfg.signal_max_age_ms * 1_000_000)
        self._quiet = (top, raw, until)
        return False

    def _signal(self, now: int) -> Signal:
        """The source's latest signal, clamped, while it is current; neutral otherwise."""
        return self._current(self.signal_source.latest(now), now)

    def _current(self, raw: Signal | None, now: int) -> Signal:
        """`raw`, clamped, while it is current; neutral otherwise. Clamping is done once per signal
        (the book batches and timer ticks between two signals only check its age)."""
        if raw is None or not is_current(raw, now, self.cfg.signal_max_age_ms):
            return NEUTRAL
        memo = self._effective
        if memo[0] is not raw:
            cfg = self.cfg
            memo = self._effective = (raw, clamped(raw, cfg.signal_max_shift_bps, cfg.signal_min_spread_scale,
                                                   cfg.signal_max_spread_scale, cfg.signal_max_widen_bps))
        return memo[1]

    def _top(self) -> Top | None:
        """The book's top, read once per book update (a timer tick or a fill between two book
        batches gets the same `Top`)."""
        book = self.book
        if book is None:
            return None
        seen = (book, book.update_count, book.ts_last)
        if seen == self._top_seen:
            return self._top_seen_top
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if bid is None or ask is None:
            top = None
        else:  # compared as floats: comparing two Price objects costs more than the whole Top
            bid_px, ask_px = bid.as_double(), ask.as_double()
            top = (None if bid_px >= ask_px
                   else Top(bid_px, ask_px, book.best_bid_size().as_double(), book.best_ask_size().as_double()))
        self._top_seen, self._top_seen_top = seen, top
        return top

    # -- quoting --------------------------------------------------------------------------------

    def _requote(self, top: Top) -> None:
        if self.halted or self.stale or self.winding_down:
            return
        now = self.clock.timestamp_ns()
        if self._check_kill_switch(top.mid):
            return
        signal = self._signal(now)
        account = self.portfolio.account(self.cfg.instrument_id.venue)
        total_quote = float(account.balance_total(self.quote_ccy)) if account else 0.0
        total_base = float(account.balance_total(self.base)) if account else 0.0
        # Room before counting any order; orders already on their way out still count against
        # the new ladder (they may fill before their cancel lands).
        room = capacities(self.cfg, self.inventory, 0.0, 0.0, top.mid, total_quote, total_base)
        exiting = {BUY: 0.0, SELL: 0.0}
        for order in self.orders.values():
            if order.state == CANCELLING or order.cancel_on_accept:
                exiting[order.side] += order.leaves
        desired = build_ladder(
            self.cfg, self.grid, top, self.inventory, self.vol.sigma(top.mid), signal,
            room[0] - exiting[BUY], room[1] - exiting[SELL],
        )
        self._quiet = None  # what it depends on changes here
        complete = self._reconcile(desired, now, {BUY: room[0], SELL: room[1]})
        self.last_quote_fair = signal_fair(top, self.cfg.fair_value, signal)
        self.last_spread_scale = signal.spread_scale
        self.last_signal_shape = signal.shape()
        self.dirty = not complete
        self.stats["requotes"] += 1

    def _reconcile(self, desired: list[Quote], now: int, room: dict[str, float]) -> bool:
        """Cancel what no longer matches, keep what does (queue priority), submit the rest.

        A new order is sent only if, with every order still live or in flight on its side
        (including those being cancelled now), a full fill of all of them stays within `room`;
        otherwise it waits for the cancels to land and goes out on a later requote.
        Returns whether the whole ladder went out.
        """
        resting, to_cancel = [], []
        for coid, order in self.orders.items():
            if order.state == CANCELLING or order.cancel_on_accept:
                continue
            if now - order.ts_submitted > self.max_age_ns:
                to_cancel.append(coid)
            else:
                resting.append(Resting(coid, order.side, order.price_ticks, self.grid.lots(order.leaves)))
        keep, to_submit = match_ladder(desired, resting, self.cfg.requote_hysteresis_ticks, self.cfg.size_tolerance)
        kept = set(keep)
        to_cancel += [r.key for r in resting if r.key not in kept]
        budget = self._action_budget(now)
        if budget < len(to_cancel) + len(to_submit):
            self.stats["rate_limited"] += 1
        for coid in to_cancel[: max(budget, 0)]:
            self._cancel(coid, now)
        budget -= len(to_cancel)
        exposure = {BUY: 0.0, SELL: 0.0}
        for order in self.orders.values():
            exposure[order.side] += order.leaves
        sent = 0
        for quote in to_submit:
            qty = quote.qty_lots * self.grid.lot
            if budget <= 0:
                break
            if exposure[quote.side] + qty > room[quote.side] + 1e-9:
                continue
            exposure[quote.side] += qty
            budget -= 1
            sent += 1
            self._submit(quote, now)
        return sent == len(to_submit) and budget >= 0

    def _action_budget(self, now: int) -> int:
        while self.actions and self.actions[0] <= now - NS:
            self.actions.popleft()
        return int(self.cfg.max_orders_per_sec) - len(self.actions)

    def _submit(self, quote: Quote, now: int) -> None:
        order = self.order_factory.limit(
            instrument_id=self.cfg.instrument_id,
            order_side=OrderSide.BUY if quote.side == BUY else OrderSide.SELL,
            quantity=self.instrument.make_qty(quote.qty_lots * self.grid.lot),
            price=self.instrument.make_price(quote.price_ticks * self.grid.tick),
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )
        self.orders[order.client_order_id] = WorkingOrder(
            quote.side, quote.price_ticks, quote.qty_lots * self.grid.lot, now
        )
        self.actions.append(now)
        self.costs += self.action_cost
        self.submit_order(order)

    def _cancel(self, coid: ClientOrderId, now: int, count: bool = True) -> None:
        tracked = self.orders.get(coid)
        if tracked is None or tracked.state == CANCELLING:
            return
        if tracked.state == PENDING:
            # The venue has not acknowledged it yet: cancel as soon as it does.
            tracked.cancel_on_accept = True
            return
        order = self.cache.order(coid)
        if order is None or order.is_closed:
            self.orders.pop(coid, None)
            return
        tracked.state = CANCELLING
        if count:
            self.actions.append(now)
        self.costs += self.action_cost  # paid whether or not the rate cap counts it
        self.cancel_order(order)

    def _cancel_all(self, reason: str) -> None:
        """Pull every quote, including in-flight ones; never rate limited (it reduces risk)."""
        if self.orders:
            self.log.info(f"pulling {len(self.orders)} quotes: {reason}")
        now = self.clock.timestamp_ns()
        for coid in list(self.orders):
            self._cancel(coid, now, count=False)

    # -- risk -----------------------------------------------------------------------------------

    def pnl(self, mid: float) -> float:
        return self.cash + self.inventory * mid - self.costs

    def _check_kill_switch(self, mid: float) -> bool:
        pnl = self.pnl(mid)
        self.peak_pnl = max(self.peak_pnl, pnl)
        if pnl <= -self.cfg.max_loss:
            self.halt(f"loss {pnl:.2f} breached max_loss {self.cfg.max_loss}")
        elif self.peak_pnl - pnl >= self.cfg.max_drawdown:
            self.halt(f"drawdown {self.peak_pnl - pnl:.2f} breached max_drawdown {self.cfg.max_drawdown}")
        return self.halted

    def halt(self, reason: str) -> None:
        """Kill switch: cancel everything and ask the trader to set trading HALTED."""
        if self.halted:
            return
        self.halted = True
        self.halt_reason = reason
        self.log.error(f"HALT: {reason}")
        self._cancel_all(reason="halt")
        if HALT_ENDPOINT in self.msgbus.endpoints():
            self.msgbus.send(endpoint=HALT_ENDPOINT, msg=reason)
        else:
            self.log.error(f"no {HALT_ENDPOINT} endpoint registered: only this strategy stops quoting")

    def resume_trading(self) -> None:
        """The operator's resume after a halt: quote again. The drawdown limit counts from the PnL
        at the resume; `max_loss` stays absolute, so resuming beyond it halts again at once."""
        self.halted = False
        self.halt_reason = ""
        self.peak_pnl = float("-inf")
        self.dirty = True

    # -- order events ---------------------------------------------------------------------------

    def on_order_accepted(self, event: OrderAccepted) -> None:
        tracked = self.orders.get(event.client_order_id)
        if tracked is None:
            return
        tracked.state = WORKING
        if tracked.cancel_on_accept:
            self._cancel(event.client_order_id, self.clock.timestamp_ns(), count=False)

    def on_order_filled(self, event: OrderFilled) -> None:
        qty = self._book_fill(event)
        self.dirty = True
        tracked = self.orders.get(event.client_order_id)
        if tracked is not None:
            tracked.leaves = max(tracked.leaves - qty, 0.0)
            if self.grid.lots(tracked.leaves) == 0:
                del self.orders[event.client_order_id]
        if self.book is not None and (top := self._top()) is not None:
            self._check_kill_switch(top.mid)

    def _book_fill(self, event: OrderFilled) -> float:
        """Inventory and cash from one fill; returns its quantity."""
        qty, px = float(event.last_qty), float(event.last_px)
        sign = 1.0 if event.order_side == OrderSide.BUY else -1.0
        self.inventory += sign * qty
        self.cash -= sign * qty * px
        fee = event.commission
        if fee.currency == self.quote_ccy:
            self.cash -= float(fee)
        else:  # charged in the base currency: it leaves our inventory
            self.inventory -= float(fee)
        return qty

    def rebook(self) -> None:
        """Inventory and cash from the fills in the cache's order events, the record of every fill.
        A live node calls it after the stop: NautilusTrader does not hand a stopped strategy its
        events (its issue #2572: a fill between `on_stop`'s cancels and their landing reaches no
        hook), and such a fill reaches the cache, the recorder and the audit trail, not the
        strategy's running totals (seen on the local Monaco: status 11.8 SEI off the venue)."""
        self.inventory, self.cash = 0.0, 0.0
        for order in self.cache.orders(strategy_id=self.id):
            for event in order.events:
                if isinstance(event, OrderFilled):
                    self._book_fill(event)

    def _resume(self) -> None:
        """Pick up where an earlier run of this strategy left off, from a persisted cache (a live
        node restarted after a crash): its fills make the inventory and cash, and its orders still
        working at the venue are tracked again, so they are requoted or cancelled, never orphaned."""
        self.orders = {}
        self.rebook()
        orders = self.cache.orders(strategy_id=self.id)
        actions = 0
        for order in orders:
            actions += sum(isinstance(e, (OrderSubmitted, OrderPendingCancel)) for e in order.events)
            if order.is_open or order.is_inflight:
                side = BUY if order.side == OrderSide.BUY else SELL
                ticks = self.grid.ticks(float(order.price))
                self.orders[order.client_order_id] = WorkingOrder(
                    side, ticks, float(order.leaves_qty), order.ts_last, state=WORKING if order.is_open else PENDING
                )
        self.costs = self.action_cost * actions  # one product: per-order products summed would round differently
        if orders:
            self.resumed = {"inventory": self.inventory, "cash": self.cash, "orders_adopted": len(self.orders)}
            self.log.warning(
                f"resumed from the cache: inventory {self.inventory:+.1f}, cash {self.cash:+.4f}, "
                f"{len(self.orders)} working orders adopted"
            )

    def on_order_cancel_rejected(self, event: OrderCancelRejected) -> None:
        tracked = self.orders.get(event.client_order_id)
        if tracked is not None:
            order = self.cache.order(event.client_order_id)
            if order is None or order.is_closed:
                self._forget(event.client_order_id)
            else:
                tracked.state = WORKING

    def _forget(self, coid: ClientOrderId) -> None:
        if self.orders.pop(coid, None) is not None:
            self.dirty = True

    def on_order_rejected(self, event: OrderRejected) -> None:
        if event.due_post_only:
            self.stats["post_only_rejects"] += 1
        self._forget(event.client_order_id)

    def on_order_denied(self, event: OrderDenied) -> None:
        self._forget(event.client_order_id)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        self._forget(event.client_order_id)

    def on_order_expired(self, event: OrderExpired) -> None:
        self._forget(event.client_order_id)
