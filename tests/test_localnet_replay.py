"""The tape replay on a real Clob: msgs executed as the localnet's blocks run them (the taker's,
then the maker's, then everyone else's), over the bundled sample and over hand-built tapes whose
queue outcomes were worked out by hand from the replay's rules."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nautilus_trader.model.data import BookOrder, OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.objects import Price, Quantity
from tapebuilder import MS, T0, Block, write_tape

from adapters.sei.localnet.clob import Clob, ContractError, Market
from adapters.sei.localnet.replay import TapeBlock, TapeReplay
from data.catalog import open_tape, write_catalog
from data.instrument import sei_usdc

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
MAKER, TAKER, FLASH = "maker", "taker", "flashmm"
DECIMAL_TEXT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def market(**changes) -> Market:
    spec = dict(
        base_denom="usei", quote_denom="uusdc", base_decimals=6, quote_decimals=6,
        tick_size=Decimal("0.0001"), lot_size=Decimal("0.1"), min_quantity=Decimal("0.1"),
        maker_fee_rate=Decimal("0"), taker_fee_rate=Decimal("0.0005"),
    )
    return Market(**{**spec, **changes})


def place(coid: str, side: str, price: str, quantity: str) -> dict:
    return {"place_order": {"client_order_id": coid, "side": side, "price": price, "quantity": quantity,
                            "post_only": False}}


class Localnet:
    """A Clob driven block by block in the localnet's order; every msg and event is kept."""

    def __init__(self, tape_path: Path, mkt: Market | None = None, **replay_args) -> None:
        self.clob = Clob(mkt or market())
        for owner in (MAKER, TAKER, FLASH):
            self.clob.execute(owner, {"deposit": {}}, 1, funds=(("usei", 10**18), ("uusdc", 10**18)))
        self.replay = TapeReplay(open_tape(tape_path), maker=MAKER, taker=TAKER, **replay_args)
        self.height = 1
        self.maker_msgs: list[list[dict]] = []  # per block
        self.taker_msgs: list[list[dict]] = []
        self.events: list = []

    def block(self, others: list[tuple[str, dict]] = ()) -> tuple[TapeBlock, list]:
        """Run the next tape block, then `others` (the mempool). Returns the block and its events."""
        block = self.replay.advance()
        assert block is not None, "the tape ended early"
        self.height += 1
        h, events = self.height, []
        self.taker_msgs.append(self.replay.taker_msgs(block, self.clob, h))
        for msg in self.taker_msgs[-1]:
            events += self.clob.execute(TAKER, msg, h)
        self.maker_msgs.append(self.replay.maker_msgs(block, self.clob, h))
        for msg in self.maker_msgs[-1]:
            events += self.clob.execute(MAKER, msg, h)
        for sender, msg in others:
            try:
                events += self.clob.execute(sender, msg, h)
            except ContractError:  # a failed tx of someone else's, as a chain would include it
                pass
        self.events += events
        return block, events

    def orders(self, owner: str) -> list[dict]:
        return self.clob.query({"open_orders": {"owner": owner, "limit": 500}}, self.height)["orders"]

    def book_of(self, owner: str) -> dict[str, dict[Decimal, Decimal]]:
        """`owner`'s open orders aggregated per price."""
        book: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
        for o in self.orders(owner):
            side, price = book[o["side"]], Decimal(o["price"])
            side[price] = side.get(price, Decimal(0)) + Decimal(o["remaining_quantity"])
        return book

    def tape_book(self, block: TapeBlock) -> dict[str, dict[Decimal, Decimal]]:
        p, s = self.replay.price_precision, self.replay.size_precision
        return {
            side: {Decimal(price).scaleb(-p): Decimal(size).scaleb(-s) for price, size in levels}
            for side, levels in (("buy", block.bids), ("sell", block.asks))
        }

    def queue(self, side: str, price: str) -> list[tuple[str, Decimal]]:
        """Every owner's orders at one price in queue order, from the maker's and FLASH's books."""
        orders = [o | {"owner": owner} for owner in (MAKER, FLASH) for o in self.orders(owner)]
        at = [o for o in orders if o["side"] == side and Decimal(o["price"]) == Decimal(price)]
        return [(o["owner"], Decimal(o["remaining_quantity"])) for o in sorted(at, key=lambda o: int(o["order_id"]))]


def of_type(events: list, name: str) -> list[dict[str, str]]:
    return [dict(e.attributes) for e in events if e.type == f"wasm-{name}"]


def check_msgs(net: Localnet, max_actions: int) -> None:
    """What the replay's msgs must be: small batches, a block's cancels before all its places (so
    the maker never meets its own stale orders), valid decimal texts, unique valid ids."""
    ids = []
    for msgs in net.maker_msgs + net.taker_msgs:
        assert all(0 < len(m["batch"]["actions"]) <= max_actions for m in msgs)
        kinds = [next(iter(a)) for m in msgs for a in m["batch"]["actions"]]
        order = {"cancel_order": 0, "reduce_order": 0, "place_order": 1}
        assert [order[k] for k in kinds] == sorted(order[k] for k in kinds), kinds  # cancels and trims first
        for a in (a for m in msgs for a in m["batch"]["actions"] if "place_order" in a):
            p = a["place_order"]
            assert DECIMAL_TEXT.fullmatch(p["price"]) and DECIMAL_TEXT.fullmatch(p["quantity"]), p
            assert CLIENT_ORDER_ID.fullmatch(p["client_order_id"]), p
            assert p["post_only"] is False
            ids.append(p["client_order_id"])
    assert not [k for msgs in net.taker_msgs for m in msgs for a in m["batch"]["actions"] for k in a
                if k != "place_order"]
    assert len(ids) == len(set(ids))
    assert not of_type(net.events, "rejected")
    assert not [e for e in of_type(net.events, "cancelled") if e["reason"] == "self_trade" and e["owner"] != FLASH]


# -- the bundled sample ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run() -> tuple[Localnet, list[tuple[TapeBlock, list]], list]:
    """300 sample blocks, with the maker's book and the whole Clob book read after each."""
    net = Localnet(SAMPLE)
    blocks, views = [], []
    for _ in range(300):
        block, events = net.block()
        blocks.append((block, events))
        views.append((net.book_of(MAKER), net.tape_book(block), net.orders(TAKER),
                      net.clob.query({"book": {"depth": 100}}, net.height)))
    return net, blocks, views


def test_sample_maker_holds_the_tape_book_after_every_block(sample_run) -> None:
    net, blocks, views = sample_run
    for (maker, tape, taker_orders, book), (block, _) in zip(views, blocks, strict=True):
        assert maker == tape, f"block {block.index}"
        assert not taker_orders
        clob_book = {side: {Decimal(lv["price"]): Decimal(lv["quantity"]) for lv in book[key]}
                     for side, key in (("buy", "bids"), ("sell", "asks"))}
        assert clob_book == tape  # no one else trades here: the Clob's book is the tape's
    assert [b.index for b, _ in blocks] == list(range(300))
    assert all(b.ts_ns > a.ts_ns for (a, _), (b, _) in zip(blocks, blocks[1:], strict=False))
    check_msgs(net, 64)
    assert max(len(m["batch"]["actions"]) for msgs in net.maker_msgs for m in msgs) > 1


def test_sample_trades_replay_as_taker_fills_at_the_tape_price(sample_run) -> None:
    net, blocks, _ = sample_run
    p, s = net.replay.price_precision, net.replay.size_precision
    n_trades = 0
    for block, events in blocks:
        # This sample's prints always find the previous book's liquidity: each trades whole, at its price.
        want: Counter = Counter()
        for t in block.trades:
            want[(t.side, Decimal(t.price).scaleb(-p))] += Decimal(t.size).scaleb(-s)
        got: Counter = Counter()
        for t in of_type(events, "trade"):
            assert t["taker"] == TAKER and t["maker"] == MAKER
            got[(t["taker_side"], Decimal(t["price"]))] += Decimal(t["quantity"])
        assert got == want, f"block {block.index}"
        n_trades += len(block.trades)
    assert n_trades > 20


def test_sample_within_a_tight_order_cap() -> None:
    """The sample's 40 levels in at most 50 orders: merges every few blocks, the book still exact."""
    net = Localnet(SAMPLE, mkt=market(max_open_orders=50), max_batch_actions=16)
    counts = []
    for _ in range(150):
        block, _ = net.block()
        counts.append(len(net.orders(MAKER)))
        assert net.book_of(MAKER) == net.tape_book(block), f"block {block.index}"
    assert max(counts) == 50 and counts.count(50) > 50  # the cap binds: growth keeps needing merges
    check_msgs(net, 16)


def test_replay_is_deterministic(sample_run) -> None:
    first, _, _ = sample_run
    again = Localnet(SAMPLE)
    for _ in range(300):
        again.block()
    assert again.maker_msgs == first.maker_msgs and again.taker_msgs == first.taker_msgs
    assert again.events == first.events


# -- hand-built tapes ------------------------------------------------------------------------------


def book(bids: dict[str, float], asks: dict[str, float] | None = None, trades=()) -> Block:
    """One block's book (one ask unless told) and prints; `tape` stamps the blocks 400 ms apart."""
    return Block(0, dict(bids), dict(asks if asks is not None else {"0.4010": 100.0}), list(trades))


def tape(tmp_path: Path, *blocks: Block) -> Path:
    return write_tape(tmp_path / "tape", [Block(i * 400, b.bids, b.asks, b.trades) for i, b in enumerate(blocks)])


def test_growth_joins_behind_a_third_party_and_a_shrink_cuts_it_first(tmp_path) -> None:
    net = Localnet(tape(
        tmp_path,
        book({"0.4000": 100.0}),
        book({"0.4000": 300.0}),                                  # +200: behind FLASH's order
        book({"0.4000": 150.0}),                                  # -150: LIFO, from the 200
        book({"0.4000": 50.0}, trades=[("sell", "0.4000", 100.0)]),
        book({"0.4000": 20.0}, trades=[("sell", "0.4000", 30.0)]),
    ))
    net.block(others=[(FLASH, place("f1", "buy", "0.4000", "50"))])
    assert net.queue("buy", "0.4000") == [(MAKER, 100), (FLASH, 50)]
    net.block()
    assert net.queue("buy", "0.4000") == [(MAKER, 100), (FLASH, 50), (MAKER, 200)]
    _, events = net.block()
    # The shrink took the 200 behind FLASH and trimmed the order it cut into in place: FLASH kept its place.
    assert net.queue("buy", "0.4000") == [(MAKER, 100), (FLASH, 50), (MAKER, 50)]
    assert of_type(events, "cancelled") == []
    assert [(e["quantity"], e["remaining_quantity"]) for e in of_type(events, "reduced")] == [("150", "50")]
    _, events = net.block()
    # The 100 print trades the maker's older order, queued ahead of FLASH; FLASH is not filled.
    assert [(t["maker"], t["quantity"]) for t in of_type(events, "trade")] == [(MAKER, "100")]
    assert net.queue("buy", "0.4000") == [(FLASH, 50), (MAKER, 50)]
    _, events = net.block()
    # FLASH is now first: the next print fills it, and the maker sheds its newest 30 to match the tape.
    assert [(t["maker"], t["quantity"], t["price"]) for t in of_type(events, "trade")] == [(FLASH, "30", "0.4")]
    assert net.queue("buy", "0.4000") == [(FLASH, 20), (MAKER, 20)]
    check_msgs(net, 64)


def test_a_shrink_of_the_order_ahead_trims_it_in_place_and_never_lets_a_third_party_jump(tmp_path) -> None:
    net = Localnet(tape(
        tmp_path,
        book({"0.4000": 100.0}),
        book({"0.4000": 90.0}),                                   # -10: only the maker order ahead of FLASH
        book({"0.4000": 50.0}, trades=[("sell", "0.4000", 40.0)]),
    ))
    net.block(others=[(FLASH, place("f1", "buy", "0.4000", "50"))])
    assert net.queue("buy", "0.4000") == [(MAKER, 100), (FLASH, 50)]
    net.block()
    assert net.queue("buy", "0.4000") == [(MAKER, 90), (FLASH, 50)]
    _, events = net.block()
    assert [(t["maker"], t["quantity"]) for t in of_type(events, "trade")] == [(MAKER, "40")]
    assert net.orders(FLASH)  # still queued: the print took the maker's size ahead of it


def test_a_third_party_ask_is_filled_when_the_tape_bid_moves_through_it(tmp_path) -> None:
    net = Localnet(tape(
        tmp_path,
        book({"0.4000": 100.0}),
        book({"0.4006": 100.0, "0.4000": 100.0}),
        book({"0.4006": 100.0, "0.4000": 90.0}),
        book({"0.4006": 130.0, "0.4000": 90.0}),
        book({"0.4006": 20.0, "0.4000": 90.0}),
        book({"0.4006": 60.0, "0.4000": 90.0}),
    ))
    net.block(others=[(FLASH, place("f1", "sell", "0.4005", "30"))])
    _, events = net.block()
    trades = of_type(events, "trade")
    assert [(t["maker"], t["taker"], t["taker_side"], t["price"], t["quantity"]) for t in trades] == [
        (FLASH, MAKER, "buy", "0.4005", "30")
    ]
    assert not net.orders(FLASH)
    assert net.book_of(MAKER)["buy"] == {Decimal("0.4006"): 70, Decimal("0.4"): 100}
    # The 30 FLASH took is used up, as in the backtest's fill model: the tape's unchanged 100 is
    # not topped up again, its growth to 130 adds only the 30 new, and a shrink to 20 leaves nothing
    # (taken is capped by the level, 20) until the level grows again.
    for held in ({Decimal("0.4006"): 70, Decimal("0.4"): 90}, {Decimal("0.4006"): 100, Decimal("0.4"): 90},
                 {Decimal("0.4"): 90}, {Decimal("0.4006"): 40, Decimal("0.4"): 90}):
        net.block()
        assert net.book_of(MAKER)["buy"] == held
    check_msgs(net, 64)


def test_a_print_larger_than_the_book_takes_what_rests_and_never_rests(tmp_path) -> None:
    net = Localnet(tape(
        tmp_path,
        book({"0.4000": 100.0, "0.3999": 50.0}),
        book({"0.3998": 500.0}, trades=[("sell", "0.3999", 400.0), ("sell", "0.3998", 10.0)]),
    ))
    net.block(others=[(FLASH, place("f1", "buy", "0.4001", "20"))])
    _, events = net.block()
    # 400 at 0.3999 or better: FLASH's 20 at 0.4001 first, then the maker's 100 and 50: 170 in all.
    # Nothing rests at 0.3998 before the maker syncs, so the 10 there is skipped.
    assert [(t["maker"], t["price"], t["quantity"]) for t in of_type(events, "trade")] == [
        (FLASH, "0.4001", "20"), (MAKER, "0.4", "100"), (MAKER, "0.3999", "50")
    ]
    assert [a["place_order"]["quantity"] for m in net.taker_msgs[-1] for a in m["batch"]["actions"]] == ["170"]
    assert not net.orders(TAKER)
    check_msgs(net, 64)


def test_a_crossed_tape_book_is_held_without_the_overlap(tmp_path) -> None:
    net = Localnet(tape(
        tmp_path,
        book({"0.4000": 100.0}, {"0.4010": 100.0}),
        book({"0.4005": 10.0, "0.4000": 100.0}, {"0.4003": 20.0, "0.4010": 100.0}),
        book({"0.4000": 100.0}, {"0.4003": 20.0, "0.4010": 100.0}),
    ))
    for _ in range(2):
        net.block()
    assert net.book_of(MAKER) == {"buy": {Decimal("0.4"): 100}, "sell": {Decimal("0.401"): 100}}
    block, _ = net.block()
    assert net.book_of(MAKER) == net.tape_book(block)
    check_msgs(net, 64)


def _write_raw(path: Path, books: list[tuple[int, list[tuple]]], trades: list[tuple[int, str, str, float]]) -> Path:
    """A tape whose prints need not share a timestamp with a book batch (tapebuilder's always do).
    `books`: (t_ms, [(action, side, price, size), ...]) per batch."""
    inst = sei_usdc()
    deltas = []
    for t_ms, batch in books:
        ts = T0 + t_ms * MS
        for i, (action, side, px, size) in enumerate(batch):
            flags = int(RecordFlag.F_LAST) if i == len(batch) - 1 else 0
            order = BookOrder(side, Price.from_str(px), Quantity(size, 1), 0)
            deltas.append(OrderBookDelta(inst.id, action, order, flags, len(deltas) + 1, ts, ts))
    ticks = [
        TradeTick(inst.id, Price.from_str(px), Quantity(size, 1),
                  AggressorSide.BUYER if side == "buy" else AggressorSide.SELLER, TradeId(f"T{i}"),
                  T0 + t_ms * MS, T0 + t_ms * MS)
        for i, (t_ms, side, px, size) in enumerate(trades)
    ]
    return write_catalog(path, inst, deltas, ticks, {"synthetic": True})


def test_blocks_follow_timestamps_trades_alone_or_book_alone(tmp_path) -> None:
    add, update = BookAction.ADD, BookAction.UPDATE
    path = _write_raw(
        tmp_path / "tape",
        [(0, [(add, OrderSide.BUY, "0.4000", 100.0), (add, OrderSide.SELL, "0.4010", 100.0)]),
         (800, [(update, OrderSide.BUY, "0.4000", 60.0)])],
        [(400, "sell", "0.4000", 40.0), (400, "buy", "0.4010", 25.0)],
    )
    net = Localnet(path)
    first, _ = net.block()
    second, events = net.block()
    assert second.ts_ns == T0 + 400 * MS and (second.bids, second.asks) == (first.bids, first.asks)
    assert [(t.side, t.price, t.size) for t in second.trades] == [("buy", 4010, 250), ("sell", 4000, 400)]
    assert sorted((t["taker_side"], t["price"], t["quantity"]) for t in of_type(events, "trade")) == [
        ("buy", "0.401", "25"), ("sell", "0.4", "40")
    ]
    # The tape published no book after these prints: the maker restores the book it last showed.
    assert net.book_of(MAKER) == net.tape_book(second)
    assert net.tape_book(second) == {"buy": {Decimal("0.4"): 100}, "sell": {Decimal("0.401"): 100}}
    third, _ = net.block()
    assert (third.ts_ns, third.trades, third.bids) == (T0 + 800 * MS, (), ((4000, 600),))
    assert net.book_of(MAKER) == net.tape_book(third)
    assert net.replay.advance() is None
    check_msgs(net, 64)


def test_a_window_inside_the_tape_starts_from_its_snapshot(tmp_path) -> None:
    path = tape(
        tmp_path,
        book({"0.4000": 100.0}), book({"0.4000": 120.0, "0.3999": 5.0}), book({"0.4000": 130.0}),
        book({"0.4000": 140.0}),
    )
    net = Localnet(path, start_ns=T0 + 800 * MS, end_ns=T0 + 800 * MS)
    seed, _ = net.block()
    assert (seed.index, seed.ts_ns) == (0, T0 + 800 * MS - 1)
    assert seed.bids == ((4000, 1200), (3999, 50))  # the book before the window
    block, _ = net.block()
    assert (block.index, block.ts_ns, block.bids) == (1, T0 + 800 * MS, ((4000, 1300),))
    assert net.replay.advance() is None
    assert net.book_of(MAKER) == net.tape_book(block)


def test_order_cap_merges_levels_where_the_maker_is_alone_first(tmp_path) -> None:
    # Two bid levels grow every block; FLASH rests at the deeper one. With 6 orders allowed the
    # maker must merge: the level it holds alone goes first though it is nearer the touch.
    grow = [book({"0.4000": 10.0 * (i + 1), "0.3999": 10.0 * (i + 1)}) for i in range(4)]
    net = Localnet(tape(tmp_path, *grow), mkt=market(max_open_orders=6))
    net.block(others=[(FLASH, place("f1", "buy", "0.3999", "5"))])
    counts = []
    for _ in range(3):
        block, _ = net.block()
        counts.append(len(net.orders(MAKER)))
        assert net.book_of(MAKER) == net.tape_book(block)
    assert counts == [5, 5, 6]  # the syncs to 30 and 40 needed 7
    assert net.queue("buy", "0.4000") == [(MAKER, 40)]
    assert net.queue("buy", "0.3999") == [(MAKER, 10), (FLASH, 5), (MAKER, 10), (MAKER, 10), (MAKER, 10)]
    check_msgs(net, 64)


def test_order_cap_merges_shared_levels_then_leaves_out_the_deepest(tmp_path) -> None:
    levels = {"0.4000": 10.0, "0.3999": 10.0, "0.3998": 10.0}
    grown = {px: 20.0 for px in levels}
    net = Localnet(tape(tmp_path, book(levels), book(grown), book(grown | {"0.3997": 10.0, "0.3996": 10.0})),
                   mkt=market(max_open_orders=5))
    net.block(others=[(FLASH, place(f"f{i}", "buy", px, "1")) for i, px in enumerate(levels)])
    block, _ = net.block()
    # Three shared levels of two orders each and the ask would be 7 > 5: the deepest two are merged,
    # which puts FLASH ahead of the maker's size there: the price of fitting the cap.
    assert net.queue("buy", "0.4000") == [(MAKER, 10), (FLASH, 1), (MAKER, 10)]
    assert net.queue("buy", "0.3999") == net.queue("buy", "0.3998") == [(FLASH, 1), (MAKER, 20)]
    assert net.book_of(MAKER) == net.tape_book(block)
    net.block()
    # Five bid levels and the ask cannot fit in 5 orders even merged: the deepest bid is left out.
    assert len(net.orders(MAKER)) == 5
    assert net.book_of(MAKER)["buy"] == {
        Decimal("0.4"): 20, Decimal("0.3999"): 20, Decimal("0.3998"): 20, Decimal("0.3997"): 10
    }
    check_msgs(net, 64)


@pytest.mark.parametrize("change, error", [
    ({"tick_size": Decimal("0.00005")}, "tick_size 0.00005 is finer"),
    ({"lot_size": Decimal("0.05"), "min_quantity": Decimal("0.05")}, "lot_size 0.05 is finer"),
    ({"min_quantity": Decimal("1")}, "min_quantity 1 is above its lot_size"),
    ({"lot_size": Decimal("1"), "min_quantity": Decimal("1")}, "of 100.5 at 0.4 is off the market's tick or lot"),
    ({"max_batch_actions": 8}, "max_batch_actions 64 is above the market's 8"),
])
def test_a_market_that_cannot_hold_the_tape_is_refused(tmp_path, change, error) -> None:
    net = Localnet(tape(tmp_path, book({"0.4000": 100.5})), mkt=market(**change))
    with pytest.raises(ValueError, match=re.escape(error)):
        net.block()


def test_bad_arguments_are_refused() -> None:
    t = open_tape(SAMPLE)
    with pytest.raises(ValueError, match="two different"):
        TapeReplay(t, maker="a", taker="a")
    with pytest.raises(ValueError, match="max_batch_actions must be >= 1"):
        TapeReplay(t, maker="a", taker="b", max_batch_actions=0)


# -- invariants over random tapes -------------------------------------------------------------------


@st.composite
def random_tapes(draw):
    """Small uncrossed books around a wandering mid, with prints anywhere near the book."""
    blocks, mid = [], 4000
    for _ in range(draw(st.integers(2, 12))):
        mid += draw(st.integers(-2, 2))
        spread = draw(st.integers(1, 3))
        bids = {f"{(mid - i) / 10_000:.4f}": draw(st.integers(1, 40)) / 10
                for i in range(draw(st.integers(0 if blocks else 1, 3)))}  # the first block holds a book
        asks = {f"{(mid + spread + i) / 10_000:.4f}": draw(st.integers(1, 40)) / 10
                for i in range(draw(st.integers(0, 3)))}
        trades = draw(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(mid - 3, mid + 5),
                                         st.integers(1, 60)), max_size=3))
        trades = [(side, f"{px / 10_000:.4f}", size / 10) for side, px, size in trades]
        if not blocks or (bids, asks) != (blocks[-1].bids, blocks[-1].asks):  # a block must change the book
            blocks.append(Block(len(blocks) * 400, bids, asks, trades))
    return blocks


third_party = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(3995, 4006), st.integers(1, 30)),
                       max_size=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_tapes(), st.integers(1, 5), st.integers(6, 8), st.booleans(), st.data())
def test_random_tapes_keep_the_invariants(blocks, max_actions, cap, with_others, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        net = Localnet(write_tape(Path(tmp) / "tape", blocks), mkt=market(max_open_orders=cap),
                       max_batch_actions=max_actions)
        others_ever = False
        for n in range(len(blocks)):
            others = [(FLASH, place(f"f{n}-{i}", side, f"{px / 10_000:.4f}", f"{size / 10}"))
                      for i, (side, px, size) in enumerate(data.draw(third_party) if with_others else [])]
            block, _ = net.block(others)
            others_ever = others_ever or bool(others)
            view = net.clob.query({"book": {"depth": 100}}, net.height)
            if view["bids"] and view["asks"]:
                assert Decimal(view["bids"][0]["price"]) < Decimal(view["asks"][0]["price"])
            assert not net.orders(TAKER)
            assert len(net.orders(MAKER)) <= cap
            if not others_ever:
                assert net.book_of(MAKER) == net.tape_book(block)
        check_msgs(net, max_actions)
