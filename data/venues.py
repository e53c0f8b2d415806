"""Venue profiles: how a venue charges, how fast it answers and how often it publishes, in one place.

The instrument (currencies, tick, lot, precisions) comes from a tape's instrument definition; what
belongs to the venue comes from its profile, which a tape names in its catalog metadata
(``venue_profile``) and a backtest config may override key by key (``[venue]``). Metrics, the
report, the strategy's default requote cadence, fidelity and the node read these values instead of
assuming a chain's block time or a currency.

Each value says where it comes from; a value that could not be confirmed says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class VenueProfile:
    name: str
    description: str
    # How often the venue publishes its book: a block on a chain, the depth stream's interval on an
    # exchange. The strategy's default requote interval; a labeller's natural unit of time.
    cadence_ms: float
    # Order insert and cancel latency a backtest applies: one block on a chain (a tx sent after
    # block k lands in block k+1), the order-entry round trip on an API venue.
    latency_ms: float
    maker_fee: float  # fraction of notional
    taker_fee: float
    # Cost of each order action (place, cancel, replace), in the quote currency: gas on a chain,
    # nothing on an off-chain book. Charged when the action is sent, whatever becomes of it.
    action_cost: float
    # Commands reach the venue at most once per block (a chain) rather than whenever sent.
    block_gated: bool
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


SEI_CLOB = VenueProfile(
    name="sei-clob",
    description="FlashMM's CosmWasm CLOB contract on Sei (pre-SIP-03 design; the localnet venue)",
    cadence_ms=400.0,
    latency_ms=400.0,
    maker_fee=0.0,
    taker_fee=0.0005,
    # Gas per action at the node's defaults ([sei] gas_per_action 30,000 at 0.02 usei/gas =
    # 0.0006 SEI), plus a share of the per-tx base (100,000 gas), at about 0.40 USDC per SEI.
    action_cost=0.0005,
    block_gated=True,
    source="Sei block time ~400 ms (docs.sei.io, evm/differences-with-ethereum); fees and gas: "
           "adapters/sei/CONTRACT.md and app/configs/live_localnet.toml",
)

BINANCE_USDM = VenueProfile(
    name="binance-usdm",
    description="Binance USD-M perpetual futures (the bundled real ETHUSDT tape)",
    cadence_ms=100.0,
    # Not a property of the exchange: the order-entry round trip from a cloud host in the same
    # region is a few ms, from another continent 100-250 ms. 50 ms is a middling default.
    latency_ms=50.0,
    maker_fee=0.0002,
    taker_fee=0.0005,
    action_cost=0.0,
    block_gated=False,
    source="fees: Binance USD-M regular tier (binance.com/en/fee/futureFee: maker 0.0200%, taker 0.0500%); "
           "cadence: the diff-depth stream's 100 ms update speed (Binance USD-M WebSocket docs)",
)

MONACO = VenueProfile(
    name="monaco",
    description="Monaco, the order book on Sei EVM (off-chain matching, settlement on Sei)",
    # Matching is off-chain; the book streams over a WebSocket. The update interval is not
    # published: one Sei block is the settlement cadence, used until measured.
    cadence_ms=400.0,
    # REST round trip plus matching ("well under a millisecond"); not published, an estimate.
    latency_ms=30.0,
    # Each pair carries its own maker/taker fee in bps (the live adapter reads them); these are
    # the backtest defaults until a pair's are known. Not confirmed.
    maker_fee=0.0,
    taker_fee=0.0005,
    action_cost=0.0,  # placing and cancelling are API calls; no gas per action
    block_gated=False,
    source="adapters/monaco/VENUE.md (Monaco's public SDK and API docs); latency and fees unconfirmed",
)

PROFILES: dict[str, VenueProfile] = {p.name: p for p in (SEI_CLOB, BINANCE_USDM, MONACO)}


def venue_profile(name: str) -> VenueProfile:
    """The named profile, or a ValueError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown venue profile {name!r}: choose one of {', '.join(sorted(PROFILES))}") from None
