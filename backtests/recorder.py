"""Records what a run's analytics need, as it happens: the market's top of book and our quotes.

The recorder is an Actor beside the strategy, so the strategy carries no bookkeeping for reports.
It follows the strategy's order events on the message bus and keeps its own view of which of our
orders are live at the venue (accepted and not yet closed), which is what `quotes.parquet` shows.

Every row carries the engine's clock (`ts_init`: when the data or event reached us), the one clock
the analytics compare rows on. The venue's own times (`ts_event`) are data; a venue whose clock
runs ahead of ours (as a capture host's often does) must not reorder fills against the book.
"""

from __future__ import annotations

import sys

import pandas as pd
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import BookType, LiquiditySide, OrderSide
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderSubmitted,
)
from nautilus_trader.model.identifiers import InstrumentId, StrategyId

from backtests.metrics import FILL_COLUMNS, QUOTE_COLUMNS, TOB_COLUMNS
from backtests.rows import RowBuffer
from models.signal_data import SIGNAL_COLUMNS, SignalData

_ACTIONS = frozenset((OrderSubmitted, OrderPendingCancel, OrderPendingUpdate))  # each a place, cancel or modify sent
_RECORDED = frozenset((OrderAccepted, OrderFilled, OrderCanceled, OrderExpired, OrderRejected, OrderDenied))


class RecorderConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    strategy_id: StrategyId
    # Record the SignalData published on the bus. A backtest that replays a precomputed signal
    # hands the recorder each chunk's rows instead (`record_signals`): one call a chunk rather than
    # one message a book batch.
    signal_data: bool = True


class RunRecorder(Actor):
    def __init__(self, config: RecorderConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.strategy_id = config.strategy_id
        # Compact chunks (backtests/rows.py): a day of tape must not grow memory by the hour.
        self.tob = RowBuffer(TOB_COLUMNS)
        self.fills = RowBuffer(FILL_COLUMNS)
        # ts, bid, bid_qty, ask, ask_qty, n_bids, n_asks (no quote on a side: NaN price)
        self.quotes = RowBuffer(QUOTE_COLUMNS, {"bid": float, "ask": float})
        self.signals = RowBuffer(SIGNAL_COLUMNS)
        self.actions = RowBuffer(["ts"])  # when we sent each place / cancel / modify (each may cost a fee)
        # One row per order, taken when it closes (see `order_row`), so a run can purge closed
        # orders from the cache as it goes and still report every order it sent.
        self.closed_orders = RowBuffer(ORDER_COLUMNS)
        self.live: dict[str, tuple[bool, float, float]] = {}  # coid -> (is_buy, price, leaves)
        self._last_top: tuple[float, float] | None = None
        self._last_quote: tuple | None = None

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, book_type=BookType.L2_MBP)
        self.msgbus.subscribe(topic=f"events.order.{self.strategy_id}", handler=self._on_order_event)
        if self.config.signal_data:
            self.subscribe_data(DataType(SignalData))

    def on_data(self, data) -> None:
        if isinstance(data, SignalData):
            self.signals.append(data.row())

    def record_signals(self, rows: list[tuple]) -> None:
        """Signal rows (`SignalData.row()`), in the order they are published."""
        append = self.signals.append
        for row in rows:
            append(row)

    def on_order_book_deltas(self, deltas) -> None:
        book = self.cache.order_book(self.instrument_id)
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if bid is None or ask is None:
            return
        # Prices only: every analytic reads the touch and the mid, and a size change at the touch
        # (most batches) would be a row that changes nothing but memory on a day-long run.
        top = (float(bid), float(ask))
        if top != self._last_top:
            self._last_top = top
            self.tob.append((deltas.ts_init, *top))

    def _on_order_event(self, event) -> None:
        kind = type(event)
        if kind in _ACTIONS:
            self.actions.append((event.ts_init,))
            return
        if kind not in _RECORDED:
            return  # initialised, updated, triggered...: no row of ours changes
        coid = event.client_order_id.value
        if kind is OrderAccepted:
            order = self.cache.order(event.client_order_id)
            self.live[coid] = (order.side == OrderSide.BUY, float(order.price), float(order.leaves_qty))
        elif kind is OrderFilled:
            self.fills.append((
                event.ts_init, coid, event.venue_order_id.value, event.trade_id.value,
                1 if event.order_side == OrderSide.BUY else -1, float(event.last_px),
                float(event.last_qty), "MAKER" if event.liquidity_side == LiquiditySide.MAKER else "TAKER",
                float(event.commission), event.commission.currency.code,
            ))
            if coid in self.live:
                is_buy, px, leaves = self.live[coid]
                leaves -= float(event.last_qty)
                if leaves > 1e-12:
                    self.live[coid] = (is_buy, px, leaves)
                else:
                    del self.live[coid]
        elif kind is OrderDenied:  # never reached the venue: its row, and no quote changed
            self._closed(event)
            return
        else:  # canceled, expired, rejected
            self.live.pop(coid, None)
        self._record_quote(event.ts_init)
        if kind is not OrderAccepted:
            self._closed(event)

    def _closed(self, event) -> None:
        """The order's row, once: at the event that closed it (a venue may still report on an order
        it already closed, e.g. a fill known only after the cancel)."""
        order = self.cache.order(event.client_order_id)
        if order is not None and order.is_closed and order.last_event.id == event.id:
            self.closed_orders.append(order_row(order))

    def orders(self, cache) -> pd.DataFrame:
        """Every order: those that closed (recorded as they did, then purged from the cache in a
        backtest) and every other order the cache holds (still open, or, on a node restarted from
        its persisted cache, those of the sessions before), one row each, in creation order."""
        closed = self.closed_orders.frame()
        recorded = set(closed["client_order_id"])
        others = pd.DataFrame([order_row(o) for o in cache.orders(strategy_id=self.strategy_id)
                               if o.client_order_id.value not in recorded], columns=ORDER_COLUMNS)
        frames = [f for f in (closed, others) if len(f)]
        if not frames:
            return others
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return rows.sort_values(["ts_init", "client_order_id"], kind="stable").reset_index(drop=True)

    def _record_quote(self, ts: int) -> None:
        """Our best bid and ask (price, size there, order count per side), when they change. One
        pass over our few live orders: this runs on every order event."""
        bid = ask = None
        bid_qty = ask_qty = 0.0
        n_bids = n_asks = 0
        for is_buy, px, q in self.live.values():
            if is_buy:
                n_bids += 1
                if bid is None or px > bid:
                    bid, bid_qty = px, q
                elif px == bid:
                    bid_qty += q
            else:
                n_asks += 1
                if ask is None or px < ask:
                    ask, ask_qty = px, q
                elif px == ask:
                    ask_qty += q
        row = (bid, bid_qty, ask, ask_qty, n_bids, n_asks)
        if row != self._last_quote:
            self._last_quote = row
            self.quotes.append((ts, *row))


ORDER_COLUMNS = ["client_order_id", "venue_order_id", "side", "price", "quantity", "filled_qty", "avg_px",
                 "status", "post_only", "ts_init", "ts_last"]


def order_row(order) -> tuple:
    """An order's row in `orders.parquet` (ORDER_COLUMNS)."""
    return (
        order.client_order_id.value,
        order.venue_order_id.value if order.venue_order_id else None,
        sys.intern(order.side_string()),  # a handful of values over a day's orders: one copy each
        float(order.price),
        float(order.quantity),
        float(order.filled_qty),
        float(order.avg_px) if order.avg_px else None,
        sys.intern(order.status_string()),
        order.is_post_only,
        order.ts_init,
        order.last_event.ts_init,  # on our clock, as every other timestamp of a run
    )
