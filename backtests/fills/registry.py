"""The one place a simulated venue's fill model is built, for backtests and for paper trading alike.

A `[venue]` (backtest) or `[paper]` (live node) section names the fill model; both get exactly the
same simulation from here, so paper mode fills as the backtest it is compared with does.
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.instruments import Instrument

from backtests.fills.module import QueueFillModel, QueueFillModule
from backtests.fills.queue_models import make_queue_model


@dataclass
class FillSimulation:
    modules: list  # SimulationModules for the exchange
    fill_model: FillModel
    queue_module: QueueFillModule | None  # the queue model's module, for its statistics


def fill_simulation(venue, instrument: Instrument, seed: int | None) -> FillSimulation:
    """`venue` is a VenueSection: `fill_model` "queue" (queue position, prints and crosses fill our
    resting orders; backtests/fills) or "cross" (NautilusTrader's own L2 matching)."""
    if venue.fill_model == "queue":
        module = QueueFillModule(instrument, make_queue_model(venue.queue_model, venue.queue_power))
        return FillSimulation([module], QueueFillModel(module.live, random_seed=seed), module)
    if venue.fill_model == "cross":
        return FillSimulation([], FillModel(prob_fill_on_limit=1.0, prob_slippage=0.0, random_seed=seed), None)
    raise ValueError(f"unknown fill_model {venue.fill_model!r}: choose 'queue' or 'cross'")
