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
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from backtests.config import load_config
from backtests.sweep import run_sweep
from backtests.sweep_config import load_sweep


def _timed_strategy():
    from strategies.market_maker import MarketMaker

    class TimedMarketMaker(MarketMaker):
        """Times the per-block callback (book batch in, quotes out) for the bench."""

        def __init__(self, config) -> None:
            super().__init__(config)
            self.callback_ns: list[int] = []

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
    # A benchmark reports the real inference time, which a backtest otherwise simulates.
    config = load_config(config_path, {**overrides, "signal.inference_latency": "measured"})
    if mode in ("bare", "nt_quoter"):
        tape = open_tape(config.run.catalog, config.run.instrument_id or None)
        start_ns, end_ns = window(config, tape)
        engine, instrument, _ = build_engine(config, tape)
        quoter = None
        if mode == "nt_quoter":
            from backtests.fidelity import TouchQuoter, TouchQuoterConfig

            quoter = TouchQuoter(TouchQuoterConfig(instrument_id=instrument.id, order_qty=100.0))
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
    return {"mode": mode, "events": events, "wall_seconds": wall, "events_per_sec": events / wall,
            "peak_rss_mb": rss_mb, "orders": orders, "fill_model": config.venue.fill_model, **extra}


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} us"


def run_bench(config_path: str, catalog: str | None = None, end: str | None = None) -> dict:
    args = [sys.executable, "-m", "backtests.bench", "--config", config_path]
    if catalog:
        args += ["--catalog", catalog]
    if end:
        args += ["--end", end]
    results = {}
    for mode in ("bare", "full", "no_orders", "nt_quoter"):
        proc = subprocess.run([*args, "--mode", mode], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench mode {mode} failed:\n{proc.stderr[-2000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    bare, full, quiet, nt = results["bare"], results["full"], results["no_orders"], results["nt_quoter"]
    ratio = full["events_per_sec"] / bare["events_per_sec"]
    quiet_ratio = quiet["events_per_sec"] / bare["events_per_sec"]
    order_cost_us = (full["wall_seconds"] - quiet["wall_seconds"]) / max(full["orders"], 1) * 1e6

    def row(name, r):
        return f"{name:<42}{r['events_per_sec']:>12,.0f} events/s  peak RSS {r['peak_rss_mb']:,.0f} MB"

    text = "\n".join([
        f"tape: {bare['events']:,} events; fill model {full['fill_model']}",
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
        f"strategy per-block callback p50/p99: {_us(full['callback_us_p50'])} / {_us(full['callback_us_p99'])}",
    ])
    sig = full.get("signal")
    if sig:
        text += (f"\nsignal inference ({sig['model_id']}) p50/p99: {_us(sig['inference_us_p50'])} / "
                 f"{_us(sig['inference_us_p99'])}, mean {_us(sig['inference_us_mean'])}")
    return {"bare": bare, "full": full, "no_orders": quiet, "nt_quoter": nt, "ratio_full_to_bare": ratio,
            "ratio_no_orders_to_bare": quiet_ratio, "us_per_order": order_cost_us, "text": text}


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
        fixed = {"run.end": end, "strategy.use_signal": False}
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
    parser.add_argument("--mode", choices=["bare", "full", "no_orders", "nt_quoter"], required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog")
    parser.add_argument("--end")
    args = parser.parse_args()
    overrides = {}
    if args.catalog:
        overrides["run.catalog"] = str(Path(args.catalog).resolve())
    if args.end:
        overrides["run.end"] = args.end
    print(json.dumps(_measure(args.mode, args.config, overrides)))


if __name__ == "__main__":
    main()
