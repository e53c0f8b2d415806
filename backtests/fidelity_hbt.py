"""The hftbacktest side of the fill-model fidelity comparison: same tape, quoting rule, latency
and queue model as our NautilusTrader backtests, simulated by hftbacktest 2.4.4 instead.

Tape -> hftbacktest events (`event_dtype`), one row per catalog record, in the order of
`Tape.chunks` (trades before the book batch of the same block, as our replay feeds them):

- Every row has EXCH_EVENT | LOCAL_EVENT and exch_ts = local_ts = ts_init, so the feed reaches
  the exchange model and the strategy at the same instant (no feed latency, as in our replay).
- CLEAR -> DEPTH_CLEAR_EVENT with no side (clears both sides); the ADDs after it in the same
  batch -> DEPTH_SNAPSHOT_EVENT. A window that starts after the tape's first CLEAR batch gets a
  synthetic clear + snapshot of the book as it stood before the window (rebuilt from the tape
  start), stamped with the window's first timestamp, so the depth starts correct either way.
- ADD / UPDATE -> DEPTH_EVENT with qty = the new absolute size at that price; DELETE ->
  DEPTH_EVENT with qty 0 (hftbacktest removes a level whose quantity is 0). BUY_EVENT marks the
  bid side, SELL_EVENT the ask side.
- TradeTick -> TRADE_EVENT with BUY_EVENT for aggressor BUYER and SELL_EVENT for SELLER: in
  hftbacktest a trade's side flag is the initiator's side (documented on BUY_EVENT/SELL_EVENT;
  the exchange model checks resting sells against buy-initiated trades and vice versa).

Simulation: one linear asset (contract size 1), the instrument's tick and lot size, zero fees,
`constant_order_latency(entry=latency_ns, response=0)`, `partial_fill_exchange()`, and
`power_prob_queue_model(n)` or `risk_adverse_queue_model()`. The quoting rule runs once per
`wait_next_feed` return, which hftbacktest makes only after every event at that timestamp
(local feed, order responses, exchange feed) has been processed. An order reaching the exchange
at the same timestamp as a block is handled after that block's events, so it joins behind the
queue the block left; our NautilusTrader side must break that tie the same way.

How fills are counted. hftbacktest reports one response per fill to the local side, but the
Python API shows only each order's latest state: `leaves_qty` and `exec_qty`, where `exec_qty`
is the quantity of the *last* fill, not a cumulative one. The local `state_values` are no help
either: in 2.4.4 the local side applies a response to its state only when the order is fully
filled, and then only with that last fill's quantity, so partial fills never reach position,
`num_trades` or `trading_volume`. So after every wait, before clearing inactive orders, each
order's filled quantity `qty - leaves_qty` (in lots) is compared with what was last seen for it:

- `fills` counts the orders whose filled quantity ever grew: orders that traded. This is the
  fill count compared with ours. How an order's fills are cut into steps differs by design (see
  below), so the number of steps measures granularity, not whether orders traded.
- `fill_steps` counts (order, timestamp) pairs whose filled quantity grew. Fills can only happen
  at a feed timestamp (GTX orders never take, and an arriving order is checked only against the
  book), and response latency is 0, so every fill is seen at the timestamp it happened. Several
  fills of one order at one timestamp (e.g. a sweep that prints at our price and then through it)
  arrive together and count once; `merged_fill_steps` counts the pairs where the growth exceeds
  the last fill's `exec_qty`, i.e. where at least two fills were merged. Group NautilusTrader's
  fills by (order, ts_event) to compare like with like.
- Steps differ where a print goes through our price: hftbacktest's partial-fill exchange then
  fills the order's whole remainder, whatever the print's size; FlashMM fills at most what
  printed (a fill never exceeds what traded), and the rest on later prints. On a real tape, where
  one sweep arrives as several prints microseconds apart, that makes several steps of one fill
  (tests/test_fidelity.py shows the case).
- `maker_volume` is the total growth. Every fill here is a maker fill: a GTX order that would
  cross is expired on arrival, so our orders only ever rest.
"""

from __future__ import annotations

import time

import numpy as np
from hftbacktest import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
    event_dtype,
)
from hftbacktest.order import BUY
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, OrderSide
from numba import njit, types
from numba.typed import Dict

from data.catalog import Tape

FEED = EXCH_EVENT | LOCAL_EVENT
DEPTH_SIDE = {OrderSide.BUY: BUY_EVENT, OrderSide.SELL: SELL_EVENT}
TRADE_SIDE = {AggressorSide.BUYER: BUY_EVENT, AggressorSide.SELLER: SELL_EVENT}
QUEUE_MODELS = ("prob_power", "risk_averse")

# hftbacktest's best tick on an empty side.
INVALID_MIN = np.iinfo(np.int64).min
INVALID_MAX = np.iinfo(np.int64).max
# Records come every few hundred ms at most; the timeout only bounds a wait over a gap in the tape.
WAIT_TIMEOUT_NS = 3600 * 1_000_000_000
WAIT_TIMEOUT, WAIT_END, WAIT_FEED = 0, 1, 2


def tape_to_hbt_events(tape: Tape, start_ns: int | None = None, end_ns: int | None = None) -> np.ndarray:
    """The tape window as an hftbacktest event array (see the module docstring for the mapping)."""
    lo = tape.start_ns if start_ns is None else max(start_ns, tape.start_ns)
    rows: list[tuple[int, int, float, float]] = []
    for stream in tape.chunks(start_ns, end_ns):
        for item in stream:
            ts = item.ts_init
            if not rows and lo > tape.start_ns:
                rows.extend(_snapshot_before(tape, lo, ts))
            if isinstance(item, TradeTick):
                if item.aggressor_side not in TRADE_SIDE:
                    raise ValueError(f"trade at ts={ts} has no aggressor side; hftbacktest needs one")
                rows.append((TRADE_EVENT | TRADE_SIDE[item.aggressor_side], ts, item.price.as_double(),
                             item.size.as_double()))
                continue
            snapshot = False
            for delta in item.deltas:
                if delta.action == BookAction.CLEAR:
                    rows.append((DEPTH_CLEAR_EVENT, ts, 0.0, 0.0))
                    snapshot = True
                    continue
                kind = DEPTH_SNAPSHOT_EVENT if snapshot else DEPTH_EVENT
                qty = 0.0 if delta.action == BookAction.DELETE else delta.order.size.as_double()
                rows.append((kind | DEPTH_SIDE[delta.order.side], ts, delta.order.price.as_double(), qty))
    events = np.zeros(len(rows), dtype=event_dtype)
    if rows:
        ev, ts, px, qty = zip(*rows, strict=True)
        events["ev"] = np.asarray(ev, dtype=np.uint64) | np.uint64(FEED)
        events["exch_ts"] = ts
        events["local_ts"] = ts
        events["px"] = px
        events["qty"] = qty
    return events


def _snapshot_before(tape: Tape, lo: int, ts: int) -> list[tuple[int, int, float, float]]:
    """Clear + snapshot of the book left by every batch before `lo`, stamped `ts`."""
    book = OrderBook(tape.instrument.id, BookType.L2_MBP)
    for batches, _ in tape.parts(tape.start_ns, lo - 1):
        for batch in batches:
            book.apply_deltas(batch)
    rows = [(DEPTH_CLEAR_EVENT, ts, 0.0, 0.0)]
    for side, levels in ((BUY_EVENT, book.bids()), (SELL_EVENT, book.asks())):
        rows += [(DEPTH_SNAPSHOT_EVENT | side, ts, level.price.as_double(), level.size()) for level in levels]
    return rows


def build_backtest(
    tape: Tape, events: np.ndarray, latency_ns: int, queue_model: str = "prob_power", queue_power: float = 2.0
):
    """A one-asset hftbacktest over `events` with the comparison's exchange, latency and queue model.

    hftbacktest reads `events` in place through a raw pointer (no copy, no reference kept): the
    caller must keep the array alive until the backtest is closed, or it replays freed memory.
    """
    if queue_model not in QUEUE_MODELS:
        raise ValueError(f"queue_model must be one of {QUEUE_MODELS}, not {queue_model!r}")
    asset = (
        BacktestAsset()
        .data(events)
        .linear_asset(1.0)
        .tick_size(float(tape.instrument.price_increment))
        .lot_size(float(tape.instrument.size_increment))
        .constant_order_latency(latency_ns, 0)
        .partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
    )
    if queue_model == "prob_power":
        asset = asset.power_prob_queue_model(queue_power)
    else:
        asset = asset.risk_adverse_queue_model()
    return HashMapMarketDepthBacktest([asset])


def run_hftbacktest(
    tape: Tape,
    order_qty: float,
    latency_ns: int,
    queue_model: str = "prob_power",
    queue_power: float = 2.0,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> dict:
    """Run the quoting rule on the tape window in hftbacktest.

    `wall_seconds` covers reading and converting the tape as well as the simulation, as our
    NautilusTrader runs' wall time includes reading the catalog; the first call in a process
    also pays numba's compilation of the quoting loop (a few seconds).
    """
    t0 = time.perf_counter()
    events = tape_to_hbt_events(tape, start_ns, end_ns)  # held until close: hftbacktest reads it in place
    hbt = build_backtest(tape, events, latency_ns, queue_model, queue_power)
    rc, filled_orders, fills, merged, filled_lots, orders = _quote(hbt, float(order_qty), WAIT_TIMEOUT_NS)
    hbt.close()
    if rc != WAIT_END:
        raise RuntimeError(f"hftbacktest stopped with code {rc}")
    return {
        "fills": int(filled_orders),
        "fill_steps": int(fills),
        "maker_volume": round(filled_lots * float(tape.instrument.size_increment), tape.instrument.size_precision),
        "orders": int(orders),
        "merged_fill_steps": int(merged),
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }


@njit
def _quote(hbt, order_qty, timeout):
    """The comparison's quoting rule, the one our NautilusTrader side implements: at most one
    order per side, a GTX order of `order_qty` at that side's best, cancelled once the best moves
    away from it; a side gets a new order only when its previous one is gone (filled, cancelled
    or expired), never while one is live, pending new or pending cancel."""
    depth = hbt.depth(0)
    tick, lot = depth.tick_size, depth.lot_size
    seen_lots = Dict.empty(key_type=types.uint64, value_type=types.int64)
    filled_orders = fills = merged = filled_lots = orders = 0
    next_id = 1
    while True:
        rc = hbt.wait_next_feed(False, timeout)
        values = hbt.orders(0).values()
        while values.has_next():
            order = values.get()
            cum = np.int64(round((order.qty - order.leaves_qty) / lot))
            grew = cum - seen_lots.get(order.order_id, 0)
            if grew > 0:
                if order.order_id not in seen_lots:
                    filled_orders += 1
                fills += 1
                if grew > round(order.exec_qty / lot):
                    merged += 1
                filled_lots += grew
                seen_lots[order.order_id] = cum
        if rc == WAIT_TIMEOUT:
            continue
        if rc != WAIT_FEED:
            return rc, filled_orders, fills, merged, filled_lots, orders
        hbt.clear_inactive_orders(0)

        depth = hbt.depth(0)
        best_bid, best_ask = depth.best_bid_tick, depth.best_ask_tick
        has_buy = has_sell = False
        stale_buy = stale_sell = np.uint64(0)
        values = hbt.orders(0).values()
        while values.has_next():
            order = values.get()
            if order.side == BUY:
                has_buy = True
                if order.cancellable and best_bid != INVALID_MIN and order.price_tick != best_bid:
                    stale_buy = order.order_id
            else:
                has_sell = True
                if order.cancellable and best_ask != INVALID_MAX and order.price_tick != best_ask:
                    stale_sell = order.order_id
        # Cancels and submits only after the iteration, which must not see the order map change.
        # A request hftbacktest refuses returns a nonzero code, which ends the run as its stop code.
        status = 0
        if stale_buy:
            status = hbt.cancel(0, stale_buy, False)
        if stale_sell and status == 0:
            status = hbt.cancel(0, stale_sell, False)
        if not has_buy and best_bid != INVALID_MIN and status == 0:
            status = hbt.submit_buy_order(0, next_id, best_bid * tick, order_qty, GTX, LIMIT, False)
            next_id += 1
            orders += 1
        if not has_sell and best_ask != INVALID_MAX and status == 0:
            status = hbt.submit_sell_order(0, next_id, best_ask * tick, order_qty, GTX, LIMIT, False)
            next_id += 1
            orders += 1
        if status != 0:
            return status, filled_orders, fills, merged, filled_lots, orders
