"""Queue-aware fills inside NautilusTrader 1.221's BacktestEngine, with no change to strategies.

Two hooks of the pinned engine do the work:

- `QueueFillModule` (a `SimulationModule`) sees every data point before the exchange does. It keeps
  a private copy of the venue's L2 book (a `BookLevels`: a level's size is one lookup, however
  deep the book), follows our live orders' queue positions (`QueueBook`),
  and fills them through `OrderMatchingEngine.fill_order(..., MAKER)` at their own price.
- `QueueFillModel` (a `FillModel`) answers the engine's own limit-order matching for the orders the
  module tracks with an empty book, so the engine never fills them a second time from liquidity the
  module already gave out (NautilusTrader issue #2564) or against crossed-only logic.

Latency stays NautilusTrader's `LatencyModel`: an order joins a queue only once the venue has
accepted it, and a cancel in flight leaves it fillable until the cancel arrives.
"""

from __future__ import annotations

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.config import SimulationModuleConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookType, LiquiditySide, OrderSide
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUpdated,
)
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity

from backtests.fills.queue_book import QueueBook
from backtests.fills.queue_models import QueueModel
from data.levels import BookLevels, ColumnFeed, LevelWatch

_CLOSING = (OrderCanceled, OrderExpired, OrderRejected)
_QUEUE_EVENTS = frozenset((OrderAccepted, OrderUpdated, OrderFilled, *_CLOSING))
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL


class QueueFillModel(FillModel):
    """Leaves resting orders the queue module tracks to the module; everything else is default."""

    def __init__(self, tracked: dict, random_seed: int | None = None) -> None:
        super().__init__(prob_fill_on_limit=1.0, prob_slippage=0.0, random_seed=random_seed)
        self._tracked = tracked
        self._empty: OrderBook | None = None

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
        if order.client_order_id not in self._tracked:
            return None
        if self._empty is None:
            self._empty = OrderBook(instrument.id, BookType.L2_MBP)
        return self._empty


class QueueFillModule(SimulationModule):
    def __init__(self, instrument: Instrument, model: QueueModel) -> None:
        super().__init__(SimulationModuleConfig())
        self.instrument = instrument
        self.tick_raw = instrument.price_increment.raw
        self.lot_raw = instrument.size_increment.raw
        self.lot = float(instrument.size_increment)
        self.queue = QueueBook(model)
        self.book = BookLevels()
        self.live: dict = {}  # client_order_id -> Order, the orders the queue tracks
        self.stats = {"trade_fills": 0, "cross_fills": 0, "filled_lots": 0}
        self._engine = None
        # Derived from the queue's orders, rebuilt when they change (`QueueBook.version`): the
        # levels the book watches for us, and our best buy and sell.
        self._watch: tuple = (None, None)
        self._best: tuple = (None, None, None)

    def read_columns_from(self, feed: ColumnFeed) -> None:
        """Read each book batch's deltas from the run's columns where they are (`DeltaColumns`)."""
        self.book.feed = feed

    # NautilusTrader wants these on a module
    def log_diagnostics(self, logger) -> None:
        logger.info(f"queue fills: {self.stats}")

    def reset(self) -> None:
        self.queue = QueueBook(self.queue.model)
        self.book.clear()
        self.live.clear()

    def _matching_engine(self):
        if self._engine is None:
            self._engine = self.exchange.get_matching_engine(self.instrument.id)
        return self._engine

    # -- data, before the exchange sees it ------------------------------------------------------

    def pre_process(self, data) -> None:
        if isinstance(data, OrderBookDeltas):
            self._on_deltas(data)
        elif isinstance(data, TradeTick):
            if self.live and data.aggressor_side != AggressorSide.NO_AGGRESSOR:
                fills = self.queue.on_trade(
                    data.aggressor_side == AggressorSide.BUYER,
                    data.price.raw // self.tick_raw,
                    data.size.raw // self.lot_raw,
                )
                self._fill(fills, "trade_fills")

    def _on_deltas(self, deltas: OrderBookDeltas) -> None:
        if not self.live:
            self.book.apply_deltas(deltas)
            return
        # A batch is one book state: each level where we rest sees only its net change, its size
        # once the whole batch is applied (0 where the batch deleted it). A snapshot (CLEAR, then
        # the levels again) that re-adds a level's size changed nothing there, and must not move
        # us to the front of the queue on the way.
        if self._watch[0] is not self.queue.version:
            tick = self.tick_raw
            self._watch = (self.queue.version, LevelWatch(
                {(_BUY if is_buy else _SELL, price * tick): (is_buy, price) for is_buy, price in self.queue.levels}))
        lot_raw = self.lot_raw
        for (is_buy, price), size_raw in self.book.apply_deltas(deltas, self._watch[1]).items():
            self.queue.on_depth(is_buy, price, size_raw // lot_raw)
        self._cross()

    def _cross(self) -> None:
        version = self.queue.version
        if self._best[0] is not version:
            top = low = None  # our best buy and best sell, in ticks
            for o in self.queue.orders.values():
                if o.is_buy:
                    top = o.price if top is None or o.price > top else top
                else:
                    low = o.price if low is None or o.price < low else low
            self._best = (version, top, low)
        _, top, low = self._best
        if top is not None:
            best_ask = self.book.best(_SELL)
            if best_ask is not None and best_ask // self.tick_raw <= top:
                asks = self._levels(_SELL, lambda p: p <= top)
                self._fill(self.queue.on_cross(True, asks), "cross_fills")
        if low is not None:
            best_bid = self.book.best(_BUY)
            if best_bid is not None and best_bid // self.tick_raw >= low:
                bids = self._levels(_BUY, lambda p: p >= low)
                self._fill(self.queue.on_cross(False, bids), "cross_fills")

    def _levels(self, side: OrderSide, within) -> list[tuple[int, int]]:
        out = []
        for raw, (_, size, _) in self.book.walk(side):
            price = raw // self.tick_raw
            if not within(price):
                break
            out.append((price, round(size / self.lot)))
        return out

    def _fill(self, fills: list[tuple[object, int]], kind: str) -> None:
        if not fills:
            return
        engine = self._matching_engine()
        for key, lots in fills:
            order = self.live.get(key)
            if order is None:
                continue
            qty = Quantity.from_raw(lots * self.lot_raw, self.instrument.size_precision)
            engine.fill_order(order, order.price, qty, LiquiditySide.MAKER)  # its OrderFilled may close it
            self.stats[kind] += 1
            self.stats["filled_lots"] += lots
            if key in self.live and self.queue.orders[key].leaves <= 0:
                self._leave(key)

    # -- who is live: the venue's order events, as it accepts, updates and closes our orders -----

    def register_venue(self, exchange) -> None:
        super().register_venue(exchange)
        # Events reach us synchronously while the exchange processes a command, so an order joins
        # its queue the moment it is accepted, before any later record, as polling the matching
        # engine after every record did, at a fraction of the cost.
        exchange.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)

    def _on_order_event(self, event) -> None:
        kind = type(event)
        if kind not in _QUEUE_EVENTS or event.instrument_id != self.instrument.id:
            return  # most events of an order's life (initialised, submitted, pending) change no queue
        key = event.client_order_id
        if kind is OrderAccepted:
            order = self.exchange.cache.order(key)
            if order is not None and order.is_open and key not in self.live:
                self._join(order)
        elif kind is OrderUpdated:
            if key in self.live:  # a new price or size: back of the queue, as a venue treats it
                self._leave(key)
                self._join(self.exchange.cache.order(key))
        elif kind in _CLOSING or (kind is OrderFilled and key in self.live and self.live[key].is_closed):
            self._leave(key)

    def _leave(self, key) -> None:
        if key in self.live:
            self.queue.remove(key)
            del self.live[key]

    def process(self, ts_now: int) -> None:
        """Nothing to do once the exchange has processed its commands: order events keep `live`."""

    def _join(self, order) -> None:
        is_buy = order.side == OrderSide.BUY
        price = order.price.raw // self.tick_raw
        level = self.book.level(_BUY if is_buy else _SELL, price * self.tick_raw)
        market = 0 if level is None else round(level[1] / self.lot)
        self.live[order.client_order_id] = order
        self.queue.add(order.client_order_id, is_buy, price, order.leaves_qty.raw // self.lot_raw, market)
