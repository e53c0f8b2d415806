"""The `flashmm` command: a thin dispatcher over the library's entry points."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from data.venues import PROFILES, SEI_CLOB


def _cmd_backtest(args: argparse.Namespace) -> int:
    from backtests.config import load_config
    from backtests.report import side_by_side, summary
    from backtests.runner import run_backtest

    overrides = {"run.catalog": str(Path(args.catalog).resolve())} if args.catalog else {}
    for key, value in (("run.start", args.start), ("run.end", args.end), ("run.seed", args.seed)):
        if value is not None:
            overrides[key] = value
    if args.signal in ("on", "off"):
        overrides["strategy.use_signal"] = args.signal == "on"
    if args.signal != "both":
        config = load_config(args.config, overrides)
        result = run_backtest(config, out=args.out, progress=not args.quiet)
        print(summary(result.metrics, result.run_dir))
        return 0
    runs = {}
    for label, flag in (("signal off", False), ("signal on", True)):
        config = load_config(args.config, {**overrides, "strategy.use_signal": flag})
        runs[label] = run_backtest(config, out=args.out, progress=not args.quiet)
    print(side_by_side({label: r.metrics for label, r in runs.items()}))
    for label, r in runs.items():
        print(f"{label}: run written to {r.run_dir}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from backtests.bench import run_bench, run_scale_bench, run_sweep_bench

    if args.scale:
        report = run_scale_bench(args.config, hours=tuple(args.scale_hours), seed=args.scale_seed,
                                 cache_dir=args.scale_cache)
    elif args.sweep:
        report = run_sweep_bench(args.config, points=args.points, end=args.end, catalog=args.catalog,
                                 repeats=args.repeats)
    else:
        report = run_bench(args.config, catalog=args.catalog, end=args.end, repeats=args.repeats)
        if not args.no_live and args.live_venue == "monaco":
            from app.live.monaco_run import live_latency_monaco

            live = report["live_monaco"] = live_latency_monaco(args.config, seconds=args.live_seconds)
            report["text"] += (
                f"\nlive node on the local Monaco ({live['seconds']:g} s, {live['places']} orders, "
                f"{live['replaces']} replaces): tick-to-order (book update received -> order request on the wire) "
                f"p50 {_ms(live['tick_to_order_ms_p50'])}, p90 {_ms(live['tick_to_order_ms_p90'])}, "
                f"p99 {_ms(live['tick_to_order_ms_p99'])}, max {_ms(live['tick_to_order_ms_max'])} over "
                f"{live['tick_to_order_samples']} book-triggered reactions"
            )
        elif not args.no_live:
            from app.live.localrun import live_latency

            live = report["live_localnet"] = live_latency(args.config, seconds=args.live_seconds)
            report["text"] += (
                f"\nlive node on the localnet ({live['seconds']:g} s, {live['txs']} txs): tick-to-tx "
                f"(block event received -> signed tx sent) p50 {_ms(live['tick_to_tx_ms_p50'])}, "
                f"p99 {_ms(live['tick_to_tx_ms_p99'])} over {live['tick_to_tx_samples']} block-triggered txs"
            )
    print(json.dumps(report, indent=2) if args.json else report["text"])
    return 0


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _cmd_sweep(args: argparse.Namespace) -> int:
    from backtests.report import sweep_summary
    from backtests.sweep import run_sweep
    from backtests.sweep_config import load_sweep

    if args.cluster and args.workers:
        raise ValueError("--workers sizes the local process pool; with --cluster the cluster's workers run the points")
    spec = load_sweep(args.config)
    metric = args.metric or spec.metric
    try:
        result = run_sweep(spec, out=args.out, workers=args.workers, cluster=args.cluster, progress=not args.quiet,
                           metric=metric)
    except KeyboardInterrupt:
        print("\nflashmm sweep: interrupted; finished points are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    print(sweep_summary(result, metric, args.top))
    return 1 if result.failures else 0


def _cmd_app(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parent / "streamlit_app.py"
    runs = Path(args.runs).resolve()
    argv = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(args.port),
            "--server.address", args.address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer", "--", "--runs", str(runs)]
    argv += ["--live", str(Path(args.live).resolve())]
    print(f"FlashMM app on http://{args.address}:{args.port} (runs: {runs})", flush=True)
    os.execv(sys.executable, argv)  # the server becomes this process: stopping it stops the app


def _live_config(args: argparse.Namespace):
    from app.live.config import load_live_config

    overrides = {}
    if getattr(args, "mode", None):
        overrides["node.mode"] = args.mode
    if getattr(args, "rpc_url", None):
        overrides["sei.rpc_url"] = args.rpc_url
    if getattr(args, "api_url", None):
        overrides["monaco.api_url"] = args.api_url
    return load_live_config(args.config, overrides)


def _venue_text(config) -> str:
    if config.on_monaco:
        return f"Monaco at {config.monaco.api_url} ({config.monaco.symbol})"
    return f"{config.sei.rpc_url} (contract {config.sei.contract})"


def _cmd_live(args: argparse.Namespace) -> int:
    if args.action != "run":
        return _live_control(args)
    if not args.config:
        raise ValueError("flashmm live: running a node needs --config FILE")
    return _run_node(_live_config(args), args.duration, args.state_dir)


def _run_node(config, duration: float | None, state_dir: str | None) -> int:
    """What `flashmm live` and `flashmm serve` both run. A node stopped by a fault (it could not
    connect, or lost the venue) exits with status 1, so systemd or compose restarts it."""
    from app.live.node import NodeError, run_live, session_summary

    print(f"FlashMM {config.node.mode} node on {_venue_text(config)}; Ctrl-C stops it after cancelling every order",
          flush=True)
    try:
        session_dir = run_live(config, duration_secs=duration, state_dir=state_dir)
    except NodeError as exc:
        print(f"flashmm: error: {exc}", file=sys.stderr)
        return 1
    print(session_summary(session_dir))
    return 0


def _live_control(args: argparse.Namespace) -> int:
    from app.live.control import ControlError, send_command

    state_dir = args.state_dir or (_live_config(args).node.state_dir if args.config
                                   else os.environ.get("FLASHMM_STATE_DIR"))
    if not state_dir:
        raise ValueError(f"flashmm live {args.action}: name the node's state dir with --state-dir DIR or --config FILE "
                         "(or set $FLASHMM_STATE_DIR)")
    try:
        answer = send_command(state_dir, args.action, reason=args.reason)
    except ControlError as exc:
        print(f"flashmm: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer["status"] if args.action == "status" else answer, indent=2, default=str))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from app.live.entrypoint import config_from_env

    config = config_from_env(os.environ)
    if args.print_config:
        resolved = config.to_dict()
        url = urlsplit(resolved["node"]["redis_url"])
        if url.password:
            resolved["node"]["redis_url"] = url._replace(
                netloc=url.netloc.replace(f":{url.password}@", ":***@")).geturl()
        print(json.dumps(resolved, indent=2))
        return 0
    return _run_node(config, None, None)


def _cmd_record(args: argparse.Namespace) -> int:
    from app.live.record import RecordingError, record

    config = _live_config(args)
    print(f"recording {_venue_text(config)} into {args.out}; Ctrl-C stops", flush=True)
    try:
        print(json.dumps(record(config, args.out, duration_secs=args.duration), indent=2))
    except RecordingError as exc:
        print(json.dumps(exc.summary, indent=2))
        print(f"flashmm: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from app.live.parity import render, run_parity

    report = run_parity(args.config, tolerance_blocks=args.tolerance_blocks, out=args.out, venue=args.venue)
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


def _cmd_fidelity(args: argparse.Namespace) -> int:
    from backtests.fidelity import compare, render
    from data.catalog import open_tape, parse_time

    tape = open_tape(args.catalog)
    report = compare(
        tape, order_qty=args.order_qty, latency_ms=args.latency_ms, queue_model=args.queue_model,
        queue_power=args.queue_power, start_ns=parse_time(args.start, tape, "--start"),
        end_ns=parse_time(args.end, tape, "--end"),
    )
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models.report import render_evaluation, render_report
    from models.train import evaluate_artifact, json_clean, train

    if args.model:  # score a saved model, no training
        if not args.eval_catalog:
            raise ValueError("flashmm train --model DIR scores a saved model: name the catalogs with --eval-catalog")
        reports = [evaluate_artifact(args.model, c, args.eval_start, args.eval_end) for c in args.eval_catalog]
        for r in reports:
            print(render_evaluation(r))
        if args.report:
            _write_json(args.report, reports[0] if len(reports) == 1 else {"kind": "flashmm.signal_evaluations",
                                                                         "evaluations": reports})
        return 0
    missing = [name for name in ("catalog", "train_until", "out") if not getattr(args, name)]
    if missing:
        raise ValueError("flashmm train needs " + ", ".join("--" + m.replace("_", "-") for m in missing)
                         + " (or --model DIR --eval-catalog C to score a saved model)")
    report = train(args.catalog, args.train_until, args.valid_until, args.out, seed=args.seed,
                   horizons_s=tuple(args.horizons), main_horizon_s=args.main_horizon,
                   threshold_bps=args.threshold_bps, epochs=args.epochs, hidden=args.hidden, end=args.end,
                   folds=args.folds, candidates=tuple(args.candidates), eval_catalogs=tuple(args.eval_catalog or ()),
                   eval_start=args.eval_start, eval_end=args.eval_end, symmetric=not args.asymmetric)
    print(render_report(report))
    print(f"\nmodel written to {args.out}")
    if args.report:
        _write_json(args.report, json_clean(report))
        print(f"report written to {args.report}")
    return 0


def _write_json(path: str, value: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")


def _cmd_ablation(args: argparse.Namespace) -> int:
    from backtests.ablation import parse_span, render, run_ablation, synth_catalogs, write_report
    from backtests.config import load_config

    config = load_config(args.config)
    spans = [parse_span(c) for c in args.catalog] if args.catalog else [
        parse_span(config.run.catalog, config.run.start, config.run.end)]
    if args.synth:
        seeds = [int(s) for s in args.synth.split(",") if s.strip()]
        spans += [parse_span(str(p)) for p in synth_catalogs(seeds, args.synth_hours, Path(args.synth_dir))]
    report = run_ablation(args.config, spans, n_windows=args.windows, uses=args.uses, resamples=args.resamples,
                          seed=args.seed, workers=args.workers, progress=not args.quiet)
    print(render(report))
    if args.json:
        print(f"\nreport written to {write_report(report, args.json)}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from data.synth import generate

    path = generate(hours=args.hours, seed=args.seed, out=Path(args.out))
    print(f"wrote SYNTHETIC tape ({args.hours} h, seed {args.seed}) to {path}")
    return 0


def _cmd_import_tardis(args: argparse.Namespace) -> int:
    from data.tardis import import_tardis

    summary = import_tardis(
        book=Path(args.book), trades=Path(args.trades) if args.trades else None,
        instrument_id=args.instrument, price_precision=args.price_precision,
        size_precision=args.size_precision, out=Path(args.out), allow_crossed=args.allow_crossed,
        venue=args.venue_profile,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_localnet(args: argparse.Namespace) -> int:
    from adapters.sei.localnet.server import run_localnet

    return run_localnet(
        catalog=args.catalog, host=args.host, port=args.port, block_interval_ms=args.block_ms, seed=args.seed,
        key_file=Path(args.key_file), start=args.start, end=args.end, maker_fee=args.maker_fee,
        taker_fee=args.taker_fee,
    )


def _cmd_monaco(args: argparse.Namespace) -> int:
    """`flashmm monaco balances|deposit|withdraw`: the wallet on Monaco and on Sei EVM."""
    from adapters.monaco.errors import VenueError

    try:
        return _monaco_wallet(args)
    except VenueError as exc:  # the venue or the chain said no, or could not be reached: no traceback
        print(f"flashmm: error: {exc}", file=sys.stderr)
        return 2


def _monaco_wallet(args: argparse.Namespace) -> int:
    import asyncio
    from decimal import Decimal, InvalidOperation

    from adapters.monaco.keys import load_evm_signer
    from adapters.monaco.vault import Vault
    from adapters.monaco.wallet import venue_view

    if args.config:
        config = _live_config(args)
    else:  # as the service runs: $FLASHMM_CONFIG and the FLASHMM_* overrides (a container, systemd)
        from app.live.entrypoint import config_from_env

        config = config_from_env(os.environ)
    if not config.on_monaco:
        raise ValueError("flashmm monaco needs a node config with [venue] kind = \"monaco\"")
    m = config.monaco
    signer = load_evm_signer(env=m.key_env, file=Path(m.key_file).expanduser() if m.key_file else None)
    view = asyncio.run(venue_view(m.api_url, m.symbol, m.wire, signer, chain_id=m.chain_id, client_id=m.client_id,
                                  with_balances=args.action == "balances"))
    vault = Vault(args.rpc_url or m.evm_rpc_url, signer, chain_id=m.chain_id, vault=args.vault or m.vault_address,
                  abi=m.wire.vault)
    if args.action == "balances":
        out = {"wallet": signer.address, "venue": view.balances, "sei_evm": {}}
        for symbol, token in view.tokens.items():
            if token:
                units = vault.balance(token)
                out["sei_evm"][symbol] = str(Decimal(units).scaleb(-vault.decimals(token)))
        print(json.dumps(out, indent=2))
        return 0
    if not args.asset or args.amount is None:
        raise ValueError(f"flashmm monaco {args.action} needs --asset SYMBOL and --amount X")
    token = args.token or view.tokens.get(args.asset)
    if not token:
        raise ValueError(f"the pair {m.symbol} names no contract for {args.asset!r} "
                         f"(known: {', '.join(view.tokens) or 'none'}): pass --token ADDRESS")
    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        raise ValueError(f"--amount {args.amount!r} is not a number") from None
    sent = (vault.deposit if args.action == "deposit" else vault.withdraw)(token, amount)
    for s in sent:
        print(f"{s.what}: {s.tx_hash} (nonce {s.nonce}, gas price {s.gas_price} wei) confirmed in block {s.block}")
    return 0


def _cmd_monaco_local(args: argparse.Namespace) -> int:
    from adapters.monaco.local.server import run_monaco_local

    wire = None
    if args.wire:
        from adapters.monaco.wire import Wire
        from backtests.config import convert, load_toml_file

        wire = convert(load_toml_file(Path(args.wire), "wire file").get("wire", {}), Wire, args.wire)
    return run_monaco_local(
        catalog=args.catalog, host=args.host, port=args.port, seed=args.seed, key_file=Path(args.key_file),
        start=args.start, end=args.end, speed=args.speed, maker_fee_bps=args.maker_fee_bps,
        taker_fee_bps=args.taker_fee_bps, records=Path(args.records) if args.records else None, wire=wire,
        requests_per_s=args.requests_per_s, match_delay_ms=args.match_delay_ms,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashmm", description="FlashMM: simulation-first market making for Sei (NautilusTrader)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="run a backtest from a TOML config and print the report",
                        description="Backtest the market maker on a catalog; writes a run directory.")
    bt.add_argument("--config", required=True, help="TOML config, e.g. backtests/configs/sample.toml")
    bt.add_argument("--catalog", help="catalog directory (overrides run.catalog)")
    bt.add_argument("--out", help="directory to write the run directory into (default: run.out)")
    bt.add_argument("--start", help="window start: ISO time or offset like +30min (overrides run.start)")
    bt.add_argument("--end", help="window end: ISO time or offset like +1h (overrides run.end)")
    bt.add_argument("--seed", type=int, help="overrides run.seed")
    bt.add_argument("--signal", choices=["config", "on", "off", "both"], default="config",
                    help="trade on the ML signal: as the config says (default), on, off, or both (an "
                         "ablation: two runs, metrics side by side)")
    bt.add_argument("--quiet", action="store_true", help="no progress bar")
    bt.set_defaults(func=_cmd_backtest)

    bench = sub.add_parser("bench", help="events/s of the bare engine vs the full FlashMM stack, and peak RSS",
                           description="Benchmark: the same tape through the bare engine and the full stack.")
    bench.add_argument("--config",
                       default=str(Path(__file__).resolve().parent.parent / "backtests/configs/sample.toml"),
                       help="backtest config providing the tape and strategy (default: the sample)")
    bench.add_argument("--catalog", help="catalog directory (overrides run.catalog)")
    bench.add_argument("--end", help="window end, e.g. +1h (default: whole tape; +1h with --sweep)")
    bench.add_argument("--sweep", action="store_true",
                       help="instead: sweep scaling, the same points with 1 and with 2 worker processes")
    bench.add_argument("--points", type=int, default=8, help="sweep points for --sweep (default 8)")
    bench.add_argument("--repeats", type=int, default=3,
                       help="run each mode (with --sweep: 1 and 2 workers) this many times, alternating; "
                            "the fastest run of each counts (default 3)")
    bench.add_argument("--scale", action="store_true",
                       help="instead: the full stack on growing windows of a long synthetic tape (linear time, "
                            "flat memory)")
    bench.add_argument("--scale-hours", type=float, nargs="+", default=[1, 3, 6, 24],
                       help="--scale: window lengths in hours (default 1 3 6 24)")
    bench.add_argument("--scale-seed", type=int, default=21, help="--scale: the synthetic tape's seed (default 21)")
    bench.add_argument("--scale-cache", help="--scale: keep the generated tape in this directory and reuse it")
    bench.add_argument("--no-live", action="store_true", help="skip the live node's latency on a local venue")
    bench.add_argument("--live-venue", choices=["monaco", "sei-localnet"], default="monaco",
                       help="where the live latency is measured: the local Monaco (tick-to-order, default) or "
                            "the Sei localnet (tick-to-tx)")
    bench.add_argument("--live-seconds", type=float, default=300.0,
                       help="length of the live latency session (default 300: on the sample about 120 reactions, "
                            "so that the p99 is not simply the slowest one)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=_cmd_bench)

    sw = sub.add_parser("sweep", help="grid, random or walk-forward parameter sweep over backtests",
                        description="Run every point of a sweep file as a backtest (local process pool, or a Dask "
                                    "cluster), skipping finished points; write results.parquet and print the top N.")
    sw.add_argument("--config", required=True, help="sweep TOML, e.g. backtests/configs/sweep_sample.toml")
    sw.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    sw.add_argument("--cluster", metavar="ADDRESS", help="run on a Dask distributed scheduler, e.g. tcp://host:8786")
    sw.add_argument("--out", help="sweep directory (default: the file's `out`, or <base run.out>/<name>)")
    sw.add_argument("--top", type=int, default=5, help="how many points to print (default 5)")
    sw.add_argument("--metric", help="rank, and tune walk-forward folds, by this metric (default: the file's "
                                     "`metric`, or pnl_total)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_cmd_sweep)

    app = sub.add_parser("app", help="open the Streamlit app on run dirs, sweeps and a live node",
                         description="Start the Streamlit inspection app (runs, run detail, sweeps, live node).")
    app.add_argument("--runs", default="runs", help="directory holding run dirs and sweeps (default: runs)")
    app.add_argument("--live", default="runs/live",
                     help="a live node's state dir, where its sessions write status.json (default: runs/live, "
                          "the node's default)")
    app.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    app.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    app.set_defaults(func=_cmd_app)

    live = sub.add_parser("live", help="run the strategy live on Sei, or on paper against live market data",
                          description="Run the market maker on a TradingNode with the Sei adapter. The [strategy] "
                                      "section is the same as a backtest's. Stops on SIGINT/SIGTERM after "
                                      "cancelling every order and waiting for the chain to confirm.")
    live.add_argument("action", nargs="?", choices=["run", "status", "halt", "resume"], default="run",
                      help="run (default) a node; or, against the newest node running under the state dir: print "
                           "its status, halt it (cancel every order, trading HALTED), or resume it")
    live.add_argument("--config", help="node TOML, e.g. app/configs/live_localnet.toml (required to run)")
    live.add_argument("--mode", choices=["paper", "live"], help="overrides node.mode")
    live.add_argument("--rpc-url", help="overrides sei.rpc_url, e.g. ws://127.0.0.1:26657/websocket")
    live.add_argument("--api-url", help="overrides monaco.api_url, e.g. http://127.0.0.1:8080")
    live.add_argument("--duration", type=float, help="stop after this many seconds (default: node.duration_secs)")
    live.add_argument("--state-dir", help="where the session directory is written, or where status/halt/resume look "
                                          "for the running node (default: node.state_dir; for status/halt/resume "
                                          "without --config, $FLASHMM_STATE_DIR)")
    live.add_argument("--reason", help="halt/resume: why, logged by the node (and the halt reason it reports)")
    live.set_defaults(func=_cmd_live)

    serve = sub.add_parser("serve", help="run the node from FLASHMM_* environment variables (container, systemd)",
                           description="Run the live node as `flashmm live` does, configured by $FLASHMM_CONFIG (the "
                                       "base TOML) and FLASHMM_* overrides: MODE, LOG_LEVEL, STATE_DIR, REDIS_URL, "
                                       "OPS_HOST, OPS_PORT, VENUE, API_URL, EVM_RPC_URL, RPC_URL, CONTRACT, "
                                       "CHAIN_ID, KEY_FILE. Unknown FLASHMM_* "
                                       "variables are refused. Used by the Dockerfile and deploy/flashmm.service.")
    serve.add_argument("--print-config", action="store_true",
                       help="print the resolved config as JSON and exit (no node is started)")
    serve.set_defaults(func=_cmd_serve)

    rec = sub.add_parser("record", help="record the Sei market data the node sees into a catalog",
                         description="Record book deltas (one batch per block) and trades from the Sei data "
                                     "client into a ParquetDataCatalog that `flashmm backtest` reads.")
    rec.add_argument("--config", required=True, help="node TOML (its [sei] section is used)")
    rec.add_argument("--out", required=True, help="catalog directory to create")
    rec.add_argument("--rpc-url", help="overrides sei.rpc_url")
    rec.add_argument("--api-url", help="overrides monaco.api_url")
    rec.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    rec.set_defaults(func=_cmd_record)

    par = sub.add_parser("parity", help="backtest a tape, then trade the same tape live on a local venue; compare",
                         description="Replay the config's tape window through an in-process local Monaco (or the "
                                     "Sei localnet) while `flashmm live` trades it, backtest the same window, and "
                                     "report fill agreement, PnL difference and the node's latency. Runs in real "
                                     "time.")
    par.add_argument("--config", required=True,
                     help="backtest TOML, e.g. backtests/configs/parity_monaco.toml (the localnet: parity.toml)")
    par.add_argument("--venue", choices=["monaco", "sei-localnet"], default="monaco",
                     help="the local venue the node trades (default monaco)")
    par.add_argument("--tolerance-blocks", type=int, default=2, help="blocks a matching fill may be off (default 2)")
    par.add_argument("--out", help="where the parity directory is written (default: run.out)")
    par.add_argument("--json", action="store_true", help="print JSON")
    par.set_defaults(func=_cmd_parity)

    fid = sub.add_parser("fidelity", help="our queue-aware fills vs hftbacktest on the same tape and rule",
                         description="Run one touch-quoting rule through FlashMM's NautilusTrader fill model "
                                     "and through hftbacktest; print fill counts, maker volumes and ratios.")
    fid.add_argument("--catalog", required=True, help="catalog directory, e.g. data/sample")
    fid.add_argument("--order-qty", type=float,
                     help="order size per side (default: the window's median trade size, a market-sized order)")
    fid.add_argument("--latency-ms", type=float,
                     help="insert and cancel latency (default: the catalog's venue profile)")
    fid.add_argument("--queue-model", choices=["prob_power", "risk_averse"], default="prob_power")
    fid.add_argument("--queue-power", type=float, default=2.0, help="n for prob_power (default 2)")
    fid.add_argument("--start", help="window start: ISO time or offset like +30min")
    fid.add_argument("--end", help="window end: ISO time or offset like +1h")
    fid.add_argument("--json", action="store_true", help="print JSON")
    fid.set_defaults(func=_cmd_fidelity)

    tr = sub.add_parser("train", help="train and select the ML signal, score it out of sample, export it",
                        description="Train signal models (logistic regressions and an MLP) at several horizons on a "
                                    "catalog: fit up to --train-until, select and calibrate on [--train-until, "
                                    "--valid-until), score out of sample on what follows (and on --eval-catalog) "
                                    "against the baselines, and export the model that wins. With --model DIR "
                                    "--eval-catalog C it scores a saved model instead.")
    tr.add_argument("--catalog", help="catalog directory to train on, e.g. data/sample")
    tr.add_argument("--train-until", help="ISO time or offset from the tape start, e.g. +90min")
    tr.add_argument("--valid-until", help="end of the validation window (default: last 20%% of the train window)")
    tr.add_argument("--end", help="end of the out-of-sample test window (default: the tape end)")
    tr.add_argument("--out", help="artifact directory, e.g. models/artifacts/NAME")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--horizons", type=float, nargs="+", default=[1.0, 5.0, 30.0], metavar="SECONDS",
                    help="label horizons in seconds on the receive-time clock (default 1 5 30, the markout horizons)")
    tr.add_argument("--main-horizon", type=float, metavar="SECONDS",
                    help="the horizon the exported model predicts (default: where the best candidate gains most "
                         "over the one-feature logistic on the valid window)")
    tr.add_argument("--threshold-bps", type=float, default=0.0,
                    help="flat band of the label, bps (default 0: flat means the mid did not move)")
    tr.add_argument("--candidates", nargs="+", default=["logreg_all", "logreg_book", "mlp"],
                    choices=["logreg_all", "logreg_book", "mlp"], help="model families to fit and select from")
    tr.add_argument("--asymmetric", action="store_true",
                    help="fit on the data as it is, not also on its mirror image (the default makes models with no "
                         "built-in drift)")
    tr.add_argument("--epochs", type=int, default=30, help="maximum MLP epochs (early stopping)")
    tr.add_argument("--hidden", type=int, default=32, help="MLP hidden units per layer")
    tr.add_argument("--folds", type=int, default=3,
                    help="walk-forward folds over the test window, each refit on all data before it (0 = none)")
    tr.add_argument("--eval-catalog", action="append", metavar="DIR",
                    help="also score every model and baseline on this catalog (repeatable)")
    tr.add_argument("--eval-start", help="start of the window scored on each --eval-catalog (default: its start)")
    tr.add_argument("--eval-end", help="end of the window scored on each --eval-catalog (default: its end)")
    tr.add_argument("--model", metavar="DIR", help="score this saved model on --eval-catalog instead of training")
    tr.add_argument("--report", metavar="FILE", help="write the report as JSON")
    tr.set_defaults(func=_cmd_train)

    ab = sub.add_parser("ablation", help="the signal ablation over many windows, with a bootstrap interval",
                        description="Run the strategy with the signal off, on, and (with --uses) each use alone, "
                                    "on disjoint windows of one or more catalogs; report the mean PnL difference "
                                    "(net of fees and action costs) with a seeded bootstrap interval, markouts and "
                                    "adverse-fill rates.")
    ab.add_argument("--config", required=True, help="backtest config, e.g. backtests/configs/sample.toml")
    ab.add_argument("--catalog", action="append", metavar="DIR[@START..END]",
                    help="a catalog and the span to slice (default: the config's catalog and run window); repeatable")
    ab.add_argument("--synth", metavar="SEEDS", help="also synthetic tapes of these seeds, e.g. 1,2,3")
    ab.add_argument("--synth-hours", type=float, default=1.0, help="length of each synthetic tape (default 1)")
    ab.add_argument("--synth-dir", default="runs/ablation-tapes", help="where synthetic tapes are made and reused")
    ab.add_argument("--windows", type=int, default=4, help="disjoint windows per catalog span (default 4)")
    ab.add_argument("--uses", action="store_true", help="also run each use of the signal alone")
    ab.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10,000)")
    ab.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ab.add_argument("--workers", type=int, default=1, help="backtests run at once (default 1)")
    ab.add_argument("--json", metavar="FILE", help="write the report as JSON")
    ab.add_argument("--quiet", action="store_true", help="no progress bar")
    ab.set_defaults(func=_cmd_ablation)

    ln = sub.add_parser("localnet", help="run a local Sei chain with the CLOB contract, replaying a tape as the market",
                        description="Serve a local Sei chain (CometBFT JSON-RPC over WebSocket) running the CLOB "
                                    "contract, with the catalog's tape replayed as background liquidity. Writes "
                                    "the dev account's key to --key-file (mode 600) and runs until Ctrl-C.")
    ln.add_argument("--catalog", required=True, help="catalog directory whose tape is the market, e.g. data/sample")
    ln.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ln.add_argument("--port", type=int, default=26657, help="port to listen on (default 26657, 0 picks a free one)")
    ln.add_argument("--block-ms", type=float, default=SEI_CLOB.cadence_ms,
                    help=f"block interval in ms (default {SEI_CLOB.cadence_ms:g}, Sei's)")
    ln.add_argument("--seed", type=int, default=0, help="derives the dev, maker and taker keys (default 0)")
    ln.add_argument("--key-file", default="~/.flashmm/localnet.key",
                    help="where to write the dev account's key (default ~/.flashmm/localnet.key)")
    ln.add_argument("--start", help="tape window start: ISO time or offset like +30min")
    ln.add_argument("--end", help="tape window end: ISO time or offset like +1h")
    ln.add_argument("--maker-fee", default="0", help="the contract's maker fee rate (default 0)")
    ln.add_argument("--taker-fee", default="0.0005", help="the contract's taker fee rate (default 0.0005)")
    ln.set_defaults(func=_cmd_localnet)

    mon = sub.add_parser("monaco", help="the Monaco wallet: balances, vault deposit and withdraw on Sei EVM",
                         description="balances: the wallet's balances on Monaco (REST, after the wallet's login) and "
                                     "its token balances on Sei EVM. deposit: approve the vault (if needed), then "
                                     "deposit; withdraw: the vault's withdraw. Each transaction waits for its "
                                     "receipt. The vault's address and ABI are UNCONFIRMED: see VENUE.md.")
    mon.add_argument("action", choices=["balances", "deposit", "withdraw"])
    mon.add_argument("--config", help="node TOML with [venue] kind = \"monaco\" (its [monaco] section); default: "
                                      "the node's environment, as `flashmm serve` reads it ($FLASHMM_CONFIG, ...)")
    mon.add_argument("--api-url", help="overrides monaco.api_url")
    mon.add_argument("--rpc-url", help="Sei EVM JSON-RPC (overrides monaco.evm_rpc_url)")
    mon.add_argument("--vault", help="the vault contract (overrides monaco.vault_address)")
    mon.add_argument("--asset", help="deposit/withdraw: the token's symbol, the pair's base or quote (e.g. USDC)")
    mon.add_argument("--amount", help="deposit/withdraw: how much, in the token's units (e.g. 250.5)")
    mon.add_argument("--token", help="the token contract, when the pair's metadata names none")
    mon.set_defaults(func=_cmd_monaco)

    ml = sub.add_parser("monaco-local", help="run a local Monaco (REST + WebSocket) replaying a tape as the market",
                        description="Serve Monaco's REST API and WebSocket (the dialect of adapters/monaco/wire.py) on "
                                    "one port, with the catalog's tape replayed as the market on its own clock, "
                                    "orders matched price-time against it, the wallet login verified, rate limits "
                                    "and fault switches (POST /_flashmm/fault). Writes the dev wallet's key to "
                                    "--key-file (mode 600) and runs until Ctrl-C.")
    ml.add_argument("--catalog", required=True, help="catalog directory whose tape is the market, e.g. data/sample")
    ml.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ml.add_argument("--port", type=int, default=8080, help="port (default 8080, Monaco's local preset; 0 = free)")
    ml.add_argument("--seed", type=int, default=0, help="derives the dev wallet and the ids (default 0)")
    ml.add_argument("--key-file", default="~/.flashmm/monaco-local.key",
                    help="where to write the dev wallet's key (default ~/.flashmm/monaco-local.key)")
    ml.add_argument("--start", help="tape window start: ISO time or offset like +30min")
    ml.add_argument("--end", help="tape window end: ISO time or offset like +1h")
    ml.add_argument("--speed", type=float, default=1.0, help="tape seconds per second (default 1: real time)")
    ml.add_argument("--maker-fee-bps", default="0", help="the pair's maker fee in basis points (default 0)")
    ml.add_argument("--taker-fee-bps", default="5", help="the pair's taker fee in basis points (default 5)")
    ml.add_argument("--records", help="directory for the venue's own records of every order and fill (JSON lines)")
    ml.add_argument("--wire", help="TOML file with a [wire] table: serve a corrected Monaco dialect")
    ml.add_argument("--requests-per-s", type=float, default=50.0, help="per-client REST rate limit (default 50)")
    ml.add_argument("--match-delay-ms", type=float, default=0.0, help="delay before an order is matched (default 0)")
    ml.set_defaults(func=_cmd_monaco_local)

    data = sub.add_parser("data", help="make or import tapes", description="Make or import tapes.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    synth = data_sub.add_parser("synth", help="generate a SYNTHETIC Sei-like L2 tape into a catalog",
                                description="Generate a synthetic SEI/USDC tape (one book batch per ~400 ms block).")
    synth.add_argument("--hours", type=float, required=True, help="length of the tape in hours")
    synth.add_argument("--seed", type=int, required=True, help="random seed; same seed, same bytes")
    synth.add_argument("--out", required=True, help="catalog directory to create")
    synth.set_defaults(func=_cmd_synth)

    tardis = data_sub.add_parser("import-tardis", help="import Tardis incremental_book_L2 + trades CSVs",
                                 description="Import Tardis CSV (.csv or .csv.gz) into a catalog; "
                                             "nothing is written unless every row is valid.")
    tardis.add_argument("--book", required=True, help="incremental_book_L2 CSV")
    tardis.add_argument("--trades", help="trades CSV")
    tardis.add_argument("--instrument", required=True, help="instrument id BASE/QUOTE.VENUE, e.g. SEI/USDC.SEI")
    tardis.add_argument("--price-precision", type=int, required=True, help="price decimals, e.g. 4")
    tardis.add_argument("--size-precision", type=int, required=True, help="size decimals, e.g. 1")
    tardis.add_argument("--out", required=True, help="catalog directory")
    tardis.add_argument("--venue-profile", choices=sorted(PROFILES),
                        help="the venue the data comes from (fees, latency, update cadence), recorded in the catalog")
    tardis.add_argument("--allow-crossed", action="store_true",
                        help="import a book that is crossed after some batch (refused by default); the count of "
                             "crossed batches is recorded in the catalog's metadata")
    tardis.set_defaults(func=_cmd_import_tardis)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        # Our errors (config, catalog, input format) already say what is wrong; no traceback.
        print(f"flashmm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
