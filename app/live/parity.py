"""`flashmm parity`: does the live node do on a venue what the backtest says it would?

The tape window of a backtest config is replayed by an in-process venue as the market (the local
Monaco by default, or the Sei localnet) while `flashmm live` trades it over real sockets with the
same strategy config; then the same window is backtested, starting at the tape block where the
live node's first order reached the venue (the node needs a few seconds to start; the backtest
must not get a head start it never had live). Fills are
compared by side, price and tape block: a backtest fill agrees when a live fill of the same side
and price happened within `tolerance_blocks` blocks of it (a live fill's quantity is used once,
so the partial fills one model splits an execution into can all match the other's single fill).
"""

from __future__ import annotations

import bisect
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd

from app.live.config import without_none
from app.live.localrun import node_config, read_back, run_node, start_localnet
from app.live.monaco_run import monaco_node_config, read_back_monaco, start_local_monaco
from backtests.config import load_config, parse_config
from backtests.runner import run_backtest, window
from data.catalog import iso_utc, open_tape

NS = 1_000_000_000


VENUES = ("monaco", "sei-localnet")


@dataclass
class LiveSide:
    """What the live node did, in tape terms: its fills as (side, price, tape block, quantity)."""

    session_dir: Path
    first_index: int  # the tape block the backtest starts at (see the venue's function)
    index_ts: list[int]  # tape time of every tape block replayed, by index
    fills: list[tuple[int, Decimal, int, Decimal]]


def run_parity(config_path: str | Path, *, tolerance_blocks: int = 2, out: str | Path | None = None,
               venue: str = "monaco") -> dict:
    if venue not in VENUES:
        raise ValueError(f"--venue {venue!r}: one of {', '.join(VENUES)}")
    config = load_config(config_path)
    tape = open_tape(config.run.catalog)
    start_ns, end_ns = window(config, tape)
    workdir = Path(out or config.run.out) / f"parity-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    workdir.mkdir(parents=True, exist_ok=False)
    wall0 = time.monotonic()
    live_on = _live_on_monaco if venue == "monaco" else _live_on_localnet
    live = live_on(config, tape, start_ns, end_ns, workdir)
    bt_start = live.index_ts[live.first_index]
    raw = config.to_dict()
    raw["run"] = {**raw["run"], "start": pd.Timestamp(bt_start, unit="ns", tz="UTC").isoformat(),
                  "end": pd.Timestamp(end_ns, unit="ns", tz="UTC").isoformat()}
    raw = without_none(raw)
    backtest = run_backtest(parse_config(raw, source=str(config_path)), out=workdir / "backtest")

    bt_fills = [(int(side), Decimal(str(price)), _index(live.index_ts, int(ts)), Decimal(str(qty)))
                for ts, side, price, qty
                in backtest.analytics.fills[["ts", "side", "price", "qty"]].itertuples(index=False)]
    matched, matched_qty, live_used = _match(bt_fills, live.fills, tolerance_blocks)
    live_metrics = json.loads((live.session_dir / "metrics.json").read_text())
    execution = live_metrics.get("execution") or {}
    bt_qty = sum(q for *_, q in bt_fills)
    report = {
        "config": str(config_path),
        "venue": venue,
        "window": {"start": iso_utc(start_ns), "end": iso_utc(end_ns), "backtest_start": iso_utc(bt_start),
                   "live_first_order_block": live.first_index},
        "tolerance_blocks": tolerance_blocks,
        "backtest_fills": len(bt_fills),
        "live_fills": len(live.fills),
        "matched_fills": matched,
        "fill_agreement": matched / len(bt_fills) if bt_fills else None,
        "live_fills_matched": live_used / len(live.fills) if live.fills else None,
        "volume_agreement": float(matched_qty / bt_qty) if bt_qty else None,
        "pnl_backtest": backtest.metrics["pnl_total"],
        "pnl_live": live_metrics["pnl_total"],
        "pnl_difference": live_metrics["pnl_total"] - backtest.metrics["pnl_total"],
        "orders_backtest": backtest.metrics["orders_submitted"],
        "orders_live": live_metrics["orders_submitted"],
        # Sei: block event received -> signed tx sent; Monaco: book update received -> order request sent.
        **{key: execution.get(key) for key in (
            "tick_to_tx_ms_p50", "tick_to_tx_ms_p99", "txs", "txs_failed", "tick_to_order_ms_p50",
            "tick_to_order_ms_p99", "places", "replaces", "rejects")},
        "live_session": str(live.session_dir),
        "backtest_run": str(backtest.run_dir),
        "wall_seconds": round(time.monotonic() - wall0, 1),
    }
    (workdir / "parity.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["report_file"] = str(workdir / "parity.json")
    return report


def _live_on_monaco(config, tape, start_ns: int, end_ns: int, workdir: Path) -> LiveSide:
    """The tape replayed by an in-process local Monaco on its own clock while the node trades it.
    Orders match the moment they arrive, so the backtest starts at the tape block that was current
    when the node's first order reached the venue: it quotes on that block's book, as the node did."""
    venue_cfg = config.venue
    venue = start_local_monaco(tape, start_ns, end_ns, seed=config.run.seed,
                               maker_fee_bps=Decimal(str(venue_cfg.maker_fee)) * 10_000,
                               taker_fee_bps=Decimal(str(venue_cfg.taker_fee)) * 10_000)
    try:
        signal = without_none(config.to_dict()["signal"])
        node_toml = monaco_node_config(venue, workdir, dict(config.strategy), signal=signal)
        session_dir, output = run_node(node_toml, duration_s=(end_ns - start_ns) / NS + 3)
        live = read_back_monaco(venue, session_dir, output)
    finally:
        venue.stop()
    if not live.placed:
        raise RuntimeError(f"the live node placed no order; see {session_dir}")
    first = min(p["tape_index"] for p in live.placed)
    if first < 0:
        raise RuntimeError(f"the live node ordered before the tape started; see {session_dir}")
    fills = [(1 if f["side"] == "buy" else -1, Decimal(f["price"]), f["tape_index"], Decimal(f["quantity"]))
             for f in live.fills]
    return LiveSide(session_dir, first, live.index_ts, fills)


def _live_on_localnet(config, tape, start_ns: int, end_ns: int, workdir: Path) -> LiveSide:
    """The tape replayed by an in-process localnet, a block every 400 ms, while the node trades it.
    The backtest starts one block before the live node's first order landed: it quotes on that
    block's book and its orders arrive, one block of latency later, where the live ones did."""
    venue = config.venue
    net, replay = start_localnet(tape, start_ns, end_ns, seed=config.run.seed,
                                 maker_fee=str(venue.maker_fee), taker_fee=str(venue.taker_fee))
    try:
        signal = without_none(config.to_dict()["signal"])
        node_toml = node_config(net, workdir, dict(config.strategy), signal=signal)
        session_dir, output = run_node(node_toml, duration_s=(end_ns - start_ns) / NS + 3)
        live = read_back(net, replay, session_dir, output)
    finally:
        net.stop()
    if not live.placed:
        raise RuntimeError(f"the live node placed no order; see {session_dir}")
    first_height = min(h for h, _ in live.placed)
    if first_height not in live.height_to_index:
        raise RuntimeError(f"the live node's first order landed after the tape window ended; see {session_dir}")
    fills = [(1 if f.side == "buy" else -1, f.price, live.height_to_index.get(f.height, -1), f.quantity)
             for f in live.fills]
    return LiveSide(session_dir, max(live.height_to_index[first_height] - 1, 0), live.index_ts, fills)


def _index(index_ts: list[int], ts: int) -> int:
    """The tape block a backtest event at `ts` belongs to (the last block at or before it)."""
    return max(bisect.bisect_right(index_ts, ts) - 1, 0)


def _match(backtest: list[tuple], live: list[tuple], tolerance: int) -> tuple[int, Decimal, int]:
    """Pair backtest fills with live fills of the same side and price within `tolerance` blocks,
    closest first, by quantity: a live fill can absorb several partial backtest fills of one order
    (the two fill models may split the same execution differently) as long as at least half of
    each one's quantity is still unused in it.
    Returns (backtest fills matched, quantity matched, live fills used)."""
    pool: dict[tuple[int, Decimal], list[list]] = defaultdict(list)
    for side, price, block, qty in live:
        pool[(side, price)].append([block, qty, False])
    matched, matched_qty = 0, Decimal(0)
    for side, price, block, qty in sorted(backtest, key=lambda f: f[2]):
        candidates = [c for c in pool.get((side, price), ()) if c[1] >= qty / 2 and abs(c[0] - block) <= tolerance]
        if not candidates:
            continue
        best = min(candidates, key=lambda c: abs(c[0] - block))
        take = min(qty, best[1])
        best[1] -= take
        best[2] = True
        matched += 1
        matched_qty += take
    used = sum(c[2] for cs in pool.values() for c in cs)
    return matched, matched_qty, used


def render(report: dict) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def ms(x):
        return "n/a" if x is None else f"{x:.2f} ms"

    if report["venue"] == "monaco":
        orders = (f"({report['places']} places, {report['replaces']} replaces, {report['rejects']} rejects)")
        latency = (f"  tick-to-order  p50 {ms(report['tick_to_order_ms_p50'])}, "
                   f"p99 {ms(report['tick_to_order_ms_p99'])} (book update received -> order request sent)")
    else:
        orders = f"({report['txs']} txs, {report['txs_failed']} failed)"
        latency = (f"  tick-to-tx     p50 {ms(report['tick_to_tx_ms_p50'])}, p99 {ms(report['tick_to_tx_ms_p99'])} "
                   "(block event received -> signed tx sent)")
    return "\n".join([
        f"parity: backtest vs live node on the {'local Monaco' if report['venue'] == 'monaco' else 'localnet'}, "
        f"{report['window']['backtest_start']} .. {report['window']['end']}",
        f"  fills          backtest {report['backtest_fills']}, live {report['live_fills']}, "
        f"matched {report['matched_fills']} "
        f"(side, price, within {report['tolerance_blocks']} blocks)",
        f"  fill agreement {pct(report['fill_agreement'])} of backtest fills (goal >= 90%); "
        f"{pct(report['live_fills_matched'])} of live fills; volume {pct(report['volume_agreement'])}",
        f"  pnl            backtest {report['pnl_backtest']:.4f}, live {report['pnl_live']:.4f}, "
        f"difference {report['pnl_difference']:+.4f} USDC",
        f"  orders         backtest {report['orders_backtest']}, live {report['orders_live']} {orders}",
        latency,
        f"  written        {report['report_file']}",
    ])
