"""Paper trading: live Sei market data, fills simulated by the backtest's queue-aware fill model.

The execution client wraps a NautilusTrader `SimulatedExchange` configured exactly like a
backtest venue (`backtests.runner` builds the same fill model, queue model, fees and latency), and
feeds it the book deltas and trades the live data client publishes. The exchange runs on a test
clock set to each event's local receipt time, so insert and cancel latency mean the same thing
here as in a backtest: an order sent now reaches the simulated book `latency_ms` later.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.backtest.execution_client import BacktestExecClient
from nautilus_trader.backtest.models import MakerTakerFeeModel
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus, TestClock
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import LiveExecClientConfig
from nautilus_trader.execution.messages import (
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.live.factories import LiveExecClientFactory
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.events import OrderCancelRejected, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import ClientId, InstrumentId, Venue
from nautilus_trader.model.objects import Money

from backtests.config import VenueSection
from backtests.fills.module import QueueFillModule
from backtests.fills.registry import fill_simulation
from backtests.runner import latency_model


class PaperExecClientConfig(LiveExecClientConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    venue: str = "SEI"
    instrument_id: str
    simulation: VenueSection = VenueSection()
    seed: int = 0
    instrument_wait_secs: float = 30.0


class PaperExecutionClient(LiveExecutionClient):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, msgbus: MessageBus, cache: Cache, clock: LiveClock,
        config: PaperExecClientConfig,
    ) -> None:
        venue = Venue(config.venue)
        super().__init__(
            loop=loop, client_id=ClientId(config.venue), venue=venue, oms_type=OmsType.NETTING,
            account_type=AccountType.CASH, base_currency=None, instrument_provider=InstrumentProvider(),
            msgbus=msgbus, cache=cache, clock=clock, config=config,
        )
        self._cfg = config
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        self.sim_clock = TestClock()
        self.exchange: SimulatedExchange | None = None
        self.queue_module: QueueFillModule | None = None
        self._client: BacktestExecClient | None = None
        # NautilusTrader's builder hands a portfolio only to its own sandbox factory; the node sets it.
        self.portfolio = None
        # The live client's counters that mean something without a chain, so /metrics and
        # metrics.json carry places, cancels, fills and rejects in paper mode too.
        self.stats: Counter[str] = Counter()

    async def _connect(self) -> None:
        # The instrument comes from the contract through the data client.
        deadline = self._loop.time() + self._cfg.instrument_wait_secs
        while (instrument := self._cache.instrument(self.instrument_id)) is None:
            if self._loop.time() > deadline:
                raise RuntimeError(f"paper: instrument {self.instrument_id} never arrived from the data client")
            await asyncio.sleep(0.05)
        sim = self._cfg.simulation
        fills = fill_simulation(sim, instrument, self._cfg.seed)
        self.queue_module = fills.queue_module
        self.sim_clock.set_time(self._clock.timestamp_ns())
        self.exchange = SimulatedExchange(
            venue=self.venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH,
            starting_balances=[Money(sim.starting_quote, instrument.quote_currency),
                               Money(sim.starting_base, instrument.base_currency)],
            base_currency=None, default_leverage=1, leverages={}, modules=fills.modules,
            portfolio=self.portfolio,
            msgbus=self._msgbus, cache=self._cache, clock=self.sim_clock,
            fill_model=fills.fill_model, fee_model=MakerTakerFeeModel(), latency_model=latency_model(sim),
            book_type=BookType.L2_MBP, frozen_account=False, bar_execution=False, trade_execution=False,
            reject_stop_orders=True, support_gtd_orders=True, support_contingent_orders=True,
            use_position_ids=True, use_random_ids=False, use_reduce_only=True, use_message_queue=False,
        )
        self._client = BacktestExecClient(exchange=self.exchange, msgbus=self._msgbus, cache=self._cache,
                                          clock=self.sim_clock)
        self.exchange.register_client(self._client)
        self.exchange.add_instrument(instrument)
        self.exchange.initialize_account()
        self._client._set_connected(True)
        topic = f"{instrument.id.venue}.{instrument.id.symbol}"
        self._msgbus.subscribe(f"data.book.deltas.{topic}", handler=self._on_data)
        self._msgbus.subscribe(f"data.trades.{topic}", handler=self._on_data)
        self._msgbus.subscribe("events.order.*", handler=self._on_order_event)

    async def _disconnect(self) -> None:
        return None

    def _on_data(self, data) -> None:
        self.sim_clock.set_time(max(self.sim_clock.timestamp_ns(), data.ts_init))
        if isinstance(data, OrderBookDeltas):
            self.exchange.process_order_book_deltas(data)
        elif isinstance(data, TradeTick):
            self.exchange.process_trade_tick(data)
        self.exchange.process(self.sim_clock.timestamp_ns())

    def _on_order_event(self, event) -> None:
        if event.instrument_id != self.instrument_id:
            return
        if isinstance(event, OrderFilled):
            self.stats["fills"] += 1
        elif isinstance(event, OrderRejected):
            self.stats["rejects"] += 1
        elif isinstance(event, OrderCancelRejected):
            self.stats["cancel_rejects"] += 1

    def snapshot(self) -> dict:
        """The same keys as the Sei client's snapshot, for those a simulated venue has."""
        return {key: self.stats[key] for key in ("places", "cancels", "fills", "rejects", "cancel_rejects")}

    def _command(self, send, command) -> None:
        self.sim_clock.set_time(max(self.sim_clock.timestamp_ns(), self._clock.timestamp_ns()))
        send(command)
        self.exchange.process(self.sim_clock.timestamp_ns())

    def submit_order(self, command) -> None:
        self.stats["places"] += 1
        self._command(self._client.submit_order, command)

    def submit_order_list(self, command) -> None:
        self.stats["places"] += len(command.order_list.orders)
        self._command(self._client.submit_order_list, command)

    def modify_order(self, command) -> None:
        self._command(self._client.modify_order, command)

    def cancel_order(self, command) -> None:
        self.stats["cancels"] += 1
        self._command(self._client.cancel_order, command)

    def cancel_all_orders(self, command) -> None:
        self.stats["cancels"] += len(self._cache.orders_open(instrument_id=command.instrument_id))
        self._command(self._client.cancel_all_orders, command)

    def batch_cancel_orders(self, command) -> None:
        self.stats["cancels"] += len(command.cancels)
        self._command(self._client.batch_cancel_orders, command)

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        return None  # a paper venue starts empty every run

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        return []

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        return []

    async def generate_position_status_reports(
        self, command: GeneratePositionStatusReports,
    ) -> list[PositionStatusReport]:
        return []


class PaperExecClientFactory(LiveExecClientFactory):
    @staticmethod
    def create(loop, name, config: PaperExecClientConfig, msgbus, cache, clock) -> PaperExecutionClient:
        return PaperExecutionClient(loop, msgbus, cache, clock, config)
