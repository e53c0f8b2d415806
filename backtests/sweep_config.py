"""The sweep file: which backtests a sweep runs, as a list of points over a base backtest config.

A sweep file names a base config and the parameters to vary. Every point is just that base config
plus dotted-key overrides, so anything `flashmm backtest` can run a sweep can vary, and each
point's run dir is an ordinary one. Points are validated up front: a typo in the 40th point must
not surface after 39 backtests have run.

    base = "sample.toml"              # relative to this file
    name = "spread_skew"              # default: the file's stem
    metric = "pnl_total"              # what `flashmm sweep` ranks by (default pnl_total)
    out = "runs/spread_skew"          # default: <base run.out>/<name>, relative to the working dir

    [fixed]                           # overrides applied to every point
    "strategy.use_signal" = false

    [grid]                            # every combination; or [random], not both
    "strategy.half_spread_bps" = [2.0, 4.0]
    "venue.latency_ms" = [200, 400]

    [random]
    samples = 16
    seed = 1
    "strategy.half_spread_bps" = { low = 1.0, high = 6.0 }             # uniform
    "strategy.gamma" = { low = 0.01, high = 1.0, log = true }          # log-uniform
    "strategy.levels" = { low = 1, high = 4 }                          # integers, both ends included
    "strategy.fair_value" = ["mid", "microprice"]                      # a choice

    [walk_forward]                    # every point on every window; tune on one, report the next
    windows = [["+0min", "+30min"], ["+30min", "+60min"], ["+60min", "+90min"]]

Keys may also be written as TOML tables (`[grid.strategy]` then `half_spread_bps = [...]`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backtests.config import BacktestConfig, load_config, load_toml_file
from strategies.config import ConfigError

SECTIONS = ("run", "venue", "signal", "strategy")
# Overrides that are paths: relative to the sweep file, like every path in a config file.
PATH_KEYS = ("run.catalog", "signal.model")
TOP_KEYS = {"base", "name", "metric", "out", "fixed", "grid", "random", "walk_forward"}


@dataclass(frozen=True)
class Point:
    """One backtest of the sweep: its parameters (dotted key -> value) and its walk-forward window."""

    params: dict[str, Any]
    window: int | None = None  # index into SweepSpec.windows

    @property
    def point_id(self) -> str:
        """Names the point's run dir; stable across reruns so that finished points can be found."""
        key = json.dumps({"params": self.params, "window": self.window}, sort_keys=True, default=str)
        return "pt-" + hashlib.sha1(key.encode()).hexdigest()[:10]


@dataclass
class SweepSpec:
    path: Path
    base: Path
    name: str
    metric: str
    out: Path
    fixed: dict[str, Any]
    params: list[str]  # the varied keys, in file order
    points: list[Point]
    windows: list[tuple[str, str]] = field(default_factory=list)
    mode: str = "grid"

    def overrides(self, point: Point) -> dict[str, Any]:
        """The dotted-key overrides that turn the base config into this point's config."""
        overrides = {**self.fixed, **point.params, "run.name": f"{self.name}-{point.point_id}"}
        if point.window is not None:
            overrides["run.start"], overrides["run.end"] = self.windows[point.window]
        return overrides

    def config(self, point: Point) -> BacktestConfig:
        try:
            return load_config(self.base, self.overrides(point))
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: point {_describe(point.params)}: {exc}") from None


def config_hash(config: BacktestConfig) -> str:
    """Identifies what a point computes; where its output goes (run.out) and whether its signal is
    computed in a worker process (signal.worker: the same rows either way) do not change that."""
    resolved = config.to_dict()
    resolved["run"].pop("out")
    resolved["signal"].pop("worker")
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    raw = load_toml_file(path, "sweep file")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key `{unknown[0]}` (expected one of {', '.join(sorted(TOP_KEYS))})")
    if "base" not in raw:
        raise ConfigError(f"{path}: `base` (the backtest config to sweep over) is required")
    base = (path.parent / raw["base"]).resolve()
    name = str(raw.get("name", path.stem))
    fixed = _resolve_paths(_flatten(raw.get("fixed", {}), "fixed", path), path)
    if ("grid" in raw) == ("random" in raw):
        raise ConfigError(f"{path}: give exactly one of [grid] or [random]")
    if "grid" in raw:
        mode, grid = "grid", _flatten(raw["grid"], "grid", path)
        combos = _grid(grid, path)
    else:
        mode, grid, combos = "random", *_random(raw["random"], path)
    combos = [_resolve_paths(c, path) for c in combos]
    windows = _windows(raw.get("walk_forward"), path)
    if windows and any(k in {**fixed, **grid} for k in ("run.start", "run.end")):
        raise ConfigError(f"{path}: [walk_forward] sets run.start and run.end; do not also set them")
    window_ids = list(range(len(windows))) or [None]
    points = list({p.point_id: p for p in (Point(c, w) for w in window_ids for c in combos)}.values())
    base_out = load_config(base).run.out  # also checks that the base config loads
    spec = SweepSpec(path=path, base=base, name=name, metric=str(raw.get("metric", "pnl_total")),
                     out=Path(raw["out"]) if "out" in raw else Path(base_out) / name, fixed=fixed,
                     params=list(grid), points=points, windows=windows, mode=mode)
    for point in points:
        spec.config(point)
    return spec


def _flatten(table: Any, where: str, path: Path) -> dict[str, Any]:
    """`{"strategy.x": v}` and `{"strategy": {"x": v}}` both become `{"strategy.x": v}`."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table of `section.key = value`")
    flat = {}
    for key, value in table.items():
        if "." in key:
            flat[key] = value
        elif key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            raise ConfigError(f"{path}: [{where}] key `{key}` is not `section.key` with section one of "
                              f"{', '.join(SECTIONS)}")
    for key in flat:
        if key.split(".", 1)[0] not in SECTIONS:
            raise ConfigError(f"{path}: [{where}] key `{key}`: section must be one of {', '.join(SECTIONS)}")
    return flat


def _resolve_paths(values: dict[str, Any], path: Path) -> dict[str, Any]:
    return {k: str((path.parent / v).resolve()) if k in PATH_KEYS and v and not Path(v).is_absolute() else v
            for k, v in values.items()}


def _grid(grid: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: [grid] `{key}` must be a non-empty list of values")
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _random(table: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    table = dict(table)
    samples, seed = table.pop("samples", None), table.pop("seed", None)
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"{path}: [random] needs `samples`, a positive integer")
    if not isinstance(seed, int):
        raise ConfigError(f"{path}: [random] needs `seed`, an integer, so the same file draws the same points")
    space = _flatten(table, "random", path)
    if not space:
        raise ConfigError(f"{path}: [random] names no parameter to vary")
    rng = np.random.default_rng(seed)
    draws = {key: [_draw(rng, key, dist, path) for _ in range(samples)] for key, dist in space.items()}
    return space, [{key: draws[key][i] for key in space} for i in range(samples)]


def _draw(rng: np.random.Generator, key: str, dist: Any, path: Path) -> Any:
    if isinstance(dist, list) and dist:
        return dist[int(rng.integers(len(dist)))]
    if not (isinstance(dist, dict) and {"low", "high"} <= set(dist) <= {"low", "high", "log"}):
        raise ConfigError(f"{path}: [random] `{key}` must be a list of choices or {{ low = ..., high = ... "
                          f"[, log = true] }}")
    low, high, log = dist["low"], dist["high"], bool(dist.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ConfigError(f"{path}: [random] `{key}`: low and high must be numbers with low < high")
    if log and low <= 0:
        raise ConfigError(f"{path}: [random] `{key}`: a log range needs low > 0")
    if isinstance(low, int) and isinstance(high, int) and not log:
        return int(rng.integers(low, high + 1))
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    return round(float(value), 6)  # readable in tables and TOML; far finer than any knob matters


def _windows(table: Any, path: Path) -> list[tuple[str, str]]:
    if table is None:
        return []
    windows = table.get("windows") if isinstance(table, dict) else None
    if set(table) - {"windows"} or not isinstance(windows, list) or len(windows) < 2 or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(b, str) for b in w) for w in windows):
        raise ConfigError(f"{path}: [walk_forward] needs `windows`, a list of at least two [start, end] pairs "
                          f"such as [\"+0min\", \"+30min\"]")
    return [(w[0], w[1]) for w in windows]


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(base config)"
