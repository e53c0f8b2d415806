"""Typed, frozen configs for the Monaco data and execution clients (unknown fields are refused).

Both clients of a node share one `MonacoVenue` (one REST client, one WebSocket, one session),
found by `api_url` and `symbol`; the factories check that the two configs agree on the instrument.
The wallet key is never in a config: `key_env` names an environment variable, `key_file` a file
that group and others cannot read.

Monaco's defaults for a backtest of this venue (to move into the venue profile): orders reach the
matching engine in tens of milliseconds (a REST round trip; matching itself is sub-millisecond),
there is no block, fees come from the pair (`maker_fee_bps`, `taker_fee_bps`), an action costs no
gas, and the book updates as often as the market moves.
"""

from __future__ import annotations

from nautilus_trader.config import InstrumentProviderConfig, LiveDataClientConfig, LiveExecClientConfig

from adapters.monaco.keys import DEFAULT_ENV
from adapters.monaco.wire import Wire

VENUE = "MONACO"
SEI_MAINNET_CHAIN_ID = 1329  # [SEI] pacific-1 EVM; testnet (atlantic-2) is 1328
MAINNET_API_URL = "https://api.monaco.xyz"  # [TS] API_URLS.mainnet; development and staging hosts exist too


def _provider() -> InstrumentProviderConfig:
    return InstrumentProviderConfig(load_all=True)


class MonacoDataClientConfig(LiveDataClientConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`ws_url` "" = the API host with `/ws` ([TS]: the WebSocket is on the REST host). `stale_after_secs`:
    no frame for this long marks the feed stale. `exclude_own_orders`: when the node also trades,
    publish the book without its own resting orders, as a backtest tape is the market without us.
    `lost_after_secs`: a WebSocket down this long (reconnects failing) means the venue is lost and
    the node stops, pulling its quotes."""

    venue: str = VENUE
    api_url: str = MAINNET_API_URL
    ws_url: str = ""
    symbol: str = "SEI/USDC"
    instrument_id: str = f"SEI/USDC.{VENUE}"
    chain_id: int = SEI_MAINNET_CHAIN_ID
    client_id: str = "flashmm"
    wire: Wire = Wire()
    stale_after_secs: float = 5.0
    exclude_own_orders: bool = True
    lost_after_secs: float = 60.0
    requests_per_s: float = 20.0
    burst: int = 40
    timeout_secs: float = 5.0
    seed: int = 0
    instrument_provider: InstrumentProviderConfig = _provider()


class MonacoExecClientConfig(LiveExecClientConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`refresh_before_secs`: refresh the session this long before it expires. `use_replace`: a
    cancel and a new order on the same side, issued together, go out as one replace (one round
    trip instead of two); a cancel waits up to `replace_window_ms` for its new order.
    `in_doubt_secs`: how long after a create whose answer was lost (a timeout, a 5xx) the client
    looks for it on the venue. `cancel_orphans_on_start`: cancel open orders of the wallet that this
    node has no record of, on start and after every reconnect."""

    venue: str = VENUE
    api_url: str = MAINNET_API_URL
    ws_url: str = ""
    symbol: str = "SEI/USDC"
    instrument_id: str = f"SEI/USDC.{VENUE}"
    chain_id: int = SEI_MAINNET_CHAIN_ID
    client_id: str = "flashmm"
    wire: Wire = Wire()
    key_env: str = DEFAULT_ENV
    key_file: str | None = None
    refresh_before_secs: float = 60.0
    use_replace: bool = True
    replace_window_ms: float = 2.0
    in_doubt_secs: float = 2.0
    cancel_orphans_on_start: bool = True
    stop_timeout_secs: float = 15.0
    lost_after_secs: float = 60.0
    requests_per_s: float = 20.0
    burst: int = 40
    timeout_secs: float = 5.0
    seed: int = 0
    instrument_provider: InstrumentProviderConfig = _provider()
