"""Our resting orders' places in the venue's queues, and the fills the tape gives them.

Pure bookkeeping in integer ticks and lots (no engine objects), so the rules can be tested on
hand-built tapes and with hypothesis. The rules:

- An order joins behind the market size already at its price when it becomes live.
- A print at our price from the aggressing side consumes the queue in order: market size ahead
  of our first order, that order, market size between it and our next order, and so on. A print
  through our price fills our better-priced orders first. Each print is consumed once, so two of
  our orders never fill from the same liquidity.
- A level that shrinks by more than its prints explain had cancellations: the queue model says how
  much of that was ahead of us. A level that grows only adds size behind us.
- When the opposite side of the book reaches our price (a seller posts at or below our bid),
  that liquidity would have traded with us: we fill from it, and each unit of it only once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backtests.fills.queue_models import QueueModel


@dataclass(slots=True)
class Resting:
    key: object
    is_buy: bool
    price: int
    leaves: int
    front: float  # market size (lots) ahead of us
    seq: int


@dataclass
class QueueBook:
    model: QueueModel
    orders: dict = field(default_factory=dict)  # key -> Resting
    levels: dict = field(default_factory=dict)  # (is_buy, price) -> list[Resting], in time priority
    level_size: dict = field(default_factory=dict)  # (is_buy, price) -> last market size seen (lots)
    traded: dict = field(default_factory=dict)  # (is_buy, price) -> printed there since last depth update
    cross_used: dict = field(default_factory=dict)  # (is_buy of resting side, price) -> crossing size we took
    _seq: int = 0
    # A new object whenever an order is added or removed: what a caller derived from `orders` and
    # `levels` holds while it is the same (compared by identity).
    version: object = field(default_factory=object)

    def add(self, key: object, is_buy: bool, price: int, leaves: int, market_size: int) -> Resting:
        self._seq += 1
        self.version = object()
        order = Resting(key, is_buy, price, leaves, float(market_size), self._seq)
        self.orders[key] = order
        level = (is_buy, price)
        self.levels.setdefault(level, []).append(order)
        self.level_size[level] = market_size
        self.traded.setdefault(level, 0)
        return order

    def remove(self, key: object) -> None:
        order = self.orders.pop(key, None)
        if order is None:
            return
        self.version = object()
        level = (order.is_buy, order.price)
        queue = self.levels[level]
        queue.remove(order)
        if not queue:
            del self.levels[level], self.level_size[level], self.traded[level]

    def on_trade(self, aggressor_is_buy: bool, price: int, qty: int) -> list[tuple[object, int]]:
        """Fills from one print. A buyer-aggressor print hits our sells, a seller-aggressor our buys."""
        resting_buy = not aggressor_is_buy
        fills: list[tuple[object, int]] = []
        budget = qty
        # Better-priced orders first: the aggressor went through them to reach `price`.
        through = [o for o in self.orders.values() if o.is_buy == resting_buy and o.leaves > 0
                   and (o.price > price if resting_buy else o.price < price)]
        through.sort(key=lambda o: (-o.price if resting_buy else o.price, o.seq))
        for order in through:
            if budget <= 0:
                break
            take = min(order.leaves, budget)
            budget -= take
            fills.append((order.key, take))
        level = (resting_buy, price)
        queue = self.levels.get(level)
        if queue is not None:
            self.traded[level] += qty
            consumed_market = 0.0
            for order in queue:
                ahead = max(order.front - consumed_market, 0.0)
                take_market = min(budget, ahead)
                consumed_market += take_market
                budget -= take_market
                if budget <= 0:
                    break
                take = min(order.leaves, int(budget))
                if take > 0:
                    budget -= take
                    fills.append((order.key, take))
            for order in queue:
                order.front = max(order.front - consumed_market, 0.0)
        for key, lots in fills:
            self.orders[key].leaves -= lots
        return fills

    def on_depth(self, is_buy: bool, price: int, new_size: int) -> None:
        """A level where we rest changed size (0 = deleted)."""
        level = (is_buy, price)
        queue = self.levels.get(level)
        if queue is None:
            return
        prev = self.level_size[level]
        cancelled = prev - new_size - self.traded[level]
        self.traded[level] = 0
        self.level_size[level] = new_size
        for order in queue:
            if cancelled > 0:
                order.front = self.model.after_cancel(order.front, prev, new_size, cancelled)
            else:
                order.front = min(order.front, new_size)

    def on_cross(self, resting_buy: bool, opposite: list[tuple[int, int]]) -> list[tuple[object, int]]:
        """Fills for our orders that the opposite side of the book now reaches.

        `opposite` is that side's levels as (price, size), best first, at or through our best
        order. Size we already took from a level is not available again until it is replenished.
        """
        ours = [o for o in self.orders.values() if o.is_buy == resting_buy and o.leaves > 0]
        ours.sort(key=lambda o: (-o.price if resting_buy else o.price, o.seq))
        live = {price: size for price, size in opposite}
        for key in [k for k in self.cross_used if k[0] == resting_buy]:
            if key[1] not in live:
                del self.cross_used[key]
            else:
                self.cross_used[key] = min(self.cross_used[key], live[key[1]])
        fills: list[tuple[object, int]] = []
        for order in ours:
            for price, size in opposite:
                if order.leaves <= 0:
                    break
                if (price > order.price) if resting_buy else (price < order.price):
                    break
                used = self.cross_used.get((resting_buy, price), 0)
                take = min(order.leaves, size - used)
                if take > 0:
                    self.cross_used[(resting_buy, price)] = used + take
                    order.leaves -= take
                    fills.append((order.key, take))
        return fills
