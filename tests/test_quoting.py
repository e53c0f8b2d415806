"""Invariants of quote construction, over random markets, inventories and configs."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strategies.config import ConfigError, MarketMakerConfig, parse_strategy_config
from strategies.quoting import (
    BUY,
    SELL,
    Grid,
    Quote,
    Resting,
    Top,
    build_ladder,
    capacities,
    match_ladder,
    quote_depths,
)
from strategies.signal import NEUTRAL, Signal, clamped, is_current

GRID = Grid(0.0001, 0.1)


@st.composite
def markets(draw):
    bid = draw(st.integers(1000, 9000))
    spread = draw(st.integers(1, 30))
    return Top(bid / 1e4, (bid + spread) / 1e4, draw(st.floats(0.1, 1e5)), draw(st.floats(0.1, 1e5)))


@st.composite
def configs(draw):
    max_position = draw(st.floats(100, 1e5))
    return MarketMakerConfig(
        instrument_id="SEI/USDC.SEI",
        levels=draw(st.integers(1, 5)),
        level_spacing_ticks=draw(st.integers(1, 5)),
        order_size=draw(st.floats(0.1, 5000)),
        size_growth=draw(st.floats(0.5, 3)),
        spread_model=draw(st.sampled_from(["fixed", "avellaneda_stoikov", "glft"])),
        half_spread_bps=draw(st.floats(0, 50)),
        min_spread_bps=draw(st.floats(0, 50)),
        gamma=draw(st.floats(0.01, 5)),
        kappa=draw(st.floats(0.1, 10)),
        glft_a=draw(st.floats(0.1, 10)),
        glft_k=draw(st.floats(0.1, 10)),
        fair_value=draw(st.sampled_from(["mid", "microprice"])),
        linear_skew_bps=draw(st.floats(0, 50)),
        size_skew=draw(st.floats(0, 1)),
        max_position=max_position,
        max_notional=draw(st.floats(10, 1e5)),
    )


signals = st.builds(
    Signal, ts_ns=st.just(0), fair_shift_bps=st.floats(-5, 5), spread_scale=st.floats(0.7, 1.5),
    bid_size_scale=st.floats(0, 2), ask_size_scale=st.floats(0, 2), bid_widen_bps=st.floats(0, 10),
    ask_widen_bps=st.floats(0, 10), fair_from_mid=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(cfg=configs(), top=markets(), inv_frac=st.floats(-1, 1), sigma=st.floats(0, 1e-3), signal=signals,
       open_frac=st.floats(0, 1))
def test_ladder_respects_grid_post_only_and_limits(cfg, top, inv_frac, sigma, signal, open_frac):
    inventory = inv_frac * cfg.max_position * 0.99
    room_buy, room_sell = capacities(cfg, inventory, 0.0, 0.0, top.mid, 1e9, 1e9)
    open_buys, open_sells = room_buy * open_frac, room_sell * open_frac
    buy_cap, sell_cap = capacities(cfg, inventory, open_buys, open_sells, top.mid, 1e9, 1e9)
    quotes = build_ladder(cfg, GRID, top, inventory, sigma, signal, buy_cap, sell_cap)
    bids = [q for q in quotes if q.side == BUY]
    asks = [q for q in quotes if q.side == SELL]
    ask_ticks, bid_ticks = GRID.ticks(top.ask), GRID.ticks(top.bid)
    for q in quotes:
        assert isinstance(q.price_ticks, int) and q.price_ticks > 0
        assert isinstance(q.qty_lots, int) and q.qty_lots >= 1
    assert all(q.price_ticks < ask_ticks for q in bids)  # post-only: never take the ask
    assert all(q.price_ticks > bid_ticks for q in asks)
    if bids and asks:
        assert max(q.price_ticks for q in bids) < min(q.price_ticks for q in asks)
    # even if every order fills, position and notional limits hold
    bought = inventory + open_buys + sum(q.qty_lots for q in bids) * GRID.lot
    sold = inventory - open_sells - sum(q.qty_lots for q in asks) * GRID.lot
    assert bought <= cfg.max_position + 1e-6 and bought * top.mid <= cfg.max_notional + 1e-6 or not bids
    assert sold >= -cfg.max_position - 1e-6 and -sold * top.mid <= cfg.max_notional + 1e-6 or not asks
    # ladder levels are spaced as configured, outward from the touch
    for side in (bids, asks):
        for a, b in zip(side, side[1:], strict=False):
            assert abs(a.price_ticks - b.price_ticks) == cfg.level_spacing_ticks


@settings(max_examples=300, deadline=None)
@given(cfg=configs(), top=markets(), a=st.floats(-1, 1), b=st.floats(-1, 1), sigma=st.floats(0, 1e-3))
def test_skew_leans_against_inventory(cfg, top, a, b, sigma):
    """More inventory never raises our quotes nor grows our bid / shrinks our ask."""
    assume(abs(a - b) > 1e-3)
    low, high = sorted((a * cfg.max_position * 0.9, b * cfg.max_position * 0.9))
    bd_lo, ad_lo = quote_depths(cfg, top.mid, low, sigma, GRID.tick)
    bd_hi, ad_hi = quote_depths(cfg, top.mid, high, sigma, GRID.tick)
    assert bd_hi >= bd_lo - 1e-12 and ad_hi <= ad_lo + 1e-12
    big = 1e12
    q_lo = build_ladder(cfg, GRID, top, low, sigma, NEUTRAL, big, big)
    q_hi = build_ladder(cfg, GRID, top, high, sigma, NEUTRAL, big, big)

    def best(quotes, side):
        prices = [q.price_ticks for q in quotes if q.side == side and q.level == 0]
        sizes = [q.qty_lots for q in quotes if q.side == side and q.level == 0]
        return (prices[0], sizes[0]) if prices else (None, 0)

    (bp_lo, bs_lo), (bp_hi, bs_hi) = best(q_lo, BUY), best(q_hi, BUY)
    (ap_lo, as_lo), (ap_hi, as_hi) = best(q_lo, SELL), best(q_hi, SELL)
    if bp_lo is not None and bp_hi is not None:
        assert bp_hi <= bp_lo
    if ap_lo is not None and ap_hi is not None:
        assert ap_hi <= ap_lo
    assert bs_hi <= bs_lo and as_hi >= as_lo


def test_signal_is_clamped_and_ignored_when_stale_or_broken():
    kw = dict(max_shift_bps=5.0, min_spread_scale=0.7, max_spread_scale=1.5, max_widen_bps=8.0)
    now = 10_000_000_000
    wild = Signal(ts_ns=now, fair_shift_bps=50.0, spread_scale=0.1, bid_size_scale=9, ask_size_scale=-1,
                  bid_widen_bps=30.0, ask_widen_bps=-4.0, fair_from_mid=True)
    got = clamped(wild, **kw)
    assert (got.fair_shift_bps, got.spread_scale, got.bid_size_scale, got.ask_size_scale) == (5.0, 0.7, 2.0, 0.0)
    assert (got.bid_widen_bps, got.ask_widen_bps, got.fair_from_mid, got.ts_ns) == (8.0, 0.0, True, now)
    assert clamped(Signal(ts_ns=now, bid_widen_bps=float("inf")), **kw) is NEUTRAL
    assert clamped(Signal(ts_ns=now, fair_shift_bps=float("nan")), **kw) is NEUTRAL
    assert is_current(Signal(ts_ns=now - 1_000_000_000), now, max_age_ms=1000)
    assert not is_current(Signal(ts_ns=now - 1_000_000_001), now, max_age_ms=1000)
    assert not is_current(Signal(ts_ns=now + 1), now, max_age_ms=1000)


def test_signal_shifts_quotes():
    cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "levels": 1, "half_spread_bps": 5.0})
    top = Top(0.4000, 0.4010, 100, 100)
    flat = build_ladder(cfg, GRID, top, 0.0, 0.0, NEUTRAL, 1e9, 1e9)
    up = build_ladder(cfg, GRID, top, 0.0, 0.0, Signal(0, fair_shift_bps=5.0), 1e9, 1e9)
    assert [q.price_ticks for q in up] > [q.price_ticks for q in flat]


def test_a_side_at_risk_steps_back_alone_and_a_pulled_side_is_not_quoted():
    cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "levels": 2, "half_spread_bps": 5.0,
                                 "fair_value": "mid"})
    top = Top(0.4000, 0.4010, 100, 100)

    def prices(signal):
        quotes = build_ladder(cfg, GRID, top, 0.0, 0.0, signal, 1e9, 1e9)
        return ([q.price_ticks for q in quotes if q.side == BUY], [q.price_ticks for q in quotes if q.side == SELL])

    bids, asks = prices(NEUTRAL)
    wide_bids, same_asks = prices(Signal(0, bid_widen_bps=5.0))  # 5 bps of 0.4005 = 2 ticks
    assert [b - w for b, w in zip(bids, wide_bids, strict=True)] == [2, 2] and same_asks == asks
    same_bids, wide_asks = prices(Signal(0, ask_widen_bps=5.0))
    assert [w - a for a, w in zip(asks, wide_asks, strict=True)] == [2, 2] and same_bids == bids
    no_bids, asks_left = prices(Signal(0, bid_size_scale=0.0))
    assert no_bids == [] and asks_left == asks


def test_the_signals_fair_value_replaces_the_microprice():
    """A model's expected move is a forecast of the mid that already saw the book's lean: with
    `fair_from_mid` the shift is taken from the mid, so the lean is not counted twice."""
    cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "levels": 1, "half_spread_bps": 5.0,
                                 "fair_value": "microprice"})
    heavy_bid = Top(0.4000, 0.4010, 10_000, 100)  # microprice near the ask
    mid_cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "levels": 1, "half_spread_bps": 5.0,
                                     "fair_value": "mid"})
    from_mid = build_ladder(cfg, GRID, heavy_bid, 0.0, 0.0, Signal(0, fair_shift_bps=2.0, fair_from_mid=True), 1e9,
                            1e9)
    assert from_mid == build_ladder(mid_cfg, GRID, heavy_bid, 0.0, 0.0, Signal(0, fair_shift_bps=2.0), 1e9, 1e9)
    assert from_mid != build_ladder(cfg, GRID, heavy_bid, 0.0, 0.0, Signal(0, fair_shift_bps=2.0), 1e9, 1e9)


@pytest.mark.parametrize("raw, needle", [
    ({"instrument_id": "SEI/USDC.SEI", "levelz": 2}, "unknown key `strategy.levelz`"),
    ({"instrument_id": "SEI/USDC.SEI", "levels": "3"}, "levels"),
    ({"instrument_id": "SEI/USDC.SEI", "max_position": -1}, "max_position"),
    ({"instrument_id": "SEI/USDC.SEI", "spread_model": "magic"}, "spread_model"),
    ({"levels": 2}, "instrument_id"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_adverse_edge": 1.0}, "signal_adverse_edge"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_adverse_release": 0.5}, "signal_adverse_release"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_pull_edge": 0.3}, "signal_pull_edge"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_adverse_widen_bps": -1.0}, "signal_adverse_widen_bps"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_fair_skew": "yes"}, "signal_fair_skew"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_tighten_min_flat": 1.0}, "signal_tighten_min_flat"),
    ({"instrument_id": "SEI/USDC.SEI", "signal_confidence": 0.5}, "unknown key `strategy.signal_confidence`"),
])
def test_strategy_config_rejects_bad_input(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_strategy_config(raw)


def test_strategy_config_is_frozen():
    cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI"})
    with pytest.raises(AttributeError):
        cfg.levels = 9


quotes_st = st.builds(Quote, side=st.sampled_from([BUY, SELL]), price_ticks=st.integers(3990, 4010),
                      qty_lots=st.integers(1, 50), level=st.just(0))


@settings(max_examples=300, deadline=None)
@given(desired=st.lists(quotes_st, max_size=6), resting=st.lists(quotes_st, max_size=6),
       hysteresis=st.integers(0, 3), tolerance=st.floats(0, 0.9))
def test_kept_orders_never_take_more_risk_than_the_quotes_they_stand_in_for(desired, resting, hysteresis, tolerance):
    orders = [Resting(i, q.side, q.price_ticks, q.qty_lots) for i, q in enumerate(resting)]
    keep, send = match_ladder(desired, orders, hysteresis, tolerance)
    assert len(set(keep)) == len(keep)
    assert len(keep) + len(send) == len(desired)
    kept = [orders[k] for k in keep]
    served = list(desired)
    for q in send:
        served.remove(q)
    # the kept orders can be paired one-to-one with the quotes they serve, within the rules
    for side, sign in ((BUY, 1), (SELL, -1)):
        ks = sorted((o for o in kept if o.side == side), key=lambda o: -sign * o.price_ticks)
        qs = sorted((q for q in served if q.side == side), key=lambda q: -sign * q.price_ticks)
        assert len(ks) == len(qs)
        assert sum(o.qty_lots for o in ks) <= sum(q.qty_lots for q in qs)
        for o, q in zip(ks, qs, strict=True):
            assert 0 <= sign * (q.price_ticks - o.price_ticks) <= hysteresis


def _match_ladder_reference(desired, resting, hysteresis_ticks, size_tolerance):
    """match_ladder as first written (key functions and list.remove): the rewrite must give the
    same keeps and sends in the same order, as the orders it sends are numbered in that order."""
    keep, send = [], []
    for side, sign in ((BUY, 1), (SELL, -1)):
        pool = sorted((r for r in resting if r.side == side), key=lambda r: -sign * r.price_ticks)
        for quote in sorted((q for q in desired if q.side == side), key=lambda q: -sign * q.price_ticks):
            lo_lots = math.ceil(quote.qty_lots * (1 - size_tolerance) - 1e-9)
            found = None
            for r in pool:
                behind = sign * (quote.price_ticks - r.price_ticks)
                if 0 <= behind <= hysteresis_ticks and lo_lots <= r.qty_lots <= quote.qty_lots:
                    found = r
                    break
            if found is None:
                send.append(quote)
            else:
                pool.remove(found)
                keep.append(found.key)
    return keep, send


@settings(max_examples=500, deadline=None)
@given(desired=st.lists(quotes_st, max_size=8), resting=st.lists(quotes_st, max_size=8),
       hysteresis=st.integers(0, 3), tolerance=st.floats(0, 0.9))
def test_match_ladder_keeps_and_sends_in_the_reference_order(desired, resting, hysteresis, tolerance):
    orders = [Resting(i, q.side, q.price_ticks, q.qty_lots) for i, q in enumerate(resting)]
    assert match_ladder(desired, orders, hysteresis, tolerance) == _match_ladder_reference(
        desired, orders, hysteresis, tolerance)


def test_hysteresis_keeps_a_ladder_that_lags_one_tick_but_moves_one_that_is_too_aggressive():
    ladder = lambda top: [Quote(BUY, top - i, 10, i) for i in range(3)]  # noqa: E731
    resting = [Resting(k, BUY, 4000 - k, 10) for k in range(3)]
    keep, send = match_ladder(ladder(4001), resting, 1, 0.0)  # fair moved up: ours lag by a tick
    assert sorted(keep) == [0, 1, 2] and send == []
    keep, send = match_ladder(ladder(3999), resting, 1, 0.0)  # fair moved down: 4000 is too aggressive
    assert sorted(keep) == [1, 2] and [q.price_ticks for q in send] == [3997]
    keep, send = match_ladder(ladder(4001), resting, 0, 0.0)  # no hysteresis: exact matches only
    assert sorted(keep) == [0, 1] and [q.price_ticks for q in send] == [4001]


def test_the_strategy_quotes_on_its_latest_signal_only_while_it_is_current():
    """The strategy clamps each signal once and then only checks its age, book batch by book batch:
    a stale or future signal is neutral, and a new signal replaces the clamped one."""
    from strategies.market_maker import MarketMaker

    cfg = MarketMakerConfig(instrument_id="SEI/USDC.SEI", signal_max_age_ms=1000, signal_max_shift_bps=5.0)
    strategy = MarketMaker(cfg)

    class Latest:
        signal: Signal | None = None

        def latest(self, ts_ns):
            return self.signal

    source = strategy.signal_source = Latest()
    t = 10_000_000_000
    assert strategy._signal(t) is NEUTRAL
    source.signal = Signal(ts_ns=t, fair_shift_bps=50.0)
    first = strategy._signal(t)
    assert first.fair_shift_bps == 5.0
    assert strategy._signal(t + 1_000_000_000) is first  # at the age limit: still current
    assert strategy._signal(t + 1_000_000_001) is NEUTRAL  # older: neutral
    assert strategy._signal(t - 1) is NEUTRAL  # from the future
    source.signal = Signal(ts_ns=t + 2_000_000_000, fair_shift_bps=-2.0)
    assert strategy._signal(t + 2_000_000_000).fair_shift_bps == -2.0


def test_a_quiet_check_holds_only_until_an_order_ages_out_or_the_signal_turns():
    """`_needs_requote` remembers a "no" for the same top and signal (the requote timer's ticks
    between book batches): it must still say yes the moment an order ages out, the signal goes
    stale, or a signal stamped ahead of the clock becomes current."""
    from strategies.market_maker import BUY, MarketMaker, WorkingOrder
    from strategies.quoting import signal_fair

    cfg = MarketMakerConfig(instrument_id="SEI/USDC.SEI", signal_max_age_ms=1000, signal_max_shift_bps=5.0,
                            max_order_age_secs=30.0)
    s = 1_000_000_000
    t = 100 * s
    top = Top(0.5000, 0.5002, 1000.0, 1000.0)

    class Latest:
        signal: Signal | None = None

        def latest(self, ts_ns):
            return self.signal

    def quiet_strategy(signal: Signal | None, submitted: int) -> MarketMaker:
        strategy = MarketMaker(cfg)
        strategy.signal_source = Latest()
        strategy.signal_source.signal = signal
        strategy.dirty = False
        strategy.orders = {"O-1": WorkingOrder(BUY, 5000, 200.0, submitted)}
        strategy.last_quote_fair = signal_fair(top, cfg.fair_value, strategy._signal(t))
        return strategy

    aged = quiet_strategy(None, submitted=t - 29 * s)  # ages out at t + 1 s
    assert not aged._needs_requote(top, t)
    assert not aged._needs_requote(top, t + s)  # at the age limit
    assert aged._needs_requote(top, t + s + 1)

    stale = quiet_strategy(Signal(ts_ns=t, fair_shift_bps=3.0), submitted=t)  # stale after t + 1 s
    assert not stale._needs_requote(top, t)
    assert not stale._needs_requote(top, t + s)
    assert stale._needs_requote(top, t + s + 1)  # neutral now: fair value moved by 3 bps

    ahead = quiet_strategy(Signal(ts_ns=t + 5, fair_shift_bps=3.0), submitted=t)  # neutral until t + 5
    assert not ahead._needs_requote(top, t)
    assert not ahead._needs_requote(top, t + 4)
    assert ahead._needs_requote(top, t + 5)

    moved = quiet_strategy(None, submitted=t)
    assert not moved._needs_requote(top, t)
    # a new top of book (the next batch): checked afresh, not answered from the last "no"
    assert moved._needs_requote(Top(0.5010, 0.5012, 1000.0, 1000.0), t)
    assert not moved._needs_requote(Top(0.5000, 0.5002, 1000.0, 1000.0), t)  # equal values, new object


def test_the_top_of_book_is_read_again_whenever_the_book_changes():
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.data import BookOrder, OrderBookDelta
    from nautilus_trader.model.enums import BookAction, BookType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity

    from strategies.market_maker import MarketMaker

    iid = InstrumentId.from_str("SEI/USDC.SEI")
    book = OrderBook(iid, BookType.L2_MBP)

    def put(side, price, size, ts):
        order = BookOrder(side, Price.from_str(price), Quantity.from_str(size), 0)
        book.apply_delta(OrderBookDelta(iid, BookAction.UPDATE, order, 0, 0, ts, ts))

    put(OrderSide.BUY, "0.5000", "100", 1)
    put(OrderSide.SELL, "0.5002", "100", 1)
    strategy = MarketMaker(MarketMakerConfig(instrument_id="SEI/USDC.SEI"))
    strategy.book = book
    first = strategy._top()
    assert first == Top(0.5, 0.5002, 100.0, 100.0) and strategy._top() is first  # unchanged: read once
    put(OrderSide.BUY, "0.5000", "40", 1)  # same time, new size at the touch
    assert strategy._top() == Top(0.5, 0.5002, 40.0, 100.0)
    put(OrderSide.SELL, "0.5001", "5", 2)
    assert strategy._top() == Top(0.5, 0.5001, 40.0, 5.0)
    put(OrderSide.BUY, "0.5001", "7", 3)  # a locked book (bid at the ask) has no top to quote on
    assert strategy._top() is None
    book.apply_delta(OrderBookDelta(iid, BookAction.DELETE, BookOrder(
        OrderSide.SELL, Price.from_str("0.5001"), Quantity.from_str("0"), 0), 0, 0, 4, 4))
    assert strategy._top() == Top(0.5001, 0.5002, 7.0, 100.0)


def _clamp_reference(s: Signal, shift: float, lo: float, hi: float, widen: float) -> Signal:
    """Clamping spelled out field by field: neutral unless finite, then each field into its bounds."""
    fields = (s.fair_shift_bps, s.spread_scale, s.bid_size_scale, s.ask_size_scale, s.bid_widen_bps, s.ask_widen_bps)
    if not all(math.isfinite(f) for f in fields):
        return NEUTRAL
    return Signal(s.ts_ns, min(max(s.fair_shift_bps, -shift), shift), min(max(s.spread_scale, lo), hi),
                  min(max(s.bid_size_scale, 0.0), 2.0), min(max(s.ask_size_scale, 0.0), 2.0),
                  min(max(s.bid_widen_bps, 0.0), widen), min(max(s.ask_widen_bps, 0.0), widen), s.fair_from_mid)


def _near(lo: float, hi: float):
    """Values around [lo, hi]: mostly inside (every field in bounds at once is the common case),
    its edges, just outside, and the non-finite."""
    return st.one_of(st.floats(lo, hi), st.floats(lo - 1, hi + 1),
                     st.sampled_from([lo, hi, -0.0, float("nan"), float("inf"), -float("inf")]))


@settings(max_examples=500, deadline=None)
@given(fields=st.tuples(_near(-5.0, 5.0), _near(0.5, 1.5), _near(0.0, 2.0), _near(0.0, 2.0), _near(0.0, 2.0),
                        _near(0.0, 2.0)), from_mid=st.booleans())
def test_clamping_keeps_an_in_bounds_signal_and_clamps_the_rest(fields, from_mid):
    raw = Signal(123, *fields, from_mid)
    kw = {"max_shift_bps": 5.0, "min_spread_scale": 0.5, "max_spread_scale": 1.5, "max_widen_bps": 2.0}
    got = clamped(raw, **kw)
    want = _clamp_reference(raw, 5.0, 0.5, 1.5, 2.0)
    assert got == want and [math.copysign(1, x) for x in got] == [math.copysign(1, x) for x in want]
