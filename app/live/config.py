"""The live node's TOML: `[node]`, `[venue]`, `[monaco]` or `[sei]`, `[paper]`, `[signal]`,
`[strategy]`, typed and strict.

`[venue] kind` picks the venue: "monaco" (Monaco, the order book on Sei EVM today, `[monaco]`)
or "sei-cosmwasm" (FlashMM's CosmWasm CLOB contract, the pre-SIP-03 design and the localnet venue,
`[sei]`). A config without `[venue]` is a Sei CosmWasm config, as every config was before Monaco.

`[strategy]` and `[signal]` are the backtest's own sections, parsed by the same code, so a config
that backtests is a config that trades. `[paper]` is a backtest `[venue]` section: paper mode
simulates fills with exactly the model a backtest would use. The signing key is never in this
file: `key_file` names a mode-600 file, or `key_env` an environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from adapters.monaco.config import MAINNET_API_URL, SEI_MAINNET_CHAIN_ID
from adapters.monaco.config import VENUE as MONACO
from adapters.monaco.keys import DEFAULT_ENV as MONACO_KEY_ENV
from adapters.monaco.wire import Wire
from backtests.config import SignalSection, VenueSection, convert, read_toml, resolve_strategy, resolve_venue
from data.instrument import SEI_USDC_ID
from data.venues import MONACO as MONACO_PROFILE
from data.venues import SEI_CLOB
from strategies.config import ConfigError, MarketMakerConfig, parse_strategy_config


class NodeSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    mode: Literal["paper", "live"] = "paper"
    trader_id: str = "FLASHMM-001"
    state_dir: str = "runs/live"  # each session writes a directory here (status.json, fills, orders)
    log_level: str = "INFO"
    # Every order command and event of the strategy in the node log at INFO (NautilusTrader's
    # log_commands / log_events). The audit trail (audit.jsonl) records every order event either way;
    # off, the node log keeps lifecycle, warnings and errors, and a reaction to a book update does not
    # format and write six log lines per replaced order (~0.3 ms of the live tick-to-order).
    log_orders: bool = False
    # Book updates and order commands handled as they arrive instead of through NautilusTrader's
    # engine queues (app/live/dispatch.py): the reaction to a book update runs in one piece.
    direct_dispatch: bool = True
    # Garbage collection on a loop timer between reactions, what the node built before trading frozen
    # out of it (app/live/gc_pacer.py); false = CPython's automatic collector.
    gc_paced: bool = True
    status_interval_secs: float = 1.0
    duration_secs: float = 0.0  # 0 = until SIGINT/SIGTERM
    seed: int = 0
    # e.g. redis://127.0.0.1:6379/0: a live node's cache persists there; "" = in memory only.
    # Paper mode never persists (its simulated venue restarts empty).
    redis_url: str = ""
    # /health and /metrics (app/live/ops.py). Loopback by default: they are for the operator and a
    # local scraper; 0 = a free port chosen by the OS (tests run several nodes side by side).
    ops_host: str = "127.0.0.1"
    ops_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080


class SeiSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    rpc_url: str = "ws://127.0.0.1:26657/websocket"
    contract: str = ""
    chain_id: str = ""
    instrument_id: str = str(SEI_USDC_ID)
    key_env: str = "FLASHMM_SEI_MNEMONIC"
    key_file: str = ""
    gas_base: int = 100_000
    gas_per_action: int = 30_000
    gas_price: str = "0.02"
    timeout_blocks: int = 3
    max_retries: int = 3
    order_expiry_blocks: int = 0  # 0 = orders never expire on their own
    book_depth: int = 100
    stale_after_secs: float = 3.0
    stop_timeout_secs: float = 15.0
    # The book without our own orders (contract v1.2's `book.exclude_owner`); false for a v1.1 contract.
    exclude_own_orders: bool = True


class VenueKind(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    kind: Literal["monaco", "sei-cosmwasm"] = "sei-cosmwasm"


class MonacoSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Monaco (adapters/monaco; VENUE.md lists every wire shape and its source). Defaults are
    mainnet's; `flashmm monaco-local` prints what a local Monaco wants instead."""

    api_url: str = MAINNET_API_URL
    ws_url: str = ""  # "" = the API host's /ws
    symbol: str = "SEI/USDC"  # the trading pair; tick, lot, decimals and fees come from its metadata
    instrument_id: str = f"SEI/USDC.{MONACO}"
    chain_id: int = SEI_MAINNET_CHAIN_ID  # 1329 mainnet, 1328 testnet (Monaco's development and staging)
    client_id: str = "flashmm"
    key_env: str = MONACO_KEY_ENV
    key_file: str = ""
    refresh_before_secs: float = 60.0
    use_replace: bool = True
    replace_window_ms: float = 2.0
    in_doubt_secs: float = 2.0
    cancel_orphans_on_start: bool = True
    stop_timeout_secs: float = 15.0
    stale_after_secs: float = 5.0
    lost_after_secs: float = 60.0
    exclude_own_orders: bool = True
    requests_per_s: float = 20.0
    burst: int = 40
    timeout_secs: float = 5.0
    # Custody (`flashmm monaco deposit|withdraw`): Sei EVM's RPC ([SEI] evm-rpc.sei-apis.com mainnet,
    # evm-rpc-testnet.sei-apis.com testnet) and Monaco's vault contract (its address is UNCONFIRMED).
    evm_rpc_url: str = "https://evm-rpc.sei-apis.com"
    vault_address: str = ""
    wire: Wire = Wire()  # `[monaco.wire]`: correct a path or a field name here (see adapters/monaco/wire.py)


class LiveConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    node: NodeSection = NodeSection()
    venue: VenueKind = VenueKind()
    monaco: MonacoSection = MonacoSection()
    sei: SeiSection = SeiSection()
    paper: VenueSection = VenueSection()
    signal: SignalSection = SignalSection()
    strategy: dict[str, Any] = {}

    def venue_profile(self) -> str:
        """The venue profile (data/venues.py) of the venue this node trades: Monaco, or FlashMM's
        CosmWasm CLOB on Sei (the pre-SIP-03 design and the localnet venue)."""
        return MONACO_PROFILE.name if self.on_monaco else SEI_CLOB.name

    def strategy_config(self) -> MarketMakerConfig:
        """The strategy, with what defaults to the venue (the requote cadence) from its profile."""
        config = parse_strategy_config(resolve_strategy(self.strategy, self.venue_profile()))
        if self.node.log_orders:
            return config
        return msgspec.structs.replace(config, log_events=False, log_commands=False)

    def paper_venue(self) -> VenueSection:
        """Paper mode's simulated venue: `[paper]` with the venue profile's values where unset."""
        return resolve_venue(self.paper, self.venue_profile(), self.strategy_config())

    @property
    def on_monaco(self) -> bool:
        return self.venue.kind == "monaco"

    @property
    def instrument_id(self) -> str:
        return self.monaco.instrument_id if self.on_monaco else self.sei.instrument_id

    @property
    def venue_url(self) -> str:
        return self.monaco.api_url if self.on_monaco else self.sei.rpc_url

    @property
    def key_source(self) -> tuple[str, str]:
        """(key_env, key_file) of the chosen venue."""
        section = self.monaco if self.on_monaco else self.sei
        return section.key_env, section.key_file

    @property
    def stop_timeout_secs(self) -> float:
        return self.monaco.stop_timeout_secs if self.on_monaco else self.sei.stop_timeout_secs

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def without_none(d: dict) -> dict:
    """A config dict as TOML can hold it: TOML has no null, so unset optionals are left out."""
    return {k: without_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_live_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LiveConfig:
    raw = read_toml(path, overrides, (("signal", "model"), ("sei", "key_file"), ("monaco", "key_file")))
    config = convert(raw, LiveConfig, str(path))
    strategy = config.strategy_config()
    section = "monaco" if config.on_monaco else "sei"
    if not config.on_monaco and not config.sei.contract:
        raise ConfigError(f"{path}: sei.contract is required "
                          "(the CLOB contract's address; `flashmm localnet` prints it)")
    if str(strategy.instrument_id) != config.instrument_id:
        raise ConfigError(f"{path}: strategy.instrument_id {strategy.instrument_id} is not "
                          f"{section}.instrument_id {config.instrument_id}")
    if config.node.mode == "live" and not any(config.key_source):
        raise ConfigError(f"{path}: live mode needs {section}.key_file or {section}.key_env")
    return config
