"""Commands reach the simulated venue exactly when their latency says, not at the next record.

NautilusTrader 1.221 queues a command sent at t for t + latency, but the venue takes it only when
the engine next calls it: after the first record at or after t + latency has been applied, or at a
timer. So an order due at T joins the queue after the record following T (its book change, its
print) instead of before it, and a cancel lands a record late. On a 100 ms real tape that is a
visible share of fills. `CommandArrivals` sets a time alert at every command's arrival time, and
the engine's timer processing hands the venue its due commands right then.

One gap is left: a command sent from a timer callback whose arrival falls before the next record
is still handed over with that record, because the engine collects the alerts due before a record
once, before it runs their callbacks. Commands sent on market data (the usual case) are exact.
"""

from __future__ import annotations

from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.events import OrderPendingCancel, OrderPendingUpdate, OrderSubmitted


class CommandArrivals(Actor):
    def __init__(self, latency: LatencyModel) -> None:
        super().__init__(ActorConfig(component_id="CommandArrivals"))
        self._latency = {
            OrderSubmitted: latency.insert_latency_nanos,
            OrderPendingUpdate: latency.update_latency_nanos,
            OrderPendingCancel: latency.cancel_latency_nanos,
        }
        self._due: set[int] = set()

    def on_start(self) -> None:
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)

    def _on_order_event(self, event) -> None:
        latency = self._latency.get(type(event))
        if latency is None:
            return
        due = event.ts_init + latency
        if due not in self._due:  # one alert per instant is enough
            self._due.add(due)
            self.clock.set_time_alert_ns(f"arrival-{due}", due, self._arrived)

    def _arrived(self, event) -> None:
        self._due.discard(event.ts_event)  # the engine has just handed the venue what was due
