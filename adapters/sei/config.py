"""Typed, frozen configs for the Sei data and execution clients (unknown fields are refused).

Both clients of a node talk to one contract through one `SeiVenue`, shared by `rpc_url` and
`contract`; the factories check that the two configs name the same `instrument_id`.
"""

from __future__ import annotations

from nautilus_trader.config import InstrumentProviderConfig, LiveDataClientConfig, LiveExecClientConfig

from data.instrument import SEI_USDC_ID


def _provider() -> InstrumentProviderConfig:
    return InstrumentProviderConfig(load_all=True)


class SeiDataClientConfig(LiveDataClientConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`book_depth`: levels in the snapshot query (the contract allows 1-100). `stale_after_secs`:
    no block for this long marks the feed stale (the strategy's own guard pulls quotes).
    `exclude_own_orders`: when the node also trades, publish the book without its own orders,
    as a backtest tape is (see `book.py`)."""

    venue: str = "SEI"
    rpc_url: str
    contract: str
    chain_id: str | None = None
    instrument_id: str = str(SEI_USDC_ID)
    book_depth: int = 100
    verify_every_blocks: int = 150  # compare with the contract's book this often (0 = never)
    stale_after_secs: float = 3.0
    exclude_own_orders: bool = True
    instrument_provider: InstrumentProviderConfig = _provider()


class SeiExecClientConfig(LiveExecClientConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The signing key comes from `key_env` (a mnemonic or hex key) or `key_file` (mode 600), never
    from this config. A batch of n actions buys `gas_base + gas_per_action * n` gas at `gas_price`
    (in `fee_denom`). A tx not in a block by
    `timeout_blocks` after it was sent can never land; its cancels are retried up to `max_retries`.
    `batch_idle_ms`/`batch_max_ms` bound how long commands are gathered into one block's tx.
    `order_expiry_blocks` gives every order an `expiry_height`, so quotes die with a dead node.
    `cancel_orphans_on_start` cancels every open order of the account that the node's cache does
    not know before the strategy starts (after a crash without persisted state)."""

    venue: str = "SEI"
    rpc_url: str
    contract: str
    chain_id: str | None = None
    instrument_id: str = str(SEI_USDC_ID)
    key_env: str = "FLASHMM_SEI_MNEMONIC"
    key_file: str | None = None
    gas_base: int = 100_000
    gas_per_action: int = 30_000
    gas_price: str = "0.02"
    fee_denom: str = "usei"
    timeout_blocks: int = 3
    max_retries: int = 3
    batch_idle_ms: float = 1.0
    batch_max_ms: float = 10.0
    order_expiry_blocks: int | None = None
    cancel_orphans_on_start: bool = True
    catch_up_timeout_secs: float = 60.0  # replaying the blocks missed while down, before trading
    stop_timeout_secs: float = 15.0
    poll_interval_secs: float = 0.4
    instrument_provider: InstrumentProviderConfig = _provider()
