"""The instrument comes from the trading pair's metadata on Monaco, not from a static table.

Tick (`tick_size`), lot (`quantity_step_size`, [RS] 1.0.21; before it, 10^-min(base_decimals, 6),
the precision [TS] tests quote quantities with), minimum size and fees (`maker_fee_bps`,
`taker_fee_bps`) are the pair's ([RS] TradingPairData), so a strategy quoting off the venue's grid
is caught here, not discovered as rejected orders. The pair is found by symbol ("SEI/USDC"; [TS]
getTradingPairBySymbol tries "BTC/USDC" then "BTC-USDC", and so does this).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import AccountBalance, Money

from adapters.monaco.errors import VenueError
from adapters.monaco.wire import Balance, Pair
from data.instrument import currency_pair

if TYPE_CHECKING:
    from adapters.monaco.venue import MonacoVenue

MAX_PAIR_PAGES = 50


def precision_of(step: Decimal, name: str) -> int:
    """Digits of a power-of-ten step (0.0001 -> 4): NautilusTrader's increments here are built
    from a precision, and FlashMM's quoting grid assumes them."""
    exponent = step.normalize().as_tuple().exponent
    if step <= 0 or step != Decimal(1).scaleb(exponent) or exponent > 0:
        raise VenueError(f"the pair's {name} {step} is not a power of ten <= 1, which FlashMM cannot quote on")
    return -exponent


class MonacoInstrumentProvider(InstrumentProvider):
    def __init__(self, venue: MonacoVenue, symbol: str, instrument_id: str,
                 config: InstrumentProviderConfig | None = None) -> None:
        super().__init__(config=config or InstrumentProviderConfig(load_all=True))
        self._monaco = venue
        self.symbol = symbol
        self.instrument_id = InstrumentId.from_str(instrument_id)
        self.pair: Pair | None = None

    @property
    def venue(self) -> Venue:
        return self.instrument_id.venue

    async def load_all_async(self, filters: dict | None = None) -> None:
        codec = self._monaco.codec
        pairs: list[Pair] = []
        page, pages = 1, 1
        while page <= min(pages, MAX_PAIR_PAGES):
            answer = await self._monaco.rest.call("trading_pairs", query={"page": str(page), "page_size": "100"},
                                                  auth=False)
            rows, pages = codec.read_pairs_page(answer)
            pairs += rows
            page += 1
        wanted = {self.symbol, self.symbol.replace("/", "-")}
        found = [p for p in pairs if p.symbol in wanted]
        if not found:
            listed = ", ".join(sorted(p.symbol for p in pairs)[:20]) or "none"
            raise VenueError(f"Monaco lists no pair {self.symbol!r} (listed: {listed})")
        pair = found[0]
        if not pair.is_active:
            raise VenueError(f"Monaco's pair {pair.symbol} is not active")
        base, quote = str(self.instrument_id.symbol).split("/")
        if pair.base_token and pair.quote_token and (pair.base_token, pair.quote_token) != (base, quote):
            raise VenueError(f"instrument {self.instrument_id} does not name the pair's tokens "
                             f"{pair.base_token}/{pair.quote_token}")
        lot = pair.lot_size or Decimal(1).scaleb(-min(pair.base_decimals, 6))
        instrument = currency_pair(self.instrument_id, precision_of(pair.tick_size, "tick_size"),
                                   precision_of(lot, "quantity step"),
                                   maker_fee=pair.maker_fee_bps / 10_000, taker_fee=pair.taker_fee_bps / 10_000)
        self.pair = pair
        self.add_currency(instrument.base_currency)
        self.add_currency(instrument.quote_currency)
        self.add(instrument)

    async def load_ids_async(self, instrument_ids: list[InstrumentId], filters: dict | None = None) -> None:
        await self.load_all_async(filters)

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        await self.load_all_async(filters)

    @property
    def min_quantity(self) -> Decimal:
        return self.pair.min_order_size if self.pair else Decimal(0)

    def account_balances(self, rows: list[Balance]) -> list[AccountBalance]:
        """The pair's two assets as NautilusTrader balances (other assets of the wallet are left out)."""
        instrument = self.find(self.instrument_id)
        pair = self.pair
        currencies = {pair.base_asset_id: instrument.base_currency, pair.quote_asset_id: instrument.quote_currency,
                      pair.base_token: instrument.base_currency, pair.quote_token: instrument.quote_currency}
        out = {}
        for row in rows:
            currency = currencies.get(row.asset_id) or currencies.get(row.symbol)
            if currency is None or currency in out:
                continue
            free, locked = Money(row.available, currency), Money(row.locked, currency)
            out[currency] = AccountBalance(Money(free.as_decimal() + locked.as_decimal(), currency), locked, free)
        return list(out.values())
