"""The instrument comes from the contract itself (`market` query), not from a static table.

Tick, lot and fee rates are the contract's, so a backtest instrument that disagrees with the venue
is caught here rather than discovered as rejected orders. Amounts on chain are atomic integers of
a denom; NautilusTrader wants display units of a currency, and the conversion lives here.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import AccountBalance, Money

from adapters.sei.venue import SeiVenue, VenueError
from data.instrument import currency_pair

SUPPORTED_INTERFACE = "1"
_COIN = re.compile(r"([0-9]+)([a-zA-Z][a-zA-Z0-9/:._-]*)")


def precision_of(step: str, name: str) -> int:
    """Digits of a power-of-ten step ("0.0001" -> 4); anything else cannot be a NautilusTrader
    increment built from a precision."""
    try:
        value = Decimal(step)
    except InvalidOperation:
        raise VenueError(f"market {name} {step!r:.40} is not a decimal") from None
    exponent = value.normalize().as_tuple().exponent
    if value <= 0 or value != Decimal(1).scaleb(exponent) or exponent > 0:
        raise VenueError(f"market {name} {step} is not a power of ten <= 1")
    return -exponent


class SeiInstrumentProvider(InstrumentProvider):
    def __init__(self, venue: SeiVenue, instrument_id: str, config: InstrumentProviderConfig | None = None) -> None:
        super().__init__(config=config or InstrumentProviderConfig(load_all=True))
        self._sei = venue
        self.instrument_id = InstrumentId.from_str(instrument_id)
        self.market: dict = {}
        self._decimals: dict[str, int] = {}  # denom -> decimals, from the market query

    @property
    def venue(self) -> Venue:
        return self.instrument_id.venue

    @property
    def max_batch_actions(self) -> int:
        return int(self.market.get("max_batch_actions", 64))

    async def load_all_async(self, filters: dict | None = None) -> None:
        market = await self._sei.transport.query({"market": {}})
        version = market.get("interface_version")
        if version != SUPPORTED_INTERFACE:
            raise VenueError(f"contract interface version {version!r}; FlashMM speaks {SUPPORTED_INTERFACE!r} only")
        try:
            instrument = currency_pair(
                self.instrument_id,
                precision_of(market["tick_size"], "tick_size"),
                precision_of(market["lot_size"], "lot_size"),
                maker_fee=Decimal(market["maker_fee_rate"]),
                taker_fee=Decimal(market["taker_fee_rate"]),
            )
            self._decimals = {market["base_denom"]: int(market["base_decimals"]),
                              market["quote_denom"]: int(market["quote_decimals"])}
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise VenueError(f"market query answer is malformed ({exc!r:.100}): {str(market)[:300]}") from None
        self.market = market
        self.add_currency(instrument.base_currency)
        self.add_currency(instrument.quote_currency)
        self.add(instrument)

    async def load_ids_async(self, instrument_ids: list[InstrumentId], filters: dict | None = None) -> None:
        await self.load_all_async(filters)

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        await self.load_all_async(filters)

    def _currency_of(self, denom: str, instrument: Instrument):
        if denom == self.market.get("base_denom"):
            return instrument.base_currency
        if denom == self.market.get("quote_denom"):
            return instrument.quote_currency
        raise ValueError(f"denom {denom!r:.40} is neither the market's base nor its quote")

    def to_money(self, atomic: int, denom: str, instrument: Instrument) -> Money:
        return Money(Decimal(atomic).scaleb(-self._decimals[denom]), self._currency_of(denom, instrument))

    def fee_money(self, coin: str, instrument: Instrument) -> Money:
        match = _COIN.fullmatch(coin)
        if match is None:
            raise ValueError(f"fee {coin!r:.40} is not <amount><denom>")
        return self.to_money(int(match.group(1)), match.group(2), instrument)

    def account_balances(self, answer: dict) -> list[AccountBalance]:
        instrument = self.find(self.instrument_id)
        out = []
        for row in answer.get("balances", []):
            free = self.to_money(int(row["free"]), row["denom"], instrument)
            locked = self.to_money(int(row["locked"]), row["denom"], instrument)
            total = Money(free.as_decimal() + locked.as_decimal(), free.currency)
            out.append(AccountBalance(total, locked, free))
        return out
