"""`flashmm bench`: what the FlashMM stack costs on top of the bare NautilusTrader engine.

Four runs of the same tape, each in its own process so that peak RSS is that run's alone:
`bare` (NautilusTrader alone), `full` (strategy, recorder, queue-fill module, analytics) and
`no_orders` (the full stack with a zero notional limit, so the strategy computes every ladder but
sends nothing) and `nt_quoter` (NautilusTrader alone with its own fills and a minimal touch quoter,
no FlashMM code). `no_orders` splits the full stack's cost into FlashMM's own per-event code and
NautilusTrader's order lifecycle; `nt_quoter` measures that lifecycle with nothing of ours around.
Events are individual records (book deltas + trades); events/s is over the engine's run loop.
`run_sweep_bench` (`flashmm bench --sweep`) measures how a sweep scales from 1 to 2 workers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from backtests.config import as_logged, load_config
from backtests.sweep import run_sweep
from backtests.sweep_config import load_sweep


def _timed_strategy():
    from strategies.market_maker import MarketMaker

    class TimedMarketMaker(MarketMaker):
        """Times the per-block callback (book batch in, quotes out) for the bench."""

        def __init__(self, config) -> None:
            super().__init__(config)
            # 8 bytes a block (a list of ints took 36, ~8 MB over a day: the bench's own growth)
            self.callback_ns = array("q")

        def on_order_book_deltas(self, deltas) -> None:
            t0 = time.perf_counter_ns()
            super().on_order_book_deltas(deltas)
            self.callback_ns.append(time.perf_counter_ns() - t0)

    return TimedMarketMaker


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _measure(mode: str, config_path: str, overrides: dict) -> dict:
    from backtests.runner import build_engine, run_backtest, stream, window
    from data.catalog import open_tape

    if mode in ("bare", "nt_quoter"):
        # NautilusTrader alone: no FlashMM strategy, recorder or queue-fill module.
        overrides = {**overrides, "venue.fill_model": "cross"}
    elif mode == "no_orders":
        overrides = {**overrides, "strategy.max_notional": 1e-9}
    elif mode == "signal_online":  # the live node's path: the signal actor inside the engine
        overrides = {**overrides, "signal.replay": False}
    # A benchmark reports the real inference time, which a backtest otherwise simulates.
    config = load_config(config_path, {**overrides, "signal.inference_latency": "measured"})
    if mode in ("bare", "nt_quoter"):
        tape = open_tape(config.run.catalog, config.run.instrument_id or None)
        start_ns, end_ns = window(config, tape)
        engine, instrument, _ = build_engine(config, tape)
        quoter = None
        if mode == "nt_quoter":
            from backtests.fidelity import TouchQuoter, TouchQuoterConfig

            # The strategy's own quote size: the instrument's units, and orders the account can pay for.
            size = config.strategy_config().order_size
            # Logged as the full run's strategy is (`as_logged`): the floor is NautilusTrader's cost
            # for the same configuration, not for formatting log lines the full run skips.
            quoter_config = TouchQuoterConfig(instrument_id=instrument.id, order_qty=size, per_instant=False)
            quoter = TouchQuoter(as_logged(quoter_config, config.run.log_level))
            engine.add_strategy(quoter)
        t0 = time.perf_counter()
        events = stream(engine, tape, start_ns, end_ns, config.run.chunk_minutes, progress=False)
        engine.end()
        wall = time.perf_counter() - t0
        engine.dispose()
        orders, extra = (quoter.orders if quoter else 0), {}
    else:
        result = run_backtest(config, write=False, strategy_cls=_timed_strategy())
        events, wall = result.metrics["events_processed"], result.metrics["wall_seconds"]
        orders = result.metrics["orders_submitted"]
        callback_us = [ns / 1e3 for ns in result.strategy.callback_ns]
        extra = {"callback_us_p50": _pct(callback_us, 50), "callback_us_p99": _pct(callback_us, 99),
                 "signal": result.metrics.get("signal")}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tape = open_tape(config.run.catalog, config.run.instrument_id or None)
    start_ns, end_ns = window(config, tape)
    return {"mode": mode, "events": events, "wall_seconds": wall, "events_per_sec": events / wall,
            "peak_rss_mb": rss_mb, "orders": orders, "fill_model": config.venue.fill_model,
            "tape_seconds": (end_ns - start_ns) / 1e9, **extra}


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} us"


def run_bench(config_path: str, catalog: str | None = None, end: str | None = None, start: str = "+0s",
              repeats: int = 1) -> dict:
    """The four runs on the config's tape from `start` (default: the whole tape, whatever window
    the config trades) to `end`, `repeats` times, alternating, each mode's fastest run counting.

    The floor ratio divides one run by three others, and on this shared machine a single run of
    half a second can be a third slower than the next: the fastest of several runs of each mode
    (timeit's minimum, the least disturbed) makes the ratio comparable from one day to the next."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    args = [sys.executable, "-m", "backtests.bench", "--config", config_path, "--start", start]
    if catalog:
        args += ["--catalog", catalog]
    if end:
        args += ["--end", end]

    def measure(mode: str) -> dict:
        extra = ["--end", "+20min"] if mode == "signal_online" else []  # enough calls for a p99
        proc = subprocess.run([*args, *extra, "--mode", mode], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench mode {mode} failed:\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    walls: dict[str, list[float]] = {mode: [] for mode in _TIMED_MODES}
    results: dict[str, dict] = {}
    for _ in range(repeats):
        for mode in _TIMED_MODES:
            r = measure(mode)
            walls[mode].append(r["wall_seconds"])
            if mode in results and r["orders"] != results[mode]["orders"]:
                raise RuntimeError(f"bench mode {mode} sent {results[mode]['orders']} orders, then {r['orders']}: "
                                   "the same run must send the same orders")
            if mode not in results or r["wall_seconds"] < results[mode]["wall_seconds"]:
                results[mode] = r
    results["signal_online"] = measure("signal_online")
    bare, full, quiet, nt = results["bare"], results["full"], results["no_orders"], results["nt_quoter"]
    ratio = full["events_per_sec"] / bare["events_per_sec"]
    quiet_ratio = quiet["events_per_sec"] / bare["events_per_sec"]
    order_cost_us = (full["wall_seconds"] - quiet["wall_seconds"]) / max(full["orders"], 1) * 1e6
    # NautilusTrader's own cost of an order lifecycle, and the floor it sets for the full run: the
    # bare engine's wall plus that many lifecycles. What the full run spends above it is ours.
    nt_order_s = (nt["wall_seconds"] - bare["wall_seconds"]) / max(nt["orders"], 1)
    floor_s = bare["wall_seconds"] + full["orders"] * nt_order_s
    floor_ratio = full["wall_seconds"] / floor_s
    tape_hours = full["tape_seconds"] / 3600

    def row(name, r):
        return f"{name:<42}{r['events_per_sec']:>12,.0f} events/s  peak RSS {r['peak_rss_mb']:,.0f} MB"

    text = "\n".join([
        f"tape: {bare['events']:,} events; fill model {full['fill_model']}; each mode's fastest of {repeats} "
        f"run(s), alternating (walls: " + "; ".join(f"{m} " + ", ".join(f"{w:.2f}" for w in walls[m])
                                                   for m in _TIMED_MODES) + " s)",
        row("bare engine (no strategy)", bare),
        row(f"full FlashMM stack ({full['orders']:,} orders)", full),
        row("full stack, no orders sent", quiet),
        row(f"NT alone + touch quoter ({nt['orders']:,} orders)", nt),
        f"full / bare throughput ratio:        {ratio:.3f}",
        f"no-orders / bare throughput ratio:   {quiet_ratio:.3f}",
        f"NT touch quoter / bare ratio:        {nt['events_per_sec'] / bare['events_per_sec']:.3f} "
        f"({(nt['wall_seconds'] - bare['wall_seconds']) / max(nt['orders'], 1) * 1e6:,.0f} us per order, "
        "NautilusTrader alone)",
        f"cost per order sent (submit, events, cancel): {order_cost_us:,.0f} us",
        f"floor: bare {bare['wall_seconds']:.2f} s + {full['orders']:,} orders x {nt_order_s * 1e6:,.0f} us "
        f"(NautilusTrader's own) = {floor_s:.2f} s; full stack {full['wall_seconds']:.2f} s: "
        f"floor ratio {floor_ratio:.2f} (goal <= 1.5)",
        f"tape per wall second (full stack): {tape_hours / full['wall_seconds'] * 3600:,.0f} s of tape "
        f"({tape_hours / full['wall_seconds']:.2f} h/s); peak RSS {full['peak_rss_mb']:,.0f} MB",
        f"strategy per-block callback p50/p99: {_us(full['callback_us_p50'])} / {_us(full['callback_us_p99'])}",
    ])
    sig, online = full.get("signal"), results["signal_online"].get("signal")
    if sig and online:
        text += (f"\nsignal inference ({sig['model_id']}), the live node's path (online actor, first 20 min) "
                 f"p50/p99: {_us(online['inference_us_p50'])} / {_us(online['inference_us_p99'])}; "
                 f"precomputed for the backtest p50/p99: {_us(sig['inference_us_p50'])} / "
                 f"{_us(sig['inference_us_p99'])}")
    return {"bare": bare, "full": full, "no_orders": quiet, "nt_quoter": nt, "repeats": repeats, "walls": walls,
            "ratio_full_to_bare": ratio,
            "ratio_no_orders_to_bare": quiet_ratio, "us_per_order": order_cost_us,
            "nt_us_per_order": nt_order_s * 1e6, "floor_seconds": floor_s, "floor_ratio": floor_ratio,
            "tape_hours_per_wall_second": tape_hours / full["wall_seconds"], "text": text}


_TIMED_MODES = ("bare", "full", "no_orders", "nt_quoter")


def run_scale_bench(config_path: str, hours: tuple[float, ...] = (1, 3, 6, 24), seed: int = 21,
                    cache_dir: str | None = None) -> dict:
    """The full stack (the config's strategy and signal) on windows of a long synthetic tape, each
    in its own process: time should grow linearly with the tape and peak memory stay flat.

    The tape (`flashmm data synth --hours max(hours) --seed seed`) is generated once into
    `cache_dir` (default: a temporary directory) and reused when it is already there.
    """
    from data.synth import generate

    longest = max(hours)
    with tempfile.TemporaryDirectory(prefix="flashmm-scale-bench-") as tmp:
        catalog = Path(cache_dir or tmp) / f"synth-{longest:g}h-s{seed}"
        if not catalog.exists():
            generate(hours=longest, seed=seed, out=catalog)
        rows = []
        for h in hours:
            args = [sys.executable, "-m", "backtests.bench", "--config", config_path, "--catalog", str(catalog),
                    "--start", "+0s", "--end", f"+{h * 60:g}min", "--mode", "full"]
            proc = subprocess.run(args, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"scale bench ({h} h) failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"hours": h, "wall_seconds": r["wall_seconds"], "peak_rss_mb": r["peak_rss_mb"],
                         "orders": r["orders"], "events": r["events"],
                         "tape_hours_per_wall_second": r["tape_seconds"] / 3600 / r["wall_seconds"]})
    by_hours = {row["hours"]: row for row in rows}
    lines = [f"scale: the full stack on a synthetic tape (seed {seed}), windows from its start",
             f"{'tape':>6}{'wall':>10}{'h of tape/s':>13}{'peak RSS':>12}{'orders':>10}"]
    lines += [f"{row['hours']:>5g}h{row['wall_seconds']:>9.1f}s{row['tape_hours_per_wall_second']:>13.2f}"
              f"{row['peak_rss_mb']:>9,.0f} MB{row['orders']:>10,}" for row in rows]
    flat = None
    if 3 in by_hours and longest > 3:
        flat = by_hours[longest]["peak_rss_mb"] / by_hours[3]["peak_rss_mb"] - 1
        lines.append(f"peak RSS at {longest:g} h vs 3 h: {flat:+.1%} (goal within 15%)")
    return {"seed": seed, "rows": rows, "rss_growth_vs_3h": flat, "text": "\n".join(lines)}


def run_sweep_bench(config_path: str, points: int = 8, end: str | None = None, catalog: str | None = None,
                    repeats: int = 3) -> dict:
    """The same sweep points with 1 and with 2 local workers: wall time of each and the speedup.

    Wall time is the whole `run_sweep` call, worker start-up included, as a user would wait for it.
    The points vary `strategy.half_spread_bps` with the signal off; every run's table must agree.
    On a shared machine one pair of runs swung from 1.7x to 2.2x, so the pair is run `repeats`
    times, alternating, and the speedup is taken from each worker count's fastest run (the one
    least disturbed by the rest of the machine), as `timeit` takes its minimum.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    end = end or "+1h"
    with tempfile.TemporaryDirectory(prefix="flashmm-sweep-bench-") as tmp:
        sweep_file = Path(tmp) / "bench_sweep.toml"
        # From the tape's start, whatever window the config trades (the demo trades its last hour).
        fixed = {"run.start": "+0s", "run.end": end, "strategy.use_signal": False}
        if catalog:
            fixed["run.catalog"] = str(Path(catalog).resolve())
        sweep_file.write_text(tomli_w.dumps({
            "base": str(Path(config_path).resolve()), "name": "bench", "fixed": fixed,
            "grid": {"strategy.half_spread_bps": [round(1.5 + 0.5 * i, 2) for i in range(points)]},
        }))
        spec = load_sweep(sweep_file)
        timings: dict[int, list[float]] = {1: [], 2: []}
        reference = None
        for attempt in range(repeats):
            for workers in (1, 2):
                t0 = time.perf_counter()
                result = run_sweep(spec, out=Path(tmp) / f"r{attempt}-w{workers}", workers=workers, progress=False)
                timings[workers].append(time.perf_counter() - t0)
                if result.failures:
                    raise RuntimeError(f"sweep bench point failed:\n{next(iter(result.failures.values()))}")
                table = result.results.drop(columns="wall_seconds")
                if reference is None:
                    reference, point_seconds = table, float(result.results["wall_seconds"].mean())
                else:  # parallelism (and repetition) must not change any result
                    pd.testing.assert_frame_equal(reference, table)
    best = {w: min(t) for w, t in timings.items()}
    speedup = best[1] / best[2]

    def runs(workers: int) -> str:
        return ", ".join(f"{t:.2f}" for t in timings[workers])

    text = "\n".join([
        f"sweep scaling: {points} points, window start .. {end}, signal off "
        f"(engine loop {point_seconds:.2f} s per point), best of {repeats}",
        f"1 worker:  {best[1]:.2f} s  (runs: {runs(1)})",
        f"2 workers: {best[2]:.2f} s  (runs: {runs(2)})",
        f"speedup:   {speedup:.2f}x (goal >= 1.8x on 2 cores); "
        f"per pair: {', '.join(f'{a / b:.2f}x' for a, b in zip(timings[1], timings[2], strict=True))}",
    ])
    return {"points": points, "end": end, "repeats": repeats, "seconds_1_worker": best[1],
            "seconds_2_workers": best[2], "runs_1_worker": timings[1], "runs_2_workers": timings[2],
            "speedup": speedup, "engine_seconds_per_point": point_seconds, "text": text}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["bare", "full", "no_orders", "nt_quoter", "signal_online"], required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog")
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()
    overrides = {"run.start": args.start} if args.start else {}
    if args.catalog:
        overrides["run.catalog"] = str(Path(args.catalog).resolve())
    if args.end:
        overrides["run.end"] = args.end
    print(json.dumps(_measure(args.mode, args.config, overrides)))


if __name__ == "__main__":
    main()
