"""Hand-built tapes for scenario tests: book states per block, diffed into real deltas.

A scenario names the book each block shows and the prints in it; the builder emits exactly what a
recorded tape would (CLEAR + ADDs first, then ADD/UPDATE/DELETE diffs, F_LAST on each block's last
delta) and writes it to a real ParquetDataCatalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nautilus_trader.model.data import BookOrder, OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.objects import Price, Quantity

from data.catalog import write_catalog
from data.instrument import sei_usdc

T0 = 1_767_571_200_000_000_000  # 2026-01-05T00:00:00Z
MS = 1_000_000


@dataclass
class Block:
    t_ms: int
    bids: dict[str, float]  # price text -> size
    asks: dict[str, float]
    trades: list[tuple[str, str, float]] = field(default_factory=list)  # (side "buy"/"sell", price, size)
    snapshot: bool = False  # published as a full snapshot (CLEAR, then every level), as a re-snapshot is


def ladder(bid: str, ask: str, size: float = 1000.0, depth: int = 10) -> tuple[dict, dict]:
    """A simple book: `depth` levels a tick apart below `bid` and above `ask`."""
    b, a = round(float(bid) * 10_000), round(float(ask) * 10_000)
    bids = {f"{(b - i) / 10_000:.4f}": size for i in range(depth)}
    asks = {f"{(a + i) / 10_000:.4f}": size for i in range(depth)}
    return bids, asks


def steady(bid: str, ask: str, from_ms: int, to_ms: int, every_ms: int = 400, size: float = 1000.0) -> list[Block]:
    """The same book re-published every block (one size refresh keeps each block non-empty)."""
    out = []
    for i, t in enumerate(range(from_ms, to_ms, every_ms)):
        bids, asks = ladder(bid, ask, size)
        last = list(bids)[-1]
        bids[last] = size + (i % 2)  # deepest level flickers: a block always carries a delta
        out.append(Block(t, bids, asks))
    return out


def write_tape(path: Path, blocks: list[Block]) -> Path:
    inst = sei_usdc()
    deltas: list[OrderBookDelta] = []
    trades: list[TradeTick] = []
    prev: dict[tuple[OrderSide, str], float] | None = None
    seq = 0
    for n, block in enumerate(blocks):
        ts = T0 + block.t_ms * MS
        state = {(OrderSide.BUY, p): s for p, s in block.bids.items()}
        state.update({(OrderSide.SELL, p): s for p, s in block.asks.items()})
        out: list[tuple[BookAction, OrderSide, str, float]] = []
        if prev is None or block.snapshot:
            out.append((BookAction.CLEAR, OrderSide.NO_ORDER_SIDE, "0", 0.0))
            prev = {}
        for key in prev:
            if key not in state:
                out.append((BookAction.DELETE, key[0], key[1], 0.0))
        for key, size in state.items():
            if key not in prev:
                out.append((BookAction.ADD, key[0], key[1], size))
            elif prev[key] != size:
                out.append((BookAction.UPDATE, key[0], key[1], size))
        if not out:
            raise ValueError(f"block at {block.t_ms} ms changes nothing: a block must carry a delta")
        for i, (action, side, px, size) in enumerate(out):
            flags = int(RecordFlag.F_LAST) if i == len(out) - 1 else 0
            seq += 1
            if action == BookAction.CLEAR:
                deltas.append(OrderBookDelta.clear(inst.id, seq, ts, ts))
                if flags:
                    raise ValueError("first block must hold a book")
                continue
            order = BookOrder(side, Price.from_str(px), Quantity(size, 1), 0)
            deltas.append(OrderBookDelta(inst.id, action, order, flags, seq, ts, ts))
        for k, (side, px, size) in enumerate(block.trades):
            aggressor = AggressorSide.BUYER if side == "buy" else AggressorSide.SELLER
            trades.append(TradeTick(inst.id, Price.from_str(px), Quantity(size, 1), aggressor,
                                    TradeId(f"T{n}-{k}"), ts, ts))
        prev = state
    meta = {"synthetic": True, "note": "hand-built test tape", "venue_profile": "sei-clob"}
    return write_catalog(path, inst, deltas, trades, meta)
