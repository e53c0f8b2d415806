"""`flashmm bench`: what the FlashMM stack costs on top of the bare NautilusTrader engine.

Each mode runs in its own process so that peak RSS is that mode's alone. Events are individual
records (book deltas + trades); events/s is over the engine's run loop only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from backtests.config import load_config


def _measure(mode: str, config_path: str, overrides: dict) -> dict:
    from backtests.runner import build_engine, run_backtest, stream, window
    from data.catalog import open_tape

    if mode == "bare":
        # NautilusTrader alone: no strategy, no recorder, no queue-fill module.
        overrides = {**overrides, "venue.fill_model": "cross"}
    config = load_config(config_path, overrides)
    if mode == "bare":
        tape = open_tape(config.run.catalog, config.run.instrument_id or None)
        start_ns, end_ns = window(config, tape)
        engine, _, _ = build_engine(config, tape)
        t0 = time.perf_counter()
        events = stream(engine, tape, start_ns, end_ns, config.run.chunk_minutes, progress=False)
        engine.end()
        wall = time.perf_counter() - t0
        engine.dispose()
    else:
        result = run_backtest(config, write=False)
        events, wall = result.metrics["events_processed"], result.metrics["wall_seconds"]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "events": events, "wall_seconds": wall, "events_per_sec": events / wall,
            "peak_rss_mb": rss_mb}


def run_bench(config_path: str, catalog: str | None = None, end: str | None = None) -> dict:
    args = [sys.executable, "-m", "backtests.bench", "--config", config_path]
    if catalog:
        args += ["--catalog", catalog]
    if end:
        args += ["--end", end]
    results = {}
    for mode in ("bare", "full"):
        proc = subprocess.run([*args, "--mode", mode], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench mode {mode} failed:\n{proc.stderr[-2000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    bare, full = results["bare"], results["full"]
    ratio = full["events_per_sec"] / bare["events_per_sec"]
    text = "\n".join([
        f"tape: {bare['events']:,} events",
        f"bare engine (no strategy): {bare['events_per_sec']:>12,.0f} events/s  peak RSS {bare['peak_rss_mb']:,.0f} MB",
        f"full FlashMM stack:        {full['events_per_sec']:>12,.0f} events/s  peak RSS {full['peak_rss_mb']:,.0f} MB",
        f"full / bare throughput ratio: {ratio:.3f}",
    ])
    return {"bare": bare, "full": full, "ratio_full_to_bare": ratio, "text": text}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["bare", "full"], required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog")
    parser.add_argument("--end")
    args = parser.parse_args()
    overrides = {}
    if args.catalog:
        from pathlib import Path

        overrides["run.catalog"] = str(Path(args.catalog).resolve())
    if args.end:
        overrides["run.end"] = args.end
    print(json.dumps(_measure(args.mode, args.config, overrides)))


if __name__ == "__main__":
    main()
