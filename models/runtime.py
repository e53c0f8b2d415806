"""Running a trained model online, safely: load checks, inference, the fallback and its breaker.

A model that is missing, does not match the features, returns NaN/inf or overruns its latency
budget must never stop quoting or feed garbage to the strategy. `SignalEngine` answers every book
batch: with the model when it is healthy, otherwise with the rule-based fallback, and it trips a
circuit breaker (logged and counted) that keeps the model out for a cooldown before trying it
again. (`model_blocks` / `fallback_blocks` count book batches; the names are kept for the node's
metrics.)
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.fallback import DEFAULT_P_MOVE, fallback_probs
from models.features import FEATURE_NAMES
from models.kernel import BatchInvariantNet

_SPREAD_COL = FEATURE_NAMES.index("spread_bps")


@dataclass(frozen=True)
class FallbackSpec:
    """What the rule-based fallback knows about the market: its base chance of a move and the
    mean move of each class (bps), both from the model's training data (meta.json). Without an
    artifact nothing is known: the rule's default chance, and a move of half the current spread
    (a one-tick mid move when the spread is one tick), read from the row itself."""

    p_move: float = DEFAULT_P_MOVE
    class_moves_bps: tuple[float, float, float] | None = None
    horizon_s: float | None = None

    @classmethod
    def from_meta(cls, meta: dict) -> FallbackSpec:
        label = meta.get("label") or {}
        moves = label.get("class_mean_move_bps")
        p_move = (meta.get("fallback") or {}).get("p_move", DEFAULT_P_MOVE)
        return cls(float(p_move), tuple(float(m) for m in moves) if moves else None, label.get("horizon_s"))

    def moves(self, x: np.ndarray) -> np.ndarray:
        if self.class_moves_bps is not None:
            return np.asarray(self.class_moves_bps)
        half = float(x.reshape(-1)[_SPREAD_COL]) / 2 if np.isfinite(x.reshape(-1)[_SPREAD_COL]) else 0.0
        return np.array([-half, 0.0, half])


class ModelError(Exception):
    """The model cannot be used: missing, corrupt, or built for other features."""


def read_meta(path: str | Path) -> dict:
    meta_path = Path(path) / "meta.json"
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    module: torch.jit.ScriptModule
    class_moves_bps: np.ndarray
    horizon_s: float | None
    meta: dict
    # FlashMM's own exported models are evaluated batch-invariantly (models/kernel.py), so that a
    # backtest's batched scoring equals the live node's row by row; any other TorchScript module is
    # called one row at a time on both paths.
    kernel: BatchInvariantNet | None = None

    @classmethod
    def load(cls, path: str | Path) -> LoadedModel:
        path = Path(path)
        meta_path, model_path = path / "meta.json", path / "model.pt"
        if not meta_path.is_file() or not model_path.is_file():
            raise ModelError(f"no model at {path}: expected meta.json and model.pt")
        meta = read_meta(path)
        names = meta.get("feature_names")
        if names != FEATURE_NAMES:
            raise ModelError(
                f"model {path} was trained on other features ({len(names or [])} named) than this "
                f"build computes ({len(FEATURE_NAMES)}): retrain it"
            )
        try:
            module = torch.jit.load(str(model_path), map_location="cpu")
            module.eval()
            for parameter in module.parameters():  # inference only: a module saved with trainable
                parameter.requires_grad_(False)  # weights would otherwise fail under inference_mode
            probe = module(torch.zeros(1, len(FEATURE_NAMES), dtype=torch.float32))
        except Exception as exc:  # torch raises many types for a corrupt file
            raise ModelError(f"{model_path} cannot be loaded as a TorchScript model: {exc}") from None
        if tuple(probe.shape) != (1, 3):
            raise ModelError(f"{model_path} returns shape {tuple(probe.shape)}, expected (1, 3)")
        label = meta.get("label") or {}
        moves = label.get("class_mean_move_bps")
        if moves is None or len(moves) != 3:
            raise ModelError(f"{meta_path} gives no label.class_mean_move_bps (the mean move of each class)")
        horizon = label.get("horizon_s")
        return cls(str(meta.get("model_id", path.name)), module, np.asarray(moves, float),
                   float(horizon) if horizon is not None else None, meta, BatchInvariantNet.from_module(module))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of one feature row."""
        if self.kernel is not None:
            return self.kernel.probs(self.kernel.logits(x.reshape(1, -1))[0])
        with torch.inference_mode():
            return self.module(torch.from_numpy(x.astype(np.float32).reshape(1, -1)))[0].numpy().astype(float)

    def predict_many(self, x: np.ndarray) -> list[np.ndarray]:
        """`predict` of each row of [N, F], bit for bit, in one pass where the model allows it."""
        if self.kernel is None:
            return [self.predict(row) for row in x]
        return [self.kernel.probs(row) for row in self.kernel.logits(x)]


@dataclass
class SignalOutput:
    probs: np.ndarray  # down, flat, up
    expected_move_bps: float  # probs . class mean moves
    confidence: float  # directional: |p_up - p_down|, never the flat class's probability
    horizon_s: float  # what the probabilities are about (nan: unknown, the bare fallback)
    model_id: str
    latency_us: float
    fallback: bool


def _is_distribution(probs: np.ndarray) -> bool:
    """Finite, non-negative, summing to 1 (to 1e-3): what a model's output must be to be used.
    Plain float arithmetic on the three values: this runs on every book batch."""
    down, flat, up = probs.tolist()
    total = down + flat + up
    return (math.isfinite(total) and down >= 0.0 and flat >= 0.0 and up >= 0.0
            and abs(total - 1.0) <= 1e-3)


def directional_confidence(probs: np.ndarray) -> float:
    """How strongly the forecast leans one way: |p_up - p_down| in [0, 1]. A forecast that is sure
    nothing moves (p_flat = 1) has no direction and no confidence."""
    return float(abs(probs[2] - probs[0]))


@dataclass
class SignalEngine:
    """The model when healthy, the fallback otherwise; trips on bad output or slow inference."""

    model_dir: str | None
    latency_budget_ms: float = 5.0
    trip_after: int = 3  # consecutive over-budget inferences before tripping (one slow call is noise)
    cooldown_ns: int = 60_000_000_000
    # A backtest must not depend on how busy the machine is: there each inference "takes" this
    # configured time instead of the measured one (None = measure, as a live node must).
    simulated_latency_us: float | None = None
    log: object = None
    model: LoadedModel | None = None
    fallback_spec: FallbackSpec = field(default_factory=FallbackSpec)
    open_until_ns: int = 0
    slow_streak: int = 0
    stats: dict = field(default_factory=lambda: {
        "model_blocks": 0, "fallback_blocks": 0, "trips": {"missing": 0, "nan": 0, "latency": 0},
    })
    # Recent inference latencies for p50/p99; bounded so a node running for weeks does not grow.
    latencies_us: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def _try_load(self, now_ns: int) -> None:
        if self.model_dir is None:
            return
        try:
            self.fallback_spec = FallbackSpec.from_meta(read_meta(self.model_dir))
        except (ModelError, TypeError, ValueError):
            pass  # no usable meta.json either: the fallback knows nothing of the market
        try:
            self.model = LoadedModel.load(self.model_dir)
        except ModelError as exc:
            self.model = None
            self._trip("missing", now_ns, str(exc))

    def _trip(self, reason: str, now_ns: int, detail: str) -> None:
        self.stats["trips"][reason] += 1
        self.open_until_ns = now_ns + self.cooldown_ns
        if self.log is not None:
            self.log.warning(f"signal model out ({reason}): {detail}; fallback until retry")

    def preload(self) -> bool:
        """Load the model now, if it loads: what `ready` would load at the first book batch. A model
        that does not load changes nothing here (`ready` then fails and trips at that batch, on its
        clock). Returns whether the model is loaded."""
        if self.model is None and self.model_dir is not None:
            try:
                spec, model = FallbackSpec.from_meta(read_meta(self.model_dir)), LoadedModel.load(self.model_dir)
            except (ModelError, TypeError, ValueError):
                return False
            self.fallback_spec, self.model = spec, model
        return self.model is not None

    def ready(self, now_ns: int) -> LoadedModel | None:
        """The model, loading it first where `evaluate` at `now_ns` would: on the first book batch,
        or on a retry after the cooldown. None while there is none."""
        if self.model is None and self.model_dir is not None and now_ns >= self.open_until_ns:
            self._try_load(now_ns)
        return self.model

    def evaluate(self, x: np.ndarray, now_ns: int, precomputed: tuple[np.ndarray, float] | None = None) -> SignalOutput:
        """The signal of one feature row. `precomputed` is (the model's probabilities for `x`, the
        inference time to count), from a batched `LoadedModel.predict_many` of the loaded model:
        used in its place only where the model would be called."""
        model = self.ready(now_ns)
        if model is not None and now_ns >= self.open_until_ns:
            if precomputed is None:
                t0 = time.perf_counter_ns()
                probs = model.predict(x)
                latency_us = (time.perf_counter_ns() - t0) / 1_000
            else:
                probs, latency_us = precomputed
            if self.simulated_latency_us is not None:
                latency_us = self.simulated_latency_us
            self.latencies_us.append(latency_us)
            if not _is_distribution(probs):
                self._trip("nan", now_ns, f"output {probs}")
            else:
                self.slow_streak = self.slow_streak + 1 if latency_us > self.latency_budget_ms * 1e3 else 0
                if self.slow_streak >= self.trip_after:
                    self.slow_streak = 0
                    self._trip("latency", now_ns, f"{self.trip_after} inferences over {self.latency_budget_ms} ms")
                self.stats["model_blocks"] += 1
                return self._output(probs, model.class_moves_bps, model.horizon_s, model.model_id, latency_us, False)
        self.stats["fallback_blocks"] += 1
        spec = self.fallback_spec
        probs = np.asarray(fallback_probs(x.reshape(1, -1), spec.p_move), float).reshape(3)
        return self._output(probs, spec.moves(x), spec.horizon_s, "fallback", 0.0, True)

    @staticmethod
    def _output(probs: np.ndarray, moves: np.ndarray, horizon_s: float | None, model_id: str, latency_us: float,
                fallback: bool) -> SignalOutput:
        return SignalOutput(probs, float(probs @ moves), directional_confidence(probs),
                            math.nan if horizon_s is None else float(horizon_s), model_id, latency_us, fallback)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_us) if self.latencies_us else np.zeros(0)

        def pct(q):
            return float(np.percentile(lat, q)) if len(lat) else None

        meta = self.model.meta if self.model else {}
        return {**self.stats, "trips": dict(self.stats["trips"]),
                "model_id": self.model.model_id if self.model else None,
                "horizon_s": self.model.horizon_s if self.model else self.fallback_spec.horizon_s,
                "evaluation": model_summary(meta) if meta else None,
                "inference_us_p50": pct(50), "inference_us_p99": pct(99),
                "inference_us_mean": float(lat.mean()) if len(lat) else None}


def model_summary(meta: dict) -> dict | None:
    """What a run records of its model's out-of-sample evaluation (from meta.json): the selection,
    the verdict and the test-window scores per horizon of every model and baseline (log loss,
    AUC, directional AUC, ECE), compact enough for metrics.json."""
    report = meta.get("report")
    if not isinstance(report, dict):
        return None
    keep = ("log_loss", "auc", "direction_auc", "ece", "accuracy", "n")
    horizons = {}
    for key, h in (report.get("horizons") or {}).items():
        horizons[key] = {name: {k: s.get(k) for k in keep} for name, s in (h.get("test") or {}).items()}
    return {"model_id": meta.get("model_id"), "catalog": report.get("catalog"), "selection": meta.get("selection"),
            "verdict": meta.get("verdict"), "windows": meta.get("windows"), "test": horizons}
