"""A strategy that places and cancels exactly what a test says, when it says: for fill scenarios."""

from __future__ import annotations

import pandas as pd
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy
from tapebuilder import MS, T0, Block, ladder, write_tape

from backtests.config import parse_config
from backtests.runner import build_engine, stream
from data.catalog import open_tape


class ScriptConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    actions: list  # (t_ms, "buy"|"sell"|"cancel", tag, price, qty)


class Scripted(Strategy):
    def __init__(self, config: ScriptConfig) -> None:
        super().__init__(config)
        self.tags: dict[str, object] = {}

    def on_start(self) -> None:
        for i, (t_ms, op, tag, price, qty) in enumerate(self.config.actions):
            self.clock.set_time_alert(
                f"a{i}", pd.Timestamp(T0 + t_ms * MS, unit="ns", tz="UTC"),
                lambda event, op=op, tag=tag, price=price, qty=qty: self._act(op, tag, price, qty),
            )

    def _act(self, op, tag, price, qty) -> None:
        if op == "cancel":
            self.cancel_order(self.cache.order(self.tags[tag]))
            return
        order = self.order_factory.limit(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if op == "buy" else OrderSide.SELL,
            quantity=Quantity.from_str(qty), price=Price.from_str(price),
            time_in_force=TimeInForce.GTC, post_only=True,
        )
        self.tags[tag] = order.client_order_id
        self.submit_order(order)


def evolve(steps: list[dict], bid="0.4000", ask="0.4005", size=100.0) -> list[Block]:
    """Blocks every 400 ms from a starting ladder; each step changes levels (size 0 = delete)."""
    bids, asks = ladder(bid, ask, size)
    blocks = [Block(0, dict(bids), dict(asks))]
    by_t = {s["t"]: s for s in steps}
    last_t = max(by_t, default=0) + 800
    for t in range(400, last_t + 1, 400):
        step = by_t.get(t, {})
        for side, book in (("bid", bids), ("ask", asks)):
            for px, sz in step.get(side, {}).items():
                if sz == 0:
                    book.pop(px, None)
                else:
                    book[px] = sz
        deepest = min(bids)
        bids[deepest] = size + (t // 400) % 2  # a block always carries a delta
        blocks.append(Block(t, dict(bids), dict(asks), step.get("trades", []), step.get("snapshot", False)))
    return blocks


def run_script(tmp_path, blocks, actions, venue=None):
    catalog = write_tape(tmp_path / "tape", blocks)
    raw = {"run": {"catalog": str(catalog)}, "venue": {"latency_ms": 0.0, **(venue or {})},
           "strategy": {"instrument_id": "SEI/USDC.SEI"}}
    config = parse_config(raw)
    tape = open_tape(catalog)
    engine, _, _ = build_engine(config, tape)
    strategy = Scripted(ScriptConfig(instrument_id=tape.instrument.id, actions=actions))
    engine.add_strategy(strategy)
    stream(engine, tape, tape.start_ns, tape.end_ns, 15, progress=False)
    engine.end()
    result = {}
    for tag, coid in strategy.tags.items():
        order = engine.cache.order(coid)
        fills = [e for e in order.events if isinstance(e, OrderFilled)]
        result[tag] = {
            "fills": [(float(e.last_px), float(e.last_qty)) for e in fills],
            "fill_ms": [(e.ts_event - T0) // MS for e in fills],
            "accepted_ms": next(((e.ts_event - T0) // MS for e in order.events if type(e).__name__ == "OrderAccepted"),
                                None),
            "status": order.status_string(),
            "commission": sum(float(e.commission) for e in fills),
            "liquidity": {e.liquidity_side.name for e in fills},
        }
    engine.dispose()
    return result
