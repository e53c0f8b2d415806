"""The signal ablation: does trading on the signal earn more than trading without it, beyond noise?

Every window of every catalog is run once per arm: `off` (the strategy without the signal), `on`
(the signal with the uses the config switches on) and, with `uses=True`, each use alone (fair
skew, adverse-selection protection, size lean, tightening). An arm's effect in a window is its PnL
minus the `off` run's PnL in that same window: net of fees and per-action costs, since both come
out of `pnl_total`. Across windows the report gives the mean difference with a seeded percentile
bootstrap interval (windows resampled with replacement), the share of windows the arm won, and
each arm's markouts and adverse-fill rates, pooled over synthetic and recorded tapes separately
(a synthetic market says nothing about a real one) and per catalog.

Windows are disjoint slices of each catalog's span: out of sample for a model trained elsewhere
(other seeds, another capture) or before the span starts. `synth_catalogs` makes the synthetic
tapes of the given seeds (deterministic, cached under the output directory).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtests.config import load_config
from backtests.metrics import MARKOUT_HORIZONS

# Each arm is the signal on with these uses switched (the `on` arm keeps the config's own).
USES = {
    "fair_skew": "signal_fair_skew",
    "adverse": "signal_adverse_protection",
    "size_lean": "signal_size_lean",
    "tighten": "signal_tighten",
}
ADVERSE_HORIZONS = ("1s", "5s", "30s")
CI_LEVEL = 0.90
BOOTSTRAP_RESAMPLES = 10_000
KIND = "flashmm.ablation"
RUNS_PER_WORKER = 16


@dataclass(frozen=True)
class Span:
    catalog: str
    start: str  # "" = the catalog's start
    end: str  # "" = its end


def parse_span(text: str, default_start: str = "", default_end: str = "") -> Span:
    """`DIR` or `DIR@START..END` (either bound may be empty): a catalog and the span to slice."""
    catalog, _, span = text.partition("@")
    if not span:
        return Span(str(Path(catalog).expanduser().resolve()), default_start, default_end)
    start, sep, end = span.partition("..")
    if not sep:
        raise ValueError(f"catalog span {text!r}: write DIR@START..END (e.g. data/sample@+120min..)")
    return Span(str(Path(catalog).expanduser().resolve()), start, end)


def synth_catalogs(seeds: list[int], hours: float, out: Path) -> list[Path]:
    """The synthetic tapes of `seeds` (`hours` long each) under `out`, made once and reused."""
    from data.synth import generate

    paths = []
    for seed in seeds:
        path = out / f"synth-{hours:g}h-s{seed}"
        if not (path / "flashmm_catalog.json").exists():
            generate(hours=hours, seed=seed, out=path)
        paths.append(path)
    return paths


def arm_overrides(uses: bool) -> dict[str, dict]:
    """Arm name -> config overrides."""
    arms = {"off": {"strategy.use_signal": False}, "on": {"strategy.use_signal": True}}
    if uses:
        for name, knob in USES.items():
            arms[name] = {"strategy.use_signal": True,
                          **{f"strategy.{k}": k == knob for k in USES.values()}}
    return arms


def windows_of(config_path: str, span: Span, n: int) -> list[tuple[int, int]]:
    """`n` equal, disjoint windows over the span (in ns), the span as a backtest would resolve it."""
    from backtests.runner import window
    from data.catalog import open_tape

    config = load_config(config_path, {"run.catalog": span.catalog, "run.start": span.start, "run.end": span.end})
    tape = open_tape(config.run.catalog, config.run.instrument_id or None)
    lo, hi = window(config, tape)
    cuts = [lo + (hi - lo) * i // n for i in range(n + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(n)]


def adverse_fill_rates(fills) -> dict[str, float | None]:
    """Per horizon, the share of filled quantity whose markout was negative (the mid moved against
    the fill by then), over fills whose horizon lies inside the run."""
    out = {}
    for h in ADVERSE_HORIZONS:
        col = f"markout_{h}_bps"
        if fills is None or len(fills) == 0 or col not in fills:
            out[h] = None
            continue
        m = fills[col].to_numpy(float)
        q = fills["qty"].to_numpy(float)
        ok = ~np.isnan(m)
        out[h] = float(q[ok & (m < 0)].sum() / q[ok].sum()) if q[ok].sum() > 0 else None
    return out


def run_one(config_path: str, catalog: str, start_ns: int, end_ns: int, overrides: dict) -> dict:
    """One backtest of the ablation; the figures the report uses."""
    from backtests.runner import run_backtest
    from data.catalog import iso_utc

    config = load_config(config_path, {**overrides, "run.catalog": catalog, "run.start": iso_utc(start_ns),
                                       "run.end": iso_utc(end_ns)})
    result = run_backtest(config, write=False)
    m = result.metrics
    sig = m.get("signal") or {}
    return {
        "pnl_total": m["pnl_total"], "pnl_spread_capture": m["pnl_spread_capture"],
        "pnl_inventory": m["pnl_inventory"], "fees_paid": m["fees_paid"], "costs_paid": m["costs_paid"],
        "actions_sent": m["actions_sent"], "fill_count": m["fill_count"], "maker_volume": m["maker_volume"],
        "markout_bps": m["markout_bps"], "adverse_fill_rate": adverse_fill_rates(result.analytics.fills),
        "halted": m["halted"], "model_id": sig.get("model_id"), "model_blocks": sig.get("model_blocks"),
        "fallback_blocks": sig.get("fallback_blocks"),
    }


def bootstrap_mean_ci(x, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                      level: float = CI_LEVEL) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of `x` (resampled with replacement), seeded:
    the same data and seed give the same interval. (None, None) for fewer than two values."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def _weighted_markouts(runs: list[dict]) -> dict:
    """Markouts and adverse-fill rates over a group of runs, weighted by each run's maker volume."""
    out = {"markout_bps": {}, "adverse_fill_rate": {}}
    for key, horizons in (("markout_bps", list(MARKOUT_HORIZONS)), ("adverse_fill_rate", list(ADVERSE_HORIZONS))):
        for h in horizons:
            pairs = [(r[key][h], r["maker_volume"]) for r in runs if r[key].get(h) is not None]
            w = sum(v for _, v in pairs)
            out[key][h] = float(sum(x * v for x, v in pairs) / w) if w > 0 else None
    return out


def summarise(windows: list[dict], arms: list[str], resamples: int, seed: int) -> dict:
    """Per arm: the mean PnL and its difference from `off` with the bootstrap interval, per group."""
    groups = {"synthetic": [w for w in windows if w["synthetic"]],
              "recorded": [w for w in windows if not w["synthetic"]]}
    for catalog in dict.fromkeys(w["catalog"] for w in windows):
        groups[f"catalog:{Path(catalog).name}"] = [w for w in windows if w["catalog"] == catalog]
    summary = {}
    for group, ws in groups.items():
        if not ws:
            continue
        per_arm = {}
        for arm in arms:
            runs = [w["arms"][arm] for w in ws]
            diff = [w["arms"][arm]["pnl_total"] - w["arms"]["off"]["pnl_total"] for w in ws]
            low, high = bootstrap_mean_ci(diff, resamples, seed) if arm != "off" else (None, None)
            per_arm[arm] = {
                "windows": len(ws),
                "pnl_total_mean": _mean(r["pnl_total"] for r in runs),
                "costs_paid_mean": _mean(r["costs_paid"] for r in runs),
                "fees_paid_mean": _mean(r["fees_paid"] for r in runs),
                "pnl_inventory_mean": _mean(r["pnl_inventory"] for r in runs),
                "pnl_spread_capture_mean": _mean(r["pnl_spread_capture"] for r in runs),
                "fill_count_mean": _mean(r["fill_count"] for r in runs),
                "actions_sent_mean": _mean(r["actions_sent"] for r in runs),
                "diff_vs_off": None if arm == "off" else {
                    "mean": _mean(diff), "ci_low": low, "ci_high": high, "ci_level": CI_LEVEL,
                    "share_positive": float(np.mean(np.asarray(diff) > 0)),
                    "above_zero": low is not None and low > 0,
                },
                **_weighted_markouts(runs),
            }
        summary[group] = per_arm
    return summary


def run_ablation(
    config_path: str | Path,
    spans: list[Span],
    n_windows: int = 4,
    uses: bool = False,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Run every arm on every window of every span; the report (see the module docstring)."""
    if n_windows < 1:
        raise ValueError(f"windows per catalog must be >= 1, got {n_windows}")
    if not spans:
        raise ValueError("the ablation needs at least one catalog")
    config_path = str(Path(config_path).resolve())
    arms = arm_overrides(uses)
    jobs = []
    windows = []
    for span in spans:
        from data.catalog import iso_utc, open_tape

        tape = open_tape(span.catalog)
        for lo, hi in windows_of(config_path, span, n_windows):
            windows.append({"catalog": span.catalog, "start": iso_utc(lo), "end": iso_utc(hi),
                            "synthetic": bool(tape.meta.get("synthetic", False)), "arms": {}})
            for arm, overrides in arms.items():
                jobs.append((len(windows) - 1, arm, (config_path, span.catalog, lo, hi, overrides)))
    results = _run_jobs(jobs, workers, progress)
    for (i, arm, _), result in zip(jobs, results, strict=True):
        windows[i]["arms"][arm] = result
    base = load_config(config_path)
    return {
        "kind": KIND,
        "config": config_path,
        "signal_model": base.signal.model or None,
        "strategy": {k: v for k, v in base.strategy.items() if k.startswith("signal_") or k == "use_signal"},
        "arms": {name: overrides for name, overrides in arms.items()},
        "windows_per_catalog": n_windows,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": CI_LEVEL, "method": "percentile, windows "
                      "resampled with replacement"},
        "windows": windows,
        "summary": summarise(windows, list(arms), resamples, seed),
    }


def _run_jobs(jobs: list, workers: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="run", desc="ablation", disable=not progress, leave=False)
    if workers <= 1:
        out = []
        for _, _, args in jobs:
            out.append(run_one(*args))
            bar.update()
        bar.close()
        return out
    # A fresh interpreter per worker (spawn), never a fork of a parent that may hold an engine; a
    # fresh pool every RUNS_PER_WORKER runs a worker bounds NautilusTrader's per-process growth.
    # (Not max_tasks_per_child: Python 3.11's pool can hang replacing a retired worker, cpython #115634.)
    context = multiprocessing.get_context("spawn")
    out: list[dict] = []
    step = workers * RUNS_PER_WORKER
    for i in range(0, len(jobs), step):
        with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(run_one, *args) for _, _, args in jobs[i: i + step]]
            for _ in cf.as_completed(futures):
                bar.update()
            out += [f.result() for f in futures]
    bar.close()
    return out


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render(report: dict) -> str:
    """The ablation as text: per group, each arm's mean PnL, its difference from `off` with the
    bootstrap interval, markouts and adverse-fill rates."""
    b = report["bootstrap"]
    lines = [f"signal ablation: {len(report['windows'])} windows x {len(report['arms'])} arms; model "
             f"{report['signal_model']}; PnL net of fees and action costs; {b['level']:.0%} interval of the mean "
             f"difference from {b['resamples']:,} bootstrap resamples of the windows (seed {b['seed']})"]
    for group, arms in report["summary"].items():
        n = next(iter(arms.values()))["windows"]
        lines += ["", f"== {group} ({n} windows) ==",
                  f"{'arm':<10} {'PnL':>9} {'on - off':>9} {'90% CI':>21} {'won':>5} {'costs':>8} {'fills':>6} "
                  f"{'markout 1s/5s/30s bps':>22} {'adverse 1s/5s/30s':>18}"]
        for arm, s in arms.items():
            d = s["diff_vs_off"]
            ci = "" if d is None else f"[{_fmt(d['ci_low'], '+.4f')}, {_fmt(d['ci_high'], '+.4f')}]"
            mk = "/".join(_fmt(s["markout_bps"].get(h), "+.2f") for h in ADVERSE_HORIZONS)
            adv = "/".join(_fmt(s["adverse_fill_rate"].get(h), ".0%") for h in ADVERSE_HORIZONS)
            lines.append(f"{arm:<10} {_fmt(s['pnl_total_mean'], '+.4f'):>9} "
                         f"{'' if d is None else _fmt(d['mean'], '+.4f'):>9} {ci:>21} "
                         f"{'' if d is None else format(d['share_positive'], '.0%'):>5} "
                         f"{_fmt(s['costs_paid_mean'], '.3f'):>8} {_fmt(s['fill_count_mean'], '.0f'):>6} "
                         f"{mk:>22} {adv:>18}")
    return "\n".join(lines)


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path
