"""The live node's TOML: `[node]`, `[sei]`, `[paper]`, `[signal]`, `[strategy]`, typed and strict.

`[strategy]` and `[signal]` are the backtest's own sections, parsed by the same code, so a config
that backtests is a config that trades. `[paper]` is a backtest `[venue]` section: paper mode
simulates fills with exactly the model a backtest would use. The signing key is never in this
file: `[sei] key_file` names a mode-600 file, or `key_env` an environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from backtests.config import SignalSection, VenueSection, convert, read_toml, resolve_strategy, resolve_venue
from data.instrument import SEI_USDC_ID
from data.venues import SEI_CLOB
from strategies.config import ConfigError, MarketMakerConfig, parse_strategy_config


class NodeSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    mode: Literal["paper", "live"] = "paper"
    trader_id: str = "FLASHMM-001"
    state_dir: str = "runs/live"  # each session writes a directory here (status.json, fills, orders)
    log_level: str = "INFO"
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


class LiveConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    node: NodeSection = NodeSection()
    sei: SeiSection = SeiSection()
    paper: VenueSection = VenueSection()
    signal: SignalSection = SignalSection()
    strategy: dict[str, Any] = {}

    def venue_profile(self) -> str:
        """The venue this node trades: FlashMM's CosmWasm CLOB on Sei (the localnet venue)."""
        return SEI_CLOB.name

    def strategy_config(self) -> MarketMakerConfig:
        """The strategy, with what defaults to the venue (the requote cadence) from its profile."""
        return parse_strategy_config(resolve_strategy(self.strategy, self.venue_profile()))

    def paper_venue(self) -> VenueSection:
        """Paper mode's simulated venue: `[paper]` with the venue profile's values where unset."""
        return resolve_venue(self.paper, self.venue_profile(), self.strategy_config())

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def without_none(d: dict) -> dict:
    """A config dict as TOML can hold it: TOML has no null, so unset optionals are left out."""
    return {k: without_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_live_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LiveConfig:
    raw = read_toml(path, overrides, (("signal", "model"), ("sei", "key_file")))
    config = convert(raw, LiveConfig, str(path))
    config.strategy_config()
    if not config.sei.contract:
        raise ConfigError(f"{path}: sei.contract is required "
                          "(the CLOB contract's address; `flashmm localnet` prints it)")
    if config.node.mode == "live" and not (config.sei.key_file or config.sei.key_env):
        raise ConfigError(f"{path}: live mode needs sei.key_file or sei.key_env")
    return config
