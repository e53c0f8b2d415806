"""`flashmm fidelity`: our queue-aware fills against hftbacktest's, on one tape, with one rule.

Both engines run the same touch-quoting rule (see `TouchQuoter`) with the same order size, latency
and queue model; only the fill simulation differs. A fill is counted once per (order, timestamp),
because that is all hftbacktest's Python API can see (see `fidelity_hbt`). The ratios of fill counts and maker volumes
say how close our NautilusTrader fill module comes to the reference implementation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from nautilus_trader.model.enums import BookType, OrderSide, TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from backtests.config import parse_config
from backtests.runner import build_engine, stream
from data.catalog import Tape
from data.venues import venue_profile

PENDING, WORKING, CANCELLING = "pending", "working", "cancelling"


class TouchQuoterConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    order_qty: float
    # Decide once per instant, after its prints and book batch (the fidelity comparison's rule), or
    # directly on each book batch (the bench's minimal quoter: NautilusTrader's order cost alone).
    per_instant: bool = True


class TouchQuoter(Strategy):
    """After each block: one post-only order per side at the best price; a stale one is cancelled
    and replaced only once its cancel is confirmed (the rule hftbacktest's loop follows too)."""

    def __init__(self, config: TouchQuoterConfig) -> None:
        super().__init__(config)
        self.side_order: dict[OrderSide, tuple] = {}  # side -> (client_order_id, price, state)
        self.fill_steps: set[tuple] = set()  # (order, ts): how hftbacktest's API can count fills
        self.filled_orders: set = set()  # orders that traded at all
        self.maker_volume = 0.0
        self.orders = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_order_book_deltas(self.config.instrument_id, book_type=BookType.L2_MBP)
        if self.config.per_instant:
            self.subscribe_trade_ticks(self.config.instrument_id)
        self._react_at = -1

    def on_order_book_deltas(self, deltas) -> None:
        if self.config.per_instant:
            self._react_soon()
        else:
            self._react(None)

    def on_trade_tick(self, tick) -> None:
        self._react_soon()

    def _react_soon(self) -> None:
        """Run the rule once per timestamp, after every record at it (an alert at the current time
        fires once the engine has processed them all), as hftbacktest's loop does after each
        wait_next_feed: a print and the book batch of one instant make one decision."""
        now = self.clock.timestamp_ns()
        if now != self._react_at:
            self._react_at = now
            self.clock.set_time_alert_ns(f"react-{now}", now, self._react)

    def _react(self, event) -> None:
        book = self.cache.order_book(self.config.instrument_id)
        for side, best in ((OrderSide.BUY, book.best_bid_price()), (OrderSide.SELL, book.best_ask_price())):
            if best is None:
                continue
            current = self.side_order.get(side)
            if current is None:
                order = self.order_factory.limit(
                    instrument_id=self.config.instrument_id, order_side=side,
                    quantity=self.instrument.make_qty(self.config.order_qty), price=best,
                    time_in_force=TimeInForce.GTC, post_only=True,
                )
                self.side_order[side] = (order.client_order_id, best, PENDING)
                self.orders += 1
                self.submit_order(order)
            elif current[2] == WORKING and current[1] != best:
                self.side_order[side] = (current[0], current[1], CANCELLING)
                self.cancel_order(self.cache.order(current[0]))

    def _set(self, event, state: str | None) -> None:
        for side, (coid, price, _) in list(self.side_order.items()):
            if coid == event.client_order_id:
                if state is None:
                    del self.side_order[side]
                else:
                    self.side_order[side] = (coid, price, state)

    def on_order_accepted(self, event) -> None:
        for side, (coid, price, state) in self.side_order.items():
            if coid == event.client_order_id and state == PENDING:
                self.side_order[side] = (coid, price, WORKING)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fill_steps.add((event.client_order_id, event.ts_event))
        self.filled_orders.add(event.client_order_id)
        self.maker_volume += float(event.last_qty)
        order = self.cache.order(event.client_order_id)
        if order is not None and order.is_closed:
            self._set(event, None)

    def on_order_canceled(self, event) -> None:
        self._set(event, None)

    def on_order_rejected(self, event) -> None:
        self._set(event, None)

    def on_order_cancel_rejected(self, event) -> None:
        order = self.cache.order(event.client_order_id)
        self._set(event, None if order is None or order.is_closed else WORKING)


@dataclass
class EngineCounts:
    fills: int  # orders that traded
    fill_steps: int  # (order, timestamp) pairs at which an order's filled quantity grew
    maker_volume: float
    orders: int
    wall_seconds: float


def run_nautilus(tape: Tape, order_qty: float, latency_ms: float, queue_model: str, queue_power: float,
                 start_ns: int, end_ns: int) -> EngineCounts:
    config = parse_config({
        "run": {"catalog": str(tape.path)},
        # Every venue value the comparison depends on is set here, whatever the tape's profile.
        "venue": {"fill_model": "queue", "queue_model": queue_model, "queue_power": queue_power,
                  "latency_ms": latency_ms, "maker_fee": 0.0, "taker_fee": 0.0,
                  "action_cost": 0.0, "starting_quote": 1e6, "starting_base": 1e6},
        "strategy": {"instrument_id": str(tape.instrument.id)},
    })
    engine, instrument, _ = build_engine(config, tape, exact_arrivals=True)  # hftbacktest's latency is exact
    quoter = TouchQuoter(TouchQuoterConfig(instrument_id=instrument.id, order_qty=order_qty))
    engine.add_strategy(quoter)
    t0 = time.perf_counter()
    stream(engine, tape, start_ns, end_ns, chunk_minutes=15, progress=False)
    engine.end()
    wall = time.perf_counter() - t0
    engine.dispose()
    return EngineCounts(len(quoter.filled_orders), len(quoter.fill_steps), quoter.maker_volume, quoter.orders, wall)


def typical_trade_size(tape: Tape, start_ns: int, end_ns: int) -> float:
    """The median print of the window, on the lot grid (at least one lot): a market-sized order,
    which is what a market maker quotes and what a fill model must get right."""
    sizes = [t.size.as_double() for _, trades in tape.parts(start_ns, end_ns) for t in trades]
    if not sizes:
        raise ValueError("the tape window has no trades: pass --order-qty")
    lot = float(tape.instrument.size_increment)
    return round(max(round(float(np.median(sizes)) / lot), 1) * lot, tape.instrument.size_precision)


def compare(tape: Tape, order_qty: float | None = None, latency_ms: float | None = None,
            queue_model: str = "prob_power", queue_power: float = 2.0, start_ns: int | None = None,
            end_ns: int | None = None) -> dict:
    """Both engines on the tape window. The order size defaults to the window's median print and
    the latency to the tape's venue profile."""
    try:
        from backtests.fidelity_hbt import run_hftbacktest
    except ImportError as exc:  # hftbacktest (and numba) is an extra: the node never needs it
        raise ValueError(f"flashmm fidelity needs hftbacktest, which is not installed ({exc}): install the "
                         "'fidelity' extra, e.g. pip install -e '.[fidelity]'") from None

    start_ns = tape.start_ns if start_ns is None else start_ns
    end_ns = tape.end_ns if end_ns is None else end_ns
    if order_qty is None:
        order_qty = typical_trade_size(tape, start_ns, end_ns)
    if latency_ms is None:
        if not tape.meta.get("venue_profile"):
            raise ValueError(f"catalog {tape.path} names no venue profile: pass --latency-ms")
        latency_ms = venue_profile(tape.meta["venue_profile"]).latency_ms
    ours = run_nautilus(tape, order_qty, latency_ms, queue_model, queue_power, start_ns, end_ns)
    ref = run_hftbacktest(tape, order_qty, int(latency_ms * 1_000_000), queue_model, queue_power, start_ns, end_ns)
    def ratio(key: str) -> float | None:
        ours_value = getattr(ours, key)
        return ours_value / ref[key] if ref[key] else None

    return {
        "rule": f"touch quoter, {order_qty:g} per side, requote on best-price change",
        "order_qty": order_qty,
        "queue_model": queue_model, "queue_power": queue_power if queue_model == "prob_power" else None,
        "latency_ms": latency_ms,
        "flashmm": {"fills": ours.fills, "fill_steps": ours.fill_steps, "maker_volume": round(ours.maker_volume, 6),
                    "orders": ours.orders, "wall_seconds": round(ours.wall_seconds, 3)},
        "hftbacktest": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in ref.items()},
        "fill_count_ratio": ratio("fills"),
        "maker_volume_ratio": ratio("maker_volume"),
        "fill_step_ratio": ratio("fill_steps"),
    }


def render(report: dict) -> str:
    def ratio(value):
        return "n/a" if value is None else f"{value:.3f} ({(value - 1) * 100:+.1f}%)"

    ours, ref = report["flashmm"], report["hftbacktest"]
    size = max(len(f"{report['order_qty']:g}".partition(".")[2]), 1)
    return "\n".join([
        f"rule: {report['rule']}; queue model {report['queue_model']}"
        + (f" n={report['queue_power']:g}" if report["queue_power"] is not None else "")
        + f"; latency {report['latency_ms']:g} ms",
        f"{'':14}{'filled orders':>14}{'fill steps':>12}{'maker volume':>16}{'orders':>10}",
        *(f"{name:14}{e['fills']:>14,}{e['fill_steps']:>12,}{e['maker_volume']:>16,.{size}f}{e['orders']:>10,}"
          for name, e in (("FlashMM/NT", ours), ("hftbacktest", ref))),
        f"fill-count ratio (filled orders, FlashMM / hftbacktest): {ratio(report['fill_count_ratio'])}",
        f"maker-volume ratio (FlashMM / hftbacktest):              {ratio(report['maker_volume_ratio'])}",
        f"fill-step ratio ((order, time) pairs, see docs):         {ratio(report['fill_step_ratio'])}",
    ])
