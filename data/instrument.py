"""The SEI/USDC spot instrument, defined once for backtests, the live adapter and the tools.

Sei's venue is a CosmWasm CLOB contract (see adapters/sei), so the NautilusTrader venue is `SEI`.
Prices are USDC with 4 decimals (tick 0.0001), sizes are SEI with 1 decimal (lot 0.1).
"""

from __future__ import annotations

import re
from decimal import Decimal

from nautilus_trader.model.currencies import USDC
from nautilus_trader.model.enums import CurrencyType
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Currency, Price, Quantity

SEI = Currency(code="SEI", precision=6, iso4217=0, name="Sei", currency_type=CurrencyType.CRYPTO)
Currency.register(SEI, overwrite=False)

SEI_USDC_ID = InstrumentId.from_str("SEI/USDC.SEI")
SEI_PRICE_PRECISION = 4
SEI_SIZE_PRECISION = 1
DEFAULT_MAKER_FEE = Decimal("0.0000")
DEFAULT_TAKER_FEE = Decimal("0.0005")

_PAIR_ID = re.compile(r"^(?P<base>[A-Z0-9]{2,16})/(?P<quote>[A-Z0-9]{2,16})\.(?P<venue>[A-Z0-9_]{2,32})$")


def _currency(code: str) -> Currency:
    existing = Currency.from_str(code, strict=True)
    if existing is not None:
        return existing
    currency = Currency(code=code, precision=8, iso4217=0, name=code, currency_type=CurrencyType.CRYPTO)
    Currency.register(currency, overwrite=False)
    return currency


def currency_pair(
    instrument_id: str | InstrumentId,
    price_precision: int,
    size_precision: int,
    maker_fee: Decimal | str | float = DEFAULT_MAKER_FEE,
    taker_fee: Decimal | str | float = DEFAULT_TAKER_FEE,
) -> CurrencyPair:
    """Build a spot pair from an id of the form ``BASE/QUOTE.VENUE`` (e.g. ``SEI/USDC.SEI``)."""
    text = str(instrument_id)
    match = _PAIR_ID.match(text)
    if match is None:
        raise ValueError(f"instrument id {text!r} must look like BASE/QUOTE.VENUE, e.g. SEI/USDC.SEI")
    for name, value in (("price precision", price_precision), ("size precision", size_precision)):
        if not 0 <= int(value) <= 9:
            raise ValueError(f"{name} must be between 0 and 9, got {value}")
    base, quote = _currency(match["base"]), _currency(match["quote"])
    return CurrencyPair(
        instrument_id=InstrumentId.from_str(text),
        raw_symbol=Symbol(f"{match['base']}/{match['quote']}"),
        base_currency=base,
        quote_currency=quote,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(10.0**-price_precision, price_precision),
        size_increment=Quantity(10.0**-size_precision, size_precision),
        lot_size=Quantity(10.0**-size_precision, size_precision),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(str(maker_fee)),
        taker_fee=Decimal(str(taker_fee)),
    )


def sei_usdc(
    maker_fee: Decimal | str | float = DEFAULT_MAKER_FEE,
    taker_fee: Decimal | str | float = DEFAULT_TAKER_FEE,
) -> CurrencyPair:
    """SEI/USDC on the FlashMM CLOB venue: tick 0.0001 USDC, lot 0.1 SEI."""
    return currency_pair(SEI_USDC_ID, SEI_PRICE_PRECISION, SEI_SIZE_PRECISION, maker_fee, taker_fee)


def instrument_summary(instrument: CurrencyPair) -> dict:
    """What reports and charts need to label money and sizes: currencies, grid and precisions."""
    return {
        "id": str(instrument.id),
        "base": instrument.base_currency.code,
        "quote": instrument.quote_currency.code,
        "tick": float(instrument.price_increment),
        "lot": float(instrument.size_increment),
        "price_precision": instrument.price_precision,
        "size_precision": instrument.size_precision,
    }


__all__ = ["SEI", "USDC", "SEI_USDC_ID", "currency_pair", "instrument_summary", "sei_usdc"]
