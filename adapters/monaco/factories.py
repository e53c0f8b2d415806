"""NautilusTrader factories for the Monaco clients.

A node's data and execution clients share one `MonacoVenue` (one REST client, one WebSocket, one
session, one instrument), looked up by event loop, API URL and symbol. The execution factory loads
the wallet key and attaches it before anything connects; a paper or recording node never loads one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.factories import LiveDataClientFactory, LiveExecClientFactory

from adapters.monaco.config import MonacoDataClientConfig, MonacoExecClientConfig
from adapters.monaco.data import MonacoDataClient
from adapters.monaco.execution import MonacoExecutionClient
from adapters.monaco.keys import load_evm_signer
from adapters.monaco.venue import MonacoVenue

_SHARED: dict[tuple[int, str, str], MonacoVenue] = {}


def shared_venue(loop: asyncio.AbstractEventLoop,
                 config: MonacoDataClientConfig | MonacoExecClientConfig) -> MonacoVenue:
    key = (id(loop), config.api_url, config.symbol)
    found = _SHARED.get(key)
    if found is not None:
        if str(found.provider.instrument_id) != config.instrument_id:
            raise ValueError(f"data and execution configs disagree on the instrument: "
                             f"{found.provider.instrument_id} vs {config.instrument_id}")
        return found
    venue = MonacoVenue(
        api_url=config.api_url, ws_url=config.ws_url, symbol=config.symbol, instrument_id=config.instrument_id,
        wire=config.wire, chain_id=config.chain_id, client_id=config.client_id,
        requests_per_s=config.requests_per_s, burst=config.burst, timeout_s=config.timeout_secs,
        lost_after_s=config.lost_after_secs, seed=config.seed,
    )
    _SHARED[key] = venue
    return venue


def forget_venues() -> None:
    """Drop the shared venues (a new node in the same process starts afresh)."""
    _SHARED.clear()


class MonacoLiveDataClientFactory(LiveDataClientFactory):
    @staticmethod
    def create(loop: asyncio.AbstractEventLoop, name: str, config: MonacoDataClientConfig, msgbus: MessageBus,
               cache: Cache, clock: LiveClock) -> MonacoDataClient:
        venue = shared_venue(loop, config)
        return MonacoDataClient(loop, venue, msgbus, cache, clock, venue.provider, config)


class MonacoLiveExecClientFactory(LiveExecClientFactory):
    @staticmethod
    def create(loop: asyncio.AbstractEventLoop, name: str, config: MonacoExecClientConfig, msgbus: MessageBus,
               cache: Cache, clock: LiveClock) -> MonacoExecutionClient:
        venue = shared_venue(loop, config)
        key_file = Path(config.key_file).expanduser() if config.key_file else None
        signer = load_evm_signer(env=config.key_env, file=key_file)
        venue.attach_signer(signer, refresh_before_s=config.refresh_before_secs)
        return MonacoExecutionClient(loop, venue, msgbus, cache, clock, venue.provider, config)
