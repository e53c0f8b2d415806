"""The halt path shared by the automatic kill switch and (later) the operator's `halt` command.

A strategy cannot reach the risk engine, and must not import an adapter or a runner, so it asks
to halt by sending a message to a bus endpoint. Whoever runs the trader (the backtest runner, the
live node) registers the endpoint; it sets the risk engine's trading state to HALTED so that no
order can leave, whatever any strategy does afterwards.
"""

from __future__ import annotations

from nautilus_trader.model.enums import TradingState

HALT_ENDPOINT = "FlashMM.halt"


def register_halt_endpoint(msgbus, risk_engine, on_halt=None) -> None:
    """Route halt requests on `msgbus` to `risk_engine` (and `on_halt(reason)` if given)."""

    def _halt(reason: str) -> None:
        risk_engine.set_trading_state(TradingState.HALTED)
        if on_halt is not None:
            on_halt(reason)

    msgbus.register(endpoint=HALT_ENDPOINT, handler=_halt)
