"""Pure quote construction: fair value, spread models, inventory skew, and the ladder.

Everything here works in integer ticks and lots so quotes land exactly on the venue's grid, and
takes plain numbers so it can be property-tested without an engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

from strategies.config import MarketMakerConfig
from strategies.signal import Signal

BUY, SELL = "BUY", "SELL"


# The per-block values (Top, Quote, Resting, and strategies.signal.Signal) are NamedTuples: as
# immutable as frozen dataclasses, and built several times faster (a frozen dataclass sets each
# field through object.__setattr__), which shows on a day of blocks.


class Top(NamedTuple):
    """Top of the market's book, in price units and base units."""

    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class Quote(NamedTuple):
    side: str
    price_ticks: int
    qty_lots: int
    level: int


@dataclass(frozen=True)
class Grid:
    tick: float
    lot: float

    def ticks(self, price: float) -> int:
        return round(price / self.tick)

    def lots(self, qty: float) -> int:
        return math.floor(qty / self.lot + 1e-9)


def fair_value(top: Top, mode: str) -> float:
    if mode == "microprice" and top.bid_size + top.ask_size > 0:
        return (top.bid * top.ask_size + top.ask * top.bid_size) / (top.bid_size + top.ask_size)
    return top.mid


def signal_fair(top: Top, mode: str, signal: Signal) -> float:
    """Fair value with the signal's shift. A signal that forecasts the mid's move replaces the
    microprice's cruder forecast of it: its shift is then taken from the mid (`fair_from_mid`)."""
    return fair_value(top, "mid" if signal.fair_from_mid else mode) * (1 + signal.fair_shift_bps * 1e-4)


def quote_depths(
    cfg: MarketMakerConfig, fair: float, inventory: float, sigma: float, tick: float
) -> tuple[float, float]:
    """Distances (price units) of our best bid and best ask below/above fair value.

    `sigma` is the mid's volatility in price units per sqrt(second). A positive inventory
    (long) makes the bid deeper and the ask shallower, so we lean towards selling.
    """
    q_units = (inventory - cfg.inventory_target) / cfg.order_size
    q_norm = (inventory - cfg.inventory_target) / cfg.max_position
    sigma_ticks = sigma / tick
    if cfg.spread_model == "avellaneda_stoikov":
        var_tau = sigma_ticks * sigma_ticks * cfg.as_horizon_secs
        half = 0.5 * (cfg.gamma * var_tau + (2 / cfg.gamma) * math.log1p(cfg.gamma / cfg.kappa)) * tick
        skew = q_units * cfg.gamma * var_tau * tick
    elif cfg.spread_model == "glft":
        g, a, k = cfg.gamma, cfg.glft_a, cfg.glft_k
        c1 = math.log1p(g / k) / g
        c2 = math.sqrt(g / (2 * a * k) * (1 + g / k) ** (k / g + 1))
        half = (c1 + 0.5 * sigma_ticks * c2) * tick
        skew = q_units * sigma_ticks * c2 * tick
    else:
        half = cfg.half_spread_bps * 1e-4 * fair
        skew = 0.0
    skew += q_norm * cfg.linear_skew_bps * 1e-4 * fair
    half = max(half, 0.5 * cfg.min_spread_bps * 1e-4 * fair)
    return half + skew, half - skew


def build_ladder(
    cfg: MarketMakerConfig,
    grid: Grid,
    top: Top,
    inventory: float,
    sigma: float,
    signal: Signal,
    buy_capacity: float,
    sell_capacity: float,
) -> list[Quote]:
    """The full desired ladder, both sides, respecting post-only, min spread and capacities.

    `buy_capacity`/`sell_capacity` are how much more we may buy/sell in base units without
    breaching any position, notional or balance limit, counting every order already working or
    in flight: the ladder never offers more than that, so limits hold even if everything fills.
    """
    fair = signal_fair(top, cfg.fair_value, signal)
    bid_depth, ask_depth = quote_depths(cfg, fair, inventory, sigma, grid.tick)
    half_min = 0.5 * cfg.min_spread_bps * 1e-4 * fair
    # The signal scales the spread around the (inventory-skewed) reservation price.
    reservation = fair + (ask_depth - bid_depth) / 2
    half = max((bid_depth + ask_depth) / 2 * signal.spread_scale, half_min)
    # A side the signal sees at risk steps back from the reservation price on its own.
    bid_ticks = math.floor((reservation - half - signal.bid_widen_bps * 1e-4 * fair) / grid.tick + 1e-9)
    ask_ticks = math.ceil((reservation + half + signal.ask_widen_bps * 1e-4 * fair) / grid.tick - 1e-9)
    # Post-only: never at or through the opposite side of the market.
    bid_ticks = min(bid_ticks, grid.ticks(top.ask) - 1)
    ask_ticks = max(ask_ticks, grid.ticks(top.bid) + 1)
    if bid_ticks >= ask_ticks:  # a zero spread (min_spread_bps 0, spread scaled to nothing): never cross ourselves
        bid_ticks = ask_ticks - 1
    q_norm = max(-1.0, min(1.0, (inventory - cfg.inventory_target) / cfg.max_position))
    bid_scale = max(0.0, 1 - cfg.size_skew * q_norm) * signal.bid_size_scale
    ask_scale = max(0.0, 1 + cfg.size_skew * q_norm) * signal.ask_size_scale
    quotes: list[Quote] = []
    for side, first, step, scale, capacity in (
        (BUY, bid_ticks, -cfg.level_spacing_ticks, bid_scale, buy_capacity),
        (SELL, ask_ticks, cfg.level_spacing_ticks, ask_scale, sell_capacity),
    ):
        left = grid.lots(max(capacity, 0.0))
        for level in range(cfg.levels):
            price = first + level * step
            if price <= 0:
                break
            lots = min(grid.lots(cfg.order_size * cfg.size_growth**level * scale), left)
            if lots <= 0:
                break
            quotes.append(Quote(side, price, lots, level))
            left -= lots
    return quotes


def capacities(
    cfg: MarketMakerConfig,
    inventory: float,
    open_buys: float,
    open_sells: float,
    price: float,
    quote_balance: float,
    base_balance: float,
) -> tuple[float, float]:
    """Base units we may still buy / sell, counting open and in-flight orders as if filled.

    Limits are symmetric around zero inventory (max_position, max_notional) and, on spot, the
    balances themselves: we cannot buy more than our quote pays for or sell more base than we hold.
    """
    notional_cap = cfg.max_notional / price
    buy = min(cfg.max_position - inventory, notional_cap - inventory) - open_buys
    sell = min(cfg.max_position + inventory, notional_cap + inventory) - open_sells
    buy = min(buy, quote_balance / price - open_buys)
    sell = min(sell, base_balance - open_sells)
    return max(buy, 0.0), max(sell, 0.0)


class Resting(NamedTuple):
    key: object
    side: str
    price_ticks: int
    qty_lots: int


def match_ladder(
    desired: list[Quote], resting: list[Resting], hysteresis_ticks: int, size_tolerance: float
) -> tuple[list[object], list[Quote]]:
    """Which resting orders can stand in for desired quotes, and which quotes must be sent.

    A resting order stands in for a desired quote on its side if it is no more aggressive and at
    most `hysteresis_ticks` less aggressive, and its size is no larger and at most
    `size_tolerance` (a fraction) smaller. Keeping it saves a cancel and a place (a transaction's
    worth of gas on Sei) and keeps its queue position; it can only ever take less risk than the
    quote it replaces. Quotes are served most aggressive first, each taking the most aggressive
    resting order that fits, which keeps the most orders for interval constraints like these.
    """
    keep: list[object] = []
    send: list[Quote] = []
    keep_fraction = 1 - size_tolerance
    for side, sign in ((BUY, 1), (SELL, -1)):
        # Most aggressive first; a stable sort (reverse=True keeps ties in their order), so that
        # ties go to the order listed first. It runs on every requote: no key function per item.
        pool = [r for r in resting if r.side == side]
        pool.sort(key=_RESTING_PRICE, reverse=sign > 0)
        quotes = [q for q in desired if q.side == side]
        quotes.sort(key=_QUOTE_PRICE, reverse=sign > 0)
        for quote in quotes:
            lo_lots = math.ceil(quote.qty_lots * keep_fraction - 1e-9)
            want, qty = quote.price_ticks, quote.qty_lots
            for i, r in enumerate(pool):
                behind = sign * (want - r.price_ticks)  # ticks less aggressive than wanted
                if 0 <= behind <= hysteresis_ticks and lo_lots <= r.qty_lots <= qty:
                    keep.append(r.key)
                    del pool[i]
                    break
            else:
                send.append(quote)
    return keep, send


_RESTING_PRICE = itemgetter(2)  # Resting.price_ticks
_QUOTE_PRICE = itemgetter(1)  # Quote.price_ticks
