"""NautilusTrader factories for the Sei clients.

A node's data and execution clients share one `SeiVenue` (one WebSocket, one block stream, one
instrument provider), looked up by event loop, RPC URL and contract. The execution factory
attaches the signing key; a paper node never loads one.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.factories import LiveDataClientFactory, LiveExecClientFactory

from adapters.sei.config import SeiDataClientConfig, SeiExecClientConfig
from adapters.sei.data import SeiDataClient
from adapters.sei.execution import SeiExecutionClient
from adapters.sei.keys import load_signer
from adapters.sei.providers import SeiInstrumentProvider
from adapters.sei.venue import CosmosTransport, SeiVenue

_SHARED: dict[tuple[int, str, str], tuple[SeiVenue, SeiInstrumentProvider]] = {}


def shared_venue(
    loop: asyncio.AbstractEventLoop, config: SeiDataClientConfig | SeiExecClientConfig
) -> tuple[SeiVenue, SeiInstrumentProvider]:
    key = (id(loop), config.rpc_url, config.contract)
    found = _SHARED.get(key)
    if found is not None:
        provider = found[1]
        if str(provider.instrument_id) != config.instrument_id:
            raise ValueError(
                f"data and execution configs disagree on the instrument: {provider.instrument_id} "
                f"vs {config.instrument_id}"
            )
        return found
    transport = CosmosTransport(config.rpc_url, config.contract, chain_id=config.chain_id)
    venue = SeiVenue(transport)
    provider = SeiInstrumentProvider(venue, config.instrument_id, config.instrument_provider)
    venue.on_connect.append(provider.initialize)
    _SHARED[key] = (venue, provider)
    return venue, provider


def forget_venues() -> None:
    """Drop the shared venues (a new node in the same process starts afresh)."""
    _SHARED.clear()


class SeiLiveDataClientFactory(LiveDataClientFactory):
    @staticmethod
    def create(
        loop: asyncio.AbstractEventLoop, name: str, config: SeiDataClientConfig,
        msgbus: MessageBus, cache: Cache, clock: LiveClock,
    ) -> SeiDataClient:
        venue, provider = shared_venue(loop, config)
        return SeiDataClient(loop, venue, msgbus, cache, clock, provider, config)


class SeiLiveExecClientFactory(LiveExecClientFactory):
    @staticmethod
    def create(
        loop: asyncio.AbstractEventLoop, name: str, config: SeiExecClientConfig,
        msgbus: MessageBus, cache: Cache, clock: LiveClock,
    ) -> SeiExecutionClient:
        venue, provider = shared_venue(loop, config)
        signer = load_signer(env=config.key_env, file=Path(config.key_file).expanduser() if config.key_file else None)
        venue.transport.attach_signer(
            signer, gas_base=config.gas_base, gas_per_action=config.gas_per_action, gas_price=Decimal(config.gas_price),
            fee_denom=config.fee_denom,
            max_sequence_retries=config.max_retries,
        )
        return SeiExecutionClient(loop, venue, msgbus, cache, clock, provider, config)
