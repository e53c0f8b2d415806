"""The signal actor: online features and model inference on every book batch, published on the bus.

It must be added to the trader before the strategy so that, for each book batch, it publishes its
signal before the strategy requotes on that same batch.
"""

from __future__ import annotations

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from models.features import OnlineFeatures
from models.runtime import SignalEngine
from models.signal_data import SignalData


class SignalActorConfig(ActorConfig, frozen=True, forbid_unknown_fields=True):
    instrument_id: InstrumentId
    model_dir: str | None = None  # None: the rule-based fallback only
    latency_budget_ms: float = 5.0
    trip_after: int = 3
    cooldown_secs: float = 60.0
    simulated_latency_us: float | None = None  # backtests: a fixed inference time (see SignalEngine)


class SignalActor(Actor):
    def __init__(self, config: SignalActorConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.features = OnlineFeatures()
        self.engine = SignalEngine(
            config.model_dir, config.latency_budget_ms, config.trip_after, int(config.cooldown_secs * 1e9),
            config.simulated_latency_us,
        )
        self.data_type = DataType(SignalData)

    def on_start(self) -> None:
        self.engine.log = self.log
        self.subscribe_trade_ticks(self.instrument_id)
        self.subscribe_order_book_deltas(self.instrument_id, book_type=BookType.L2_MBP)

    def on_trade_tick(self, tick) -> None:
        self.features.on_trade(tick)

    def on_order_book_deltas(self, deltas) -> None:
        x = self.features.on_book(deltas.ts_init, self.cache.order_book(self.instrument_id))
        if x is None:
            return
        out = self.engine.evaluate(x, deltas.ts_init)
        self.publish_data(self.data_type, SignalData.from_output(self.instrument_id, out, deltas))
