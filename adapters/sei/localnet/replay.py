"""A catalog tape replayed as the localnet's background liquidity, one tape block per chain block.

`flashmm parity` backtests a tape, then trades the same tape on the localnet, and compares the
fills. The backtest cannot see queues: its fill model (backtests/fills/queue_book.py) estimates
where our order stands behind the market's size. On the localnet the queues are real Clob queues,
and the market's size in them is the orders this module places. So the rules below are the
localnet's queue dynamics, which the parity check measures the backtest's model against: they
follow what a recorded L2 tape can honestly tell about the market's orders, and no more.

Two background accounts act for the market:

- The **maker** holds the tape's L2 book. After its msgs run, its open orders, aggregated per
  price, equal the tape's levels after the block (as long as no one else traded with it).
  - A level that grows gets a new order for the growth at the back of the queue: the market's new
    size joins behind whoever is already queued there, FlashMM included.
  - A level that shrinks loses the maker's newest orders first (LIFO); an order only partly
    removed is trimmed in place with `reduce_order`, keeping its place. A shrink thus eats first
    the size queued behind a FlashMM order that joined the level, and never advances it while that
    size lasts; without this, every refresh of a level would carry FlashMM towards the front.
  - A level gone from the tape is cancelled whole.
  - What others take from the maker (FlashMM's fills, when the tape's book moves through a
    FlashMM order) is used up, as the backtest's fill model has it: the maker's holdings after a
    sync are remembered, and at the next block whatever is missing (before the tape's own trades
    run) was taken by others. A level then holds the tape's size less what was taken, and what
    was taken shrinks with the tape's level (it is `min(taken, tape size)`) and is forgotten when
    the level leaves the tape; only growth of the tape's level beyond it is new liquidity. Without
    this an order that the tape's book crosses for several blocks would fill again every block.
  - Cancels come before places, in every msg and across msgs, so a new maker order never meets a
    stale one of the maker's (the contract's self-trade rule would cancel the stale one).
    A new maker order that reaches another owner's order (FlashMM's ask below the tape's new best
    bid) trades with it, as the market would have: the book crossed it. The maker's level then
    holds only the rest, as the rule above has it.
  - A crossed or locked tape book (bad data) cannot be held by one account without self-trading:
    the maker then leaves out the overlap, every bid at or above the best ask and every ask at or
    below the best bid.
  - The contract caps an owner's open orders (`max_open_orders`), and the growth orders of
    long-lived levels add up past it (near 270 at peak on the bundled sample). When a sync would pass
    the cap, the maker merges levels into one order each (cancel them all, place the level's size
    once) until it fits: first the levels where it rests alone, deepest first (the book query
    shows no one else's size there, so no queue position changes), then, only if that is not
    enough, levels shared with others, deepest first (far from where FlashMM quotes), and last it
    leaves out the deepest levels when the book has more levels than the cap allows orders.
- The **taker** replays the tape's trades, before the maker syncs (a block's prints happen
  before its resulting book is published). A trade (aggressor side, price p, size q) becomes a
  limit order at p for min(q, size resting at p or better on the other side, all owners, less what
  the block's earlier trades took), rounded down to the lot, so it always fills whole and nothing
  of the taker ever rests; none when that is 0. It fills in price-time priority, so FlashMM's
  orders at or better than p trade whenever the queue ahead of them is used up. Trades without an
  aggressor side are skipped, as the backtest's fill model skips them.

Blocks are the tape's timestamps: one `OrderBookDeltas` batch (ending at F_LAST) per block, and a
trade belongs to the block of its timestamp; a block may hold trades and no deltas, or the reverse.
A window starting inside the tape begins with the tape's snapshot (`Tape.parts`), as block 0.

Prices and sizes travel as integers in the tape instrument's precision (`price_precision`,
`size_precision` decimals). The market must be able to hold them exactly: its tick and lot a
multiple of that precision, each tape price and size a multiple of its tick and lot (an error says
which is not), and `min_quantity` at most a lot, so any size change can be placed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide
from nautilus_trader.model.objects import FIXED_PRECISION

from adapters.sei.localnet.clob import Clob, Market
from data.catalog import Tape

_PAGE = 500  # open_orders' largest page
_BOOK_DEPTH = 100  # the book query's largest depth
_NEVER = 2**64  # after every timestamp
_AGGRESSOR = {AggressorSide.BUYER: "buy", AggressorSide.SELLER: "sell"}

_Level = tuple[bool, int]  # (is_bid, price)


@dataclass(frozen=True, slots=True)
class TapeTrade:
    """One print of the tape, price and size in tape units."""

    side: str | None  # the aggressor's: "buy", "sell", or None when the tape does not say
    price: int
    size: int


@dataclass(frozen=True, slots=True)
class TapeBlock:
    """One tape block: its trades, then the book they left. Prices and sizes are in tape units
    (`TapeReplay.price_precision`, `size_precision` decimals); levels best first, sizes > 0."""

    index: int  # 0-based within the replayed window
    ts_ns: int
    trades: tuple[TapeTrade, ...]
    bids: tuple[tuple[int, int], ...]  # (price, size)
    asks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class _Grid:
    """The market's tick and lot in tape units, and its cap on an owner's open orders."""

    tick: int
    lot: int
    max_open_orders: int


@dataclass(slots=True)
class _LevelPlan:
    """One level's part of a maker sync."""

    queue: list[tuple[str, int]]  # the maker's orders there now, oldest first: (order_id, size)
    want: int  # the tape's size there (0: gone)
    rank: int | None  # 0 at the touch; None for a level gone from the tape
    cancels: list[str]
    reduce: tuple[str, int] | None  # (order id, size taken off it in place)
    place: int  # size of the one order placed at the back, 0 for none
    after: int  # the maker's orders there after the sync


class TapeReplay:
    """Replays a catalog tape as background liquidity in the Clob, one tape block per chain block."""

    def __init__(
        self,
        tape: Tape,
        *,
        maker: str,
        taker: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        max_batch_actions: int = 64,
    ) -> None:
        if not maker or not taker or maker == taker:
            raise ValueError("maker and taker must be two different, non-empty accounts")
        if max_batch_actions < 1:
            raise ValueError(f"max_batch_actions must be >= 1, got {max_batch_actions}")
        self.maker = maker
        self.taker = taker
        self.max_batch_actions = max_batch_actions
        self.price_precision = tape.instrument.price_precision
        self.size_precision = tape.instrument.size_precision
        self._price_raw = 10 ** (FIXED_PRECISION - self.price_precision)
        self._size_raw = 10 ** (FIXED_PRECISION - self.size_precision)
        self._blocks = self._read(tape, start_ns, end_ns)
        self._grid_for: tuple[Market, _Grid] | None = None
        self._price_texts: dict[int, str] = {}  # tape price -> contract text
        self._prices: dict[str, int] = {}  # contract text -> tape price
        self._next_id = 0
        self._expected: dict[_Level, int] = {}  # the maker's holdings right after its last sync
        self._taken: dict[_Level, int] = {}  # tape liquidity others have used up, per level

    # -- the tape ------------------------------------------------------------------------------

    def advance(self) -> TapeBlock | None:
        """The next tape block; None when the window is exhausted."""
        return next(self._blocks, None)

    def _read(self, tape: Tape, start_ns: int | None, end_ns: int | None) -> Iterator[TapeBlock]:
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        index = 0
        for batches, trades in tape.parts(start_ns, end_ns):
            b = t = 0
            while b < len(batches) or t < len(trades):
                ts = min(
                    batches[b].ts_init if b < len(batches) else _NEVER,
                    trades[t].ts_init if t < len(trades) else _NEVER,
                )
                block_trades = []
                while t < len(trades) and trades[t].ts_init == ts:
                    block_trades.append(self._trade(trades[t]))
                    t += 1
                while b < len(batches) and batches[b].ts_init == ts:
                    for delta in batches[b].deltas:
                        self._apply(delta, bids, asks)
                    b += 1
                yield TapeBlock(
                    index, ts, tuple(block_trades),
                    tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())),
                )
                index += 1

    def _apply(self, delta: OrderBookDelta, bids: dict[int, int], asks: dict[int, int]) -> None:
        action = delta.action
        if action == BookAction.CLEAR:
            bids.clear()
            asks.clear()
            return
        order = delta.order
        side = bids if order.side == OrderSide.BUY else asks
        price = self._units(order.price.raw, self._price_raw, "price", delta.ts_init)
        size = self._units(order.size.raw, self._size_raw, "size", delta.ts_init)
        if action == BookAction.DELETE or size == 0:
            side.pop(price, None)
        else:
            side[price] = size

    def _trade(self, trade: TradeTick) -> TapeTrade:
        return TapeTrade(
            _AGGRESSOR.get(trade.aggressor_side),
            self._units(trade.price.raw, self._price_raw, "trade price", trade.ts_init),
            self._units(trade.size.raw, self._size_raw, "trade size", trade.ts_init),
        )

    @staticmethod
    def _units(raw: int, unit: int, what: str, ts_ns: int) -> int:
        units, rest = divmod(raw, unit)
        if rest:
            raise ValueError(f"tape {what} at ts={ts_ns} has more decimals than the instrument's precision")
        return units

    # -- the taker -----------------------------------------------------------------------------

    def taker_msgs(self, block: TapeBlock, clob: Clob, height: int) -> list[dict]:
        """Execute msgs for `taker` replaying the block's trades; run them before `maker_msgs`."""
        grid = self._grid(clob.market)
        self._note_taken(clob, height)
        trades = [t for t in block.trades if t.side is not None]
        if not trades:
            return []
        book = clob.query({"book": {"depth": _BOOK_DEPTH}}, height)
        sides = {
            "buy": self._levels(book["asks"]),  # what a buy can take, best first
            "sell": self._levels(book["bids"]),
        }
        actions = []
        for trade in trades:
            levels = sides[trade.side]
            buy = trade.side == "buy"
            reach = [lv for lv in levels if (lv[0] <= trade.price if buy else lv[0] >= trade.price)]
            take = min(trade.size, sum(lv[1] for lv in reach))
            take -= take % grid.lot  # a positive multiple of the lot is >= min_quantity (checked)
            if not take:
                continue
            left = take
            for lv in reach:  # the contract fills best price first; later trades see the rest
                used = min(lv[1], left)
                lv[1] -= used
                left -= used
            actions.append(self._place("t", trade.side, trade.price, take, grid))
        return self._batches(actions)

    def _levels(self, levels: list[dict[str, str]]) -> list[list[int]]:
        return [[self._price(lv["price"]), self._parse(lv["quantity"], self.size_precision)] for lv in levels]

    # -- the maker -----------------------------------------------------------------------------

    def maker_msgs(self, block: TapeBlock, clob: Clob, height: int) -> list[dict]:
        """Execute msgs for `maker` that make its orders the block's book; run them after the
        taker's msgs of the same height."""
        grid = self._grid(clob.market)
        held = self._held(clob, height)
        bids, asks = block.bids, block.asks
        if bids and asks and bids[0][0] >= asks[0][0]:
            best_bid, best_ask = bids[0][0], asks[0][0]
            bids = tuple(lv for lv in bids if lv[0] < best_ask)
            asks = tuple(lv for lv in asks if lv[0] > best_bid)

        plan: dict[_Level, _LevelPlan] = {}
        count = 0
        taken: dict[_Level, int] = {}
        for is_bid, side in ((True, bids), (False, asks)):
            for rank, (price, size) in enumerate(side):
                level = (is_bid, price)
                used = min(self._taken.get(level, 0), size)
                if used:
                    taken[level] = used
                want = size - used
                queue = held.pop(level, [])
                plan[level] = entry = _LevelPlan(queue, want, rank, *_sync(queue, want))
                count += entry.after
        self._taken = taken
        for level, queue in held.items():  # levels gone from the tape
            plan[level] = _LevelPlan(queue, 0, None, [oid for oid, _ in queue], None, 0, 0)
        if count > grid.max_open_orders:
            self._fit(plan, count, grid.max_open_orders, clob, height)

        self._expected = {}
        for level, entry in plan.items():
            gone = set(entry.cancels)
            after = sum(q for oid, q in entry.queue if oid not in gone) + entry.place
            after -= entry.reduce[1] if entry.reduce else 0
            if after:
                self._expected[level] = after
        cancels = [{"cancel_order": {"order_id": oid}} for entry in plan.values() for oid in entry.cancels]
        cancels += [
            {"reduce_order": {"order_id": entry.reduce[0],
                              "quantity": self._text(entry.reduce[1], self.size_precision)}}
            for entry in plan.values() if entry.reduce
        ]
        places = [
            self._place("m", "buy" if is_bid else "sell", price, entry.place, grid)
            for (is_bid, price), entry in plan.items()
            if entry.place
        ]
        return self._batches(cancels + places)

    def _note_taken(self, clob: Clob, height: int) -> None:
        """Add to `_taken` what others took from the maker since its last sync (only others can:
        the tape's trades for this block have not run yet)."""
        if not self._expected:
            return
        held = self._held(clob, height)
        for level, expected in self._expected.items():
            missing = expected - sum(q for _, q in held.get(level, ()))
            if missing > 0:
                self._taken[level] = self._taken.get(level, 0) + missing
        self._expected = {}

    def _held(self, clob: Clob, height: int) -> dict[_Level, list[tuple[str, int]]]:
        """The maker's open orders per level, oldest first (queue order: ascending order_id)."""
        held: dict[_Level, list[tuple[str, int]]] = {}
        query: dict = {"owner": self.maker, "limit": _PAGE}
        while True:
            page = clob.query({"open_orders": query}, height)["orders"]
            for o in page:
                level = (o["side"] == "buy", self._price(o["price"]))
                held.setdefault(level, []).append(
                    (o["order_id"], self._parse(o["remaining_quantity"], self.size_precision))
                )
            if len(page) < _PAGE:
                return held
            query = {"owner": self.maker, "limit": _PAGE, "start_after": page[-1]["order_id"]}

    def _fit(self, plan: dict[_Level, _LevelPlan], count: int, cap: int, clob: Clob, height: int) -> None:
        """Bring the sync within `cap` open orders by merging levels, then by leaving out the
        deepest (the module docstring says in which order, and why)."""
        book = clob.query({"book": {"depth": _BOOK_DEPTH}}, height)
        total = {
            (is_bid, self._price(lv["price"])): self._parse(lv["quantity"], self.size_precision)
            for is_bid, side in ((True, book["bids"]), (False, book["asks"]))
            for lv in side
        }
        levels = [level for level, entry in plan.items() if entry.rank is not None]

        def shared(level: _Level) -> bool:
            return total.get(level) != sum(q for _, q in plan[level].queue)

        merges = [level for level in levels if plan[level].after > 1]
        for level in sorted(merges, key=lambda lv: (shared(lv), -plan[lv].rank, not lv[0])):
            if count <= cap:
                return
            entry = plan[level]
            count -= entry.after - 1
            entry.cancels, entry.reduce, entry.place, entry.after = [oid for oid, _ in entry.queue], None, entry.want, 1
        for level in sorted(levels, key=lambda lv: (-plan[lv].rank, not lv[0])):
            if count <= cap:
                return
            entry = plan[level]
            count -= entry.after
            entry.cancels, entry.reduce, entry.place, entry.after = [oid for oid, _ in entry.queue], None, 0, 0

    # -- msgs ----------------------------------------------------------------------------------

    def _grid(self, market: Market) -> _Grid:
        if self._grid_for is not None and self._grid_for[0] is market:
            return self._grid_for[1]
        price_unit = Decimal(1).scaleb(-self.price_precision)
        size_unit = Decimal(1).scaleb(-self.size_precision)
        tick, lot = market.tick_size / price_unit, market.lot_size / size_unit
        if tick != tick.to_integral_value():
            raise ValueError(
                f"the market's tick_size {market.tick_size} is finer than the tape's "
                f"{self.price_precision} price decimals"
            )
        if lot != lot.to_integral_value():
            raise ValueError(
                f"the market's lot_size {market.lot_size} is finer than the tape's "
                f"{self.size_precision} size decimals"
            )
        if market.min_quantity > market.lot_size:
            raise ValueError(
                f"the market's min_quantity {market.min_quantity} is above its lot_size {market.lot_size}: "
                "the maker could not place a level's growth of one lot"
            )
        if self.max_batch_actions > market.max_batch_actions:
            raise ValueError(
                f"max_batch_actions {self.max_batch_actions} is above the market's {market.max_batch_actions}"
            )
        grid = _Grid(int(tick), int(lot), market.max_open_orders)
        self._grid_for = (market, grid)
        return grid

    def _place(self, prefix: str, side: str, price: int, size: int, grid: _Grid) -> dict:
        if price % grid.tick or size % grid.lot:
            raise ValueError(
                f"the tape's {side} of {self._text(size, self.size_precision)} at "
                f"{self._text(price, self.price_precision)} is off the market's tick or lot"
            )
        self._next_id += 1
        text = self._price_texts.get(price)
        if text is None:
            text = self._price_texts[price] = self._text(price, self.price_precision)
        return {"place_order": {
            "client_order_id": f"{prefix}{self._next_id}", "side": side, "price": text,
            "quantity": self._text(size, self.size_precision), "post_only": False,
        }}

    def _batches(self, actions: list[dict]) -> list[dict]:
        n = self.max_batch_actions
        return [{"batch": {"actions": actions[i:i + n]}} for i in range(0, len(actions), n)]

    @staticmethod
    def _text(units: int, places: int) -> str:
        """CONTRACT.md's decimal text: no exponent, no trailing zeros."""
        if places == 0:
            return str(units)
        digits = str(units).rjust(places + 1, "0")
        head, tail = digits[:-places], digits[-places:].rstrip("0")
        return f"{head}.{tail}" if tail else head

    def _price(self, text: str) -> int:
        price = self._prices.get(text)
        if price is None:
            price = self._prices[text] = self._parse(text, self.price_precision)
        return price

    @staticmethod
    def _parse(text: str, places: int) -> int:
        """The contract's decimal text in tape units (the market's grid is a multiple of them)."""
        head, _, tail = text.partition(".")
        if len(tail) > places:
            raise ValueError(f"{text} has more than {places} decimals")
        return int(head + tail.ljust(places, "0"))


def _sync(queue: list[tuple[str, int]], want: int) -> tuple[list[str], tuple[str, int] | None, int, int]:
    """One level's LIFO sync: (order ids to cancel, an order to reduce in place and by how much,
    size to place at the back, orders after)."""
    have = sum(q for _, q in queue)
    if want >= have:
        return [], None, want - have, len(queue) + (want > have)
    cancels = []
    excess = have - want
    kept = len(queue)
    while excess > 0:
        oid, q = queue[kept - 1]
        if q > excess:  # the newest order left only needs trimming: it keeps its place
            return cancels, (oid, excess), 0, kept
        kept -= 1
        cancels.append(oid)
        excess -= q
    return cancels, None, 0, kept
