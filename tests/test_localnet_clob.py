"""The localnet's CLOB against CONTRACT.md: hand-built scenarios whose expected events and balances
were worked out from the spec's settlement rules, then invariants over random message sequences
that no hand-built table could cover (conservation, reserves, an uncrossed book)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sei.localnet.clob import Clob, ContractError, Market

SPEC_MARKET = Market(
    base_denom="usei", quote_denom="uusdc", base_decimals=6, quote_decimals=6,
    tick_size=Decimal("0.0001"), lot_size=Decimal("0.1"), min_quantity=Decimal("0.1"),
    maker_fee_rate=Decimal("0"), taker_fee_rate=Decimal("0.0005"),
)


def place(coid: str, side: str, price: str, quantity: str, post_only: bool = False, expiry: int | None = None) -> dict:
    body: dict[str, Any] = {"client_order_id": coid, "side": side, "price": price, "quantity": quantity,
                            "post_only": post_only}
    if expiry is not None:
        body["expiry_height"] = expiry
    return {"place_order": body}


@dataclass
class Step:
    sender: str
    msg: dict
    height: int = 10
    funds: tuple[tuple[str, int], ...] = ()
    error: str | None = None  # the code the whole transaction must fail with


@dataclass
class Scenario:
    name: str
    deposits: dict[str, tuple[tuple[str, int], ...]]
    steps: list[Step]
    # (type without "wasm-", attributes that must match) for every event of every step, in order.
    events: list[tuple[str, dict[str, str]]]
    balances: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # owner -> denom -> (free, locked)
    book: dict[str, list[tuple[str, str]]] | None = None
    query_height: int = 10
    halted: bool = False


M = 1_000_000

SCENARIOS = [
    Scenario(
        "resting order reserves quote with the taker fee",
        {"alice": (("uusdc", 100 * M),)},
        [Step("alice", place("a1", "buy", "0.4213", "125.5", post_only=True, expiry=50))],
        [("placed", {"order_id": "1", "client_order_id": "a1", "owner": "alice", "side": "buy", "price": "0.4213",
                     "quantity": "125.5", "post_only": "true", "expiry_height": "50"})],
        # ceil(0.4213 * 125.5 * 1.0005 * 1e6) = ceil(52_899_586.575)
        {"alice": {"uusdc": (100 * M - 52_899_587, 52_899_587), "usei": (0, 0)}},
        {"bids": [("0.4213", "125.5")], "asks": []},
    ),
    Scenario(
        "crossing buy fills two makers in price-time order at maker prices",
        {"bob": (("usei", 200 * M),), "carol": (("usei", 100 * M),), "dave": (("uusdc", 100 * M),)},
        [
            Step("bob", place("b1", "sell", "0.4214", "50")),
            Step("carol", place("c1", "sell", "0.4213", "40")),
            Step("bob", place("b2", "sell", "0.4213", "30")),
            Step("dave", place("d1", "buy", "0.4214", "60")),
        ],
        [
            ("placed", {"order_id": "1"}), ("placed", {"order_id": "2"}), ("placed", {"order_id": "3"}),
            ("placed", {"order_id": "4", "side": "buy", "price": "0.4214", "quantity": "60", "post_only": "false"}),
            ("trade", {"trade_id": "1", "price": "0.4213", "quantity": "40", "taker_side": "buy", "maker_order_id": "2",
                       "taker_order_id": "4", "maker": "carol", "taker": "dave"}),
            ("filled", {"order_id": "2", "liquidity": "maker", "trade_id": "1", "price": "0.4213", "quantity": "40",
                        "remaining_quantity": "0", "fee": "0uusdc", "side": "sell", "owner": "carol"}),
            ("filled",
             {"order_id": "4", "liquidity": "taker", "trade_id": "1", "remaining_quantity": "20", "fee": "8426uusdc"}),
            ("trade", {"trade_id": "2", "price": "0.4213", "quantity": "20", "maker_order_id": "3", "maker": "bob"}),
            ("filled",
             {"order_id": "3", "liquidity": "maker", "quantity": "20", "remaining_quantity": "10", "fee": "0uusdc"}),
            ("filled",
             {"order_id": "4", "liquidity": "taker", "quantity": "20", "remaining_quantity": "0", "fee": "4213uusdc"}),
        ],
        {
            # 16_852_000 + 8_426 + 8_426_000 + 4_213 paid; the rest of the 25_296_642 reserve released.
            "dave": {"uusdc": (100 * M - 25_290_639, 0), "usei": (60 * M, 0)},
            "carol": {"uusdc": (16_852_000, 0), "usei": (60 * M, 0)},
            "bob": {"uusdc": (8_426_000, 0), "usei": (120 * M, 60 * M)},
        },
        {"bids": [], "asks": [("0.4213", "10"), ("0.4214", "50")]},
    ),
    Scenario(
        "post-only order that would cross is rejected, not repriced",
        {"alice": (("usei", 10 * M),), "bob": (("uusdc", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10")),
            Step("bob", place("b1", "buy", "0.5", "1", post_only=True), error="post_only_would_cross"),
            Step("bob", place("b1", "buy", "0.4999", "1", post_only=True)),
        ],
        [("placed", {"order_id": "1"}), ("placed", {"order_id": "2", "price": "0.4999"})],
        {"bob": {"uusdc": (10 * M - 500_150, 500_150), "usei": (0, 0)}},
        {"bids": [("0.4999", "1")], "asks": [("0.5", "10")]},
    ),
    Scenario(
        "reduce trims in place: the reserve shrinks and the order keeps its time priority",
        {"alice": (("usei", 10 * M),), "bob": (("usei", 10 * M),), "carol": (("uusdc", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "2")),
            Step("bob", place("b1", "sell", "0.5", "2")),
            Step("alice", {"reduce_order": {"client_order_id": "a1", "quantity": "0.5"}}),
            Step("alice", {"reduce_order": {"order_id": "1", "quantity": "1.5"}}, error="invalid_quantity"),
            Step("alice", {"reduce_order": {"order_id": "1", "quantity": "0.05"}}, error="invalid_quantity"),
            Step("bob", {"reduce_order": {"order_id": "1", "quantity": "0.1"}}, error="order_not_found"),
            Step("carol", place("c1", "buy", "0.5", "1.5")),
        ],
        [
            ("placed", {"order_id": "1"}), ("placed", {"order_id": "2"}),
            ("reduced", {"order_id": "1", "client_order_id": "a1", "owner": "alice", "side": "sell", "price": "0.5",
                         "quantity": "0.5", "remaining_quantity": "1.5"}),
            ("placed", {"order_id": "3"}),
            ("trade", {"maker_order_id": "1", "quantity": "1.5"}),
            ("filled", {"order_id": "1", "remaining_quantity": "0"}), ("filled", {"order_id": "3"}),
        ],
        {"alice": {"usei": (M // 2 * 17, 0)}, "bob": {"usei": (8 * M, 2 * M)}},
        {"bids": [], "asks": [("0.5", "2")]},
    ),
    Scenario(
        "cancel by order_id and by client_order_id releases the reserve",
        {"alice": (("usei", 10 * M), ("uusdc", 10 * M))},
        [
            Step("alice", place("a1", "sell", "0.5", "2")),
            Step("alice", place("a2", "buy", "0.4", "3")),
            Step("alice", {"cancel_order": {"order_id": "1"}}),
            Step("alice", {"cancel_order": {"client_order_id": "a2"}}),
            Step("alice", {"cancel_order": {"client_order_id": "a2"}}, error="order_not_found"),
        ],
        [
            ("placed", {"order_id": "1"}), ("placed", {"order_id": "2"}),
            ("cancelled",
             {"order_id": "1", "client_order_id": "a1", "owner": "alice", "remaining_quantity": "2", "reason": "user"}),
            ("cancelled", {"order_id": "2", "client_order_id": "a2", "remaining_quantity": "3", "reason": "user"}),
        ],
        {"alice": {"usei": (10 * M, 0), "uusdc": (10 * M, 0)}},
        {"bids": [], "asks": []},
    ),
    Scenario(
        "another owner's order is not found",
        {"alice": (("usei", 10 * M),)},
        [Step("alice", place("a1", "sell", "0.5", "2")),
         Step("bob", {"cancel_order": {"order_id": "1"}}, error="order_not_found")],
        [("placed", {"order_id": "1"})],
        book={"bids": [], "asks": [("0.5", "2")]},
    ),
    Scenario(
        "cancel_all cancels the sender's orders only, and succeeds with none",
        {"alice": (("usei", 10 * M),), "bob": (("usei", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "2")),
            Step("bob", place("b1", "sell", "0.6", "2")),
            Step("alice", place("a2", "sell", "0.7", "2")),
            Step("alice", {"cancel_all": {}}),
            Step("alice", {"cancel_all": {}}),
        ],
        [
            ("placed", {}), ("placed", {}), ("placed", {}),
            ("cancelled", {"order_id": "1", "reason": "cancel_all"}),
            ("cancelled", {"order_id": "3", "reason": "cancel_all"}),
        ],
        {"alice": {"usei": (10 * M, 0)}, "bob": {"usei": (8 * M, 2 * M)}},
        {"bids": [], "asks": [("0.6", "2")]},
    ),
    Scenario(
        "client_order_id is unique among open orders only",
        {"alice": (("usei", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "2")),
            Step("alice", place("a1", "sell", "0.6", "2"), error="duplicate_client_order_id"),
            Step("alice", {"cancel_order": {"client_order_id": "a1"}}),
            Step("alice", place("a1", "sell", "0.6", "2")),
        ],
        [("placed", {"order_id": "1"}), ("cancelled", {"order_id": "1"}),
         ("placed", {"order_id": "2", "client_order_id": "a1"})],
    ),
    Scenario(
        "a buy's reserve includes the taker fee",
        {"alice": (("uusdc", 1 * M),)},
        [
            Step("alice", place("a1", "buy", "0.1", "10"), error="insufficient_balance"),  # 1_000_500 > 1_000_000
            Step("alice", place("a1", "buy", "0.1", "9.9")),  # ceil(990_495)
            Step("alice", place("a2", "sell", "0.2", "1"), error="insufficient_balance"),
        ],
        [("placed", {"order_id": "1"})],
        {"alice": {"uusdc": (1 * M - 990_495, 990_495), "usei": (0, 0)}},
    ),
    Scenario(
        "malformed or off-grid orders",
        {"alice": (("uusdc", 10 * M),)},
        [
            Step("alice", place("a1", "buy", "0.41235", "1"), error="invalid_price"),
            Step("alice", place("a1", "buy", "0", "1"), error="invalid_price"),
            Step("alice", place("a1", "buy", "0.4", "1.05"), error="invalid_quantity"),
            Step("alice", place("a1", "buy", "0.4", "0"), error="invalid_quantity"),
            Step("alice", place("a b", "buy", "0.4", "1"), error="invalid_client_order_id"),
            Step("alice", place("a1", "buy", "-0.4", "1"), error="invalid_message"),
            Step("alice", place("a1", "buy", "4e-1", "1"), error="invalid_message"),
            Step("alice", place("a1", "hold", "0.4", "1"), error="invalid_message"),
            Step("alice", {"place_order": {**place("a1", "buy", "0.4", "1")["place_order"], "tif": "ioc"}},
                 error="invalid_message"),
            Step("alice", {"cancel_order": {"order_id": "1", "client_order_id": "a1"}}, error="invalid_message"),
            Step("alice", {"make_coffee": {}}, error="invalid_message"),
            Step("alice", place("a1", "buy", "0.4", "1", expiry=9), height=10, error="expiry_in_past"),
            Step("alice", place("a1", "buy", "0.4", "1"), funds=(("uusdc", 5),), error="unexpected_funds"),
            Step("alice", {"deposit": {}}, funds=(("uatom", 5),), error="invalid_deposit_denom"),
            Step("alice", {"withdraw": {"denom": "uusdc", "amount": "10000001"}}, error="insufficient_balance"),
            Step("alice", {"withdraw": {"denom": "uusdc", "amount": "1"}}),
        ],
        [("withdraw", {"owner": "alice", "amount": "1uusdc"})],
        {"alice": {"uusdc": (10 * M - 1, 0)}},
    ),
    Scenario(
        "expired order is skipped by matching, which emits its expiry",
        {"alice": (("usei", 10 * M),), "bob": (("uusdc", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10", expiry=100), height=90),
            Step("bob", place("b1", "buy", "0.5", "10"), height=101),
        ],
        [
            ("placed", {"order_id": "1", "expiry_height": "100"}),
            ("placed", {"order_id": "2"}),
            ("expired", {"order_id": "1", "client_order_id": "a1", "owner": "alice", "remaining_quantity": "10",
                         "expiry_height": "100"}),
        ],
        {"alice": {"usei": (10 * M, 0)}, "bob": {"uusdc": (10 * M - 5_002_500, 5_002_500)}},
        {"bids": [("0.5", "10")], "asks": []},
        query_height=101,
    ),
    Scenario(
        "an order lives through expiry_height; its owner's next execute purges it",
        {"alice": (("usei", 10 * M),), "bob": (("uusdc", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10", expiry=100), height=90),
            Step("bob", place("b1", "buy", "0.5", "4"), height=100),
            Step("alice", {"cancel_all": {}}, height=101),
        ],
        [
            ("placed", {"order_id": "1"}), ("placed", {"order_id": "2"}),
            ("trade", {"quantity": "4"}), ("filled", {"order_id": "1"}), ("filled", {"order_id": "2"}),
            ("expired", {"order_id": "1", "remaining_quantity": "6"}),
        ],
        {"alice": {"usei": (6 * M, 0), "uusdc": (2 * M, 0)}},
        {"bids": [], "asks": []},
        query_height=101,
    ),
    Scenario(
        "self-trade cancels the resting order and matching continues",
        {"alice": (("usei", 10 * M), ("uusdc", 10 * M)), "bob": (("usei", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10")),
            Step("bob", place("b1", "sell", "0.51", "10")),
            Step("alice", place("a2", "buy", "0.51", "15")),
        ],
        [
            ("placed", {}), ("placed", {}), ("placed", {"order_id": "3"}),
            ("cancelled", {"order_id": "1", "reason": "self_trade", "remaining_quantity": "10"}),
            ("trade", {"price": "0.51", "quantity": "10", "maker_order_id": "2", "taker_order_id": "3"}),
            ("filled", {"order_id": "2"}), ("filled", {"order_id": "3", "remaining_quantity": "5", "fee": "2550uusdc"}),
        ],
        # paid 5_100_000 + 2_550; 5 left resting reserve ceil(2.55 * 1.0005 * 1e6) = 2_551_275
        {"alice": {"usei": (20 * M, 0), "uusdc": (10 * M - 5_102_550 - 2_551_275, 2_551_275)}},
        {"bids": [("0.51", "5")], "asks": []},
    ),
    Scenario(
        "a failing batch action is rejected alone; a cancel frees balance for a later place",
        {"alice": (("usei", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10")),
            Step("alice", {"batch": {"actions": [
                {"cancel_order": {"client_order_id": "a1"}},
                {"cancel_order": {"order_id": "999"}},
                place("a2", "sell", "0.6", "10", post_only=True),
                place("a3", "sell", "0.7", "1"),
                {"cancel_all": {}},
                place("a4", "sell", "0.8", "3"),
            ]}}),
        ],
        [
            ("placed", {"order_id": "1"}),
            ("cancelled", {"order_id": "1", "reason": "user"}),
            ("rejected", {"index": "1", "action": "cancel_order", "code": "order_not_found", "order_id": "999"}),
            ("placed", {"order_id": "2", "client_order_id": "a2"}),
            ("rejected",
             {"index": "3", "action": "place_order", "code": "insufficient_balance", "client_order_id": "a3"}),
            ("cancelled", {"order_id": "2", "reason": "cancel_all"}),
            ("placed", {"order_id": "3", "client_order_id": "a4"}),
        ],
        {"alice": {"usei": (7 * M, 3 * M)}},
        {"bids": [], "asks": [("0.8", "3")]},
    ),
    Scenario(
        "a malformed or oversized batch fails whole",
        {"alice": (("usei", 10 * M),)},
        [
            Step("alice", place("a1", "sell", "0.5", "10", expiry=10), height=5),
            Step("alice", {"batch": {"actions": [{"cancel_all": {}}, {"withdraw": {"denom": "usei", "amount": "1"}}]}},
                 height=11, error="invalid_message"),
            Step("alice", {"batch": {"actions": [{"cancel_all": {}}] * 65}}, height=11, error="batch_too_large"),
        ],
        [("placed", {"order_id": "1"})],
        # The failed transactions did not purge the expired order; queries still show it as free.
        {"alice": {"usei": (10 * M, 0)}},
        {"bids": [], "asks": []},
        query_height=11,
    ),
    Scenario(
        "while halted, places are rejected and cancels still run",
        {"alice": (("usei", 10 * M),)},
        [
            Step("alice",
                 {"batch": {"actions": [{"cancel_order": {"order_id": "7"}}, place("a1", "sell", "0.5", "1")]}}),
            Step("alice", place("a1", "sell", "0.5", "1"), error="market_halted"),
            Step("alice", {"deposit": {}}, funds=(("usei", 1),), error="market_halted"),
        ],
        [
            ("rejected", {"index": "0", "code": "order_not_found"}),
            ("rejected", {"index": "1", "action": "place_order", "code": "market_halted"}),
        ],
        halted=True,
    ),
]


def run_scenario(s: Scenario) -> tuple[Clob, list]:
    clob = Clob(SPEC_MARKET)
    for owner, funds in s.deposits.items():
        clob.execute(owner, {"deposit": {}}, 1, funds=funds)
    clob.halted = s.halted
    events = []
    for i, step in enumerate(s.steps):
        if step.error is None:
            events += clob.execute(step.sender, step.msg, step.height, funds=step.funds)
            continue
        before = snapshot(clob, [*s.deposits, step.sender], step.height)
        with pytest.raises(ContractError) as e:
            clob.execute(step.sender, step.msg, step.height, funds=step.funds)
        assert e.value.code == step.error, f"step {i}: {e.value}"
        assert str(e.value).startswith(f"flashmm_clob: {step.error}: ")
        assert snapshot(clob, [*s.deposits, step.sender], step.height) == before, f"step {i} changed state"
    return clob, events


def snapshot(clob: Clob, owners: list[str], height: int) -> Any:
    return (
        clob.query({"book": {"depth": 100}}, height),
        [clob.query({"balances": {"owner": o}}, height) for o in owners],
        [clob.query({"open_orders": {"owner": o, "limit": 500}}, height) for o in owners],
        clob.fees_collected, clob.rounding_remainder,
    )


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_scenario(s: Scenario) -> None:
    clob, events = run_scenario(s)
    assert [e.type for e in events] == [f"wasm-{t}" for t, _ in s.events]
    for i, (event, (_, want)) in enumerate(zip(events, s.events, strict=True)):
        got = dict(event.attributes)
        assert {k: got.get(k) for k in want} == want, f"event {i} {event.type}"
    for owner, denoms in s.balances.items():
        got = {b["denom"]: (int(b["free"]), int(b["locked"]))
               for b in clob.query({"balances": {"owner": owner}}, s.query_height)["balances"]}
        assert {d: got[d] for d in denoms} == denoms, owner
    if s.book is not None:
        book = clob.query({"book": {"depth": 10}}, s.query_height)
        assert book["height"] == s.query_height
        assert {side: [(lv["price"], lv["quantity"]) for lv in book[side]] for side in ("bids", "asks")} == s.book


def test_queries_match_the_spec_shapes() -> None:
    clob = Clob(SPEC_MARKET)
    assert clob.query({"market": {}}, 1) == {
        "interface_version": "1", "base_denom": "usei", "quote_denom": "uusdc", "base_decimals": 6,
        "quote_decimals": 6, "tick_size": "0.0001", "lot_size": "0.1", "min_quantity": "0.1",
        "maker_fee_rate": "0", "taker_fee_rate": "0.0005", "max_batch_actions": 64, "max_open_orders": 200,
        "halted": False,
    }
    clob.execute("alice", {"deposit": {}}, 1, funds=(("usei", 1000 * M),))
    for i in range(3):
        clob.execute("alice", place(f"a{i}", "sell", "0.4215", "100.50", expiry=20 if i == 2 else None), 5)
    orders = clob.query({"open_orders": {"owner": "alice", "start_after": "1", "limit": 1}}, 5)["orders"]
    assert orders == [{"order_id": "2", "client_order_id": "a1", "side": "sell", "price": "0.4215", "quantity": "100.5",
                       "remaining_quantity": "100.5", "post_only": False, "expiry_height": None, "placed_height": 5}]
    assert clob.query({"book": {"depth": 1}}, 20)["asks"] == [{"price": "0.4215", "quantity": "301.5"}]
    assert clob.query({"book": {"depth": 1}}, 21)["asks"] == [{"price": "0.4215", "quantity": "201"}]
    # v1.2: the market without one owner's orders; a level only they hold disappears.
    clob.execute("bob", {"deposit": {}}, 1, funds=(("usei", 1000 * M),))
    clob.execute("bob", place("b0", "sell", "0.4215", "7"), 6)
    clob.execute("bob", place("b1", "sell", "0.4220", "3"), 6)
    assert clob.query({"book": {"depth": 5}}, 7)["asks"] == [{"price": "0.4215", "quantity": "308.5"},
                                                             {"price": "0.422", "quantity": "3"}]
    assert clob.query({"book": {"depth": 5, "exclude_owner": "bob"}}, 7)["asks"] == [
        {"price": "0.4215", "quantity": "301.5"}]
    assert clob.query({"book": {"depth": 5, "exclude_owner": "alice"}}, 7)["asks"] == [
        {"price": "0.4215", "quantity": "7"}, {"price": "0.422", "quantity": "3"}]
    for bad in ({"book": {"depth": 0}}, {"book": {"depth": 101}}, {"book": {"depth": 5, "exclude_owner": 7}},
                {"open_orders": {"owner": "alice", "limit": 501}}, {"balances": {}}, {"orders": {}}):
        with pytest.raises(ContractError) as e:
            clob.query(bad, 5)
        assert e.value.code == "invalid_message"


# -- invariants over random sequences ---------------------------------------------------------

OWNERS = ("alice", "bob", "carol")
# Fine ticks with coarse decimals make price x quantity fractional in quote atomic units, and a maker
# fee above the taker fee outruns the reserve: both exercise the rounding and shortfall paths.
ROUNDING_MARKET = Market(
    base_denom="ubase", quote_denom="uquote", base_decimals=3, quote_decimals=2,
    tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), min_quantity=Decimal("0.002"),
    maker_fee_rate=Decimal("0.1"), taker_fee_rate=Decimal("0.05"), max_batch_actions=4, max_open_orders=6,
)
MARKETS = (SPEC_MARKET, ROUNDING_MARKET)


def place_msgs(market: Market, height: int) -> st.SearchStrategy[dict]:
    # A narrow price band shared by both sides, so most non-post-only orders cross something.
    return st.builds(
        lambda coid, side, ticks, lots, post_only, expiry: place(
            coid, side, str(market.tick_size * ticks), str(market.lot_size * lots), post_only,
            None if expiry is None else height + expiry,
        ),
        st.sampled_from(["x", "y", "z"]), st.sampled_from(["buy", "sell"]), st.integers(8, 12),
        st.integers(1, 60), st.sampled_from([False, False, True]), st.none() | st.integers(-1, 6),
    )


def action_msgs(market: Market, height: int) -> st.SearchStrategy[dict]:
    return st.one_of(
        place_msgs(market, height),
        place_msgs(market, height),
        place_msgs(market, height),
        st.builds(lambda i: {"cancel_order": {"order_id": str(i)}}, st.integers(1, 40)),
        st.builds(lambda c: {"cancel_order": {"client_order_id": c}}, st.sampled_from(["x", "y", "z"])),
        st.just({"cancel_all": {}}),
    )


@st.composite
def sessions(draw: st.DrawFn) -> tuple[Market, list[tuple[str, int, dict, tuple]]]:
    market = draw(st.sampled_from(MARKETS))
    # Deposits sized so a few orders fit and some do not.
    quote = st.integers(0, 100 * 10**market.quote_decimals)
    base = st.integers(0, 100 * 10**market.base_decimals)
    steps = []
    for owner in OWNERS:
        steps.append((owner, 0, {"deposit": {}}, ((market.base_denom, draw(base)), (market.quote_denom, draw(quote)))))
    height = 0
    for _ in range(draw(st.integers(1, 40))):
        height += draw(st.integers(0, 3))
        owner = draw(st.sampled_from(OWNERS))
        kind = draw(st.sampled_from(["action", "action", "batch", "batch", "deposit", "withdraw"]))
        if kind == "action":
            msg, funds = draw(action_msgs(market, height)), ()
        elif kind == "batch":
            msg, funds = {"batch": {"actions": draw(st.lists(action_msgs(market, height), max_size=5))}}, ()
        elif kind == "deposit":
            msg, funds = {"deposit": {}}, ((market.quote_denom, draw(st.integers(1, 5 * 10**market.quote_decimals))),)
        else:
            denom = draw(st.sampled_from([market.base_denom, market.quote_denom]))
            msg, funds = {"withdraw": {"denom": denom,
                                       "amount": str(draw(st.integers(1, 10**market.quote_decimals)))}}, ()
        steps.append((owner, height, msg, funds))
    return market, steps


def reserve(market: Market, order: dict) -> tuple[str, int]:
    remaining = Decimal(order["remaining_quantity"])
    if order["side"] == "sell":
        return market.base_denom, int(remaining.scaleb(market.base_decimals))
    n = (Decimal(order["price"]) * remaining * (1 + market.taker_fee_rate)).scaleb(market.quote_decimals)
    return market.quote_denom, int(n.to_integral_value(rounding=ROUND_CEILING))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_invariants_hold_after_every_message(session: tuple[Market, list]) -> None:
    market, steps = session
    clob = Clob(market)
    denoms = (market.base_denom, market.quote_denom)
    net = dict.fromkeys(denoms, 0)  # deposited minus withdrawn, from the events
    last_order_id = last_trade_id = 0
    limits: dict[str, Decimal] = {}
    for owner, height, msg, funds in steps:
        try:
            events = clob.execute(owner, msg, height, funds=funds)
        except ContractError:
            events = []
        for e in events:
            attrs = dict(e.attributes)
            if e.type in ("wasm-deposit", "wasm-withdraw"):
                amount = attrs["amount"]
                denom = next(d for d in denoms if amount.endswith(d))
                net[denom] += int(amount[: -len(denom)]) * (1 if e.type == "wasm-deposit" else -1)
            elif e.type == "wasm-placed":
                assert int(attrs["order_id"]) > last_order_id
                last_order_id = int(attrs["order_id"])
                limits[attrs["order_id"]] = Decimal(attrs["price"])
            elif e.type == "wasm-trade":
                assert int(attrs["trade_id"]) > last_trade_id
                last_trade_id = int(attrs["trade_id"])
                price, taker_limit = Decimal(attrs["price"]), limits[attrs["taker_order_id"]]
                assert Decimal(attrs["quantity"]) > 0 and price == limits[attrs["maker_order_id"]]
                assert price <= taker_limit if attrs["taker_side"] == "buy" else price >= taker_limit
                assert attrs["maker"] != attrs["taker"]

        book = clob.query({"book": {"depth": 100}}, height)
        if book["bids"] and book["asks"]:
            assert Decimal(book["bids"][0]["price"]) < Decimal(book["asks"][0]["price"])
        assert all(Decimal(lv["quantity"]) > 0 for lv in book["bids"] + book["asks"])

        total = dict.fromkeys(denoms, 0)
        for o in OWNERS:
            balances = {b["denom"]: (int(b["free"]), int(b["locked"]))
                        for b in clob.query({"balances": {"owner": o}}, height)["balances"]}
            orders = clob.query({"open_orders": {"owner": o, "limit": 500}}, height)["orders"]
            assert all(Decimal(x["remaining_quantity"]) > 0 for x in orders)
            reserved = dict.fromkeys(denoms, 0)
            for x in orders:
                d, amount = reserve(market, x)
                reserved[d] += amount
            for d in denoms:
                free, locked = balances[d]
                assert free >= 0 and locked == reserved[d], (o, d)
                total[d] += free + locked
        assert total[market.base_denom] == net[market.base_denom]
        assert total[market.quote_denom] + clob.fees_collected + clob.rounding_remainder == net[market.quote_denom]
