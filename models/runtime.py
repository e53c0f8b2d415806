"""Running a trained model online, safely: load checks, inference, the fallback and its breaker.

A model that is missing, does not match the features, returns NaN/inf or overruns its latency
budget must never stop quoting or feed garbage to the strategy. `SignalEngine` answers every block:
with the model when it is healthy, otherwise with the rule-based fallback, and it trips a circuit
breaker (logged and counted) that keeps the model out for a cooldown before trying it again.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.fallback import fallback_probs
from models.features import FEATURE_NAMES

# A half-tick mid move at 0.40 USDC is 1.25 bps: the scale of a one-block move on Sei SEI/USDC.
DEFAULT_CLASS_MOVES_BPS = (-1.25, 0.0, 1.25)


class ModelError(Exception):
    """The model cannot be used: missing, corrupt, or built for other features."""


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    module: torch.jit.ScriptModule
    class_moves_bps: np.ndarray
    meta: dict

    @classmethod
    def load(cls, path: str | Path) -> LoadedModel:
        path = Path(path)
        meta_path, model_path = path / "meta.json", path / "model.pt"
        if not meta_path.is_file() or not model_path.is_file():
            raise ModelError(f"no model at {path}: expected meta.json and model.pt")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{meta_path} is not valid JSON: {exc}") from None
        names = meta.get("feature_names")
        if names != FEATURE_NAMES:
            raise ModelError(
                f"model {path} was trained on other features ({len(names or [])} named) than this "
                f"build computes ({len(FEATURE_NAMES)}): retrain it"
            )
        try:
            module = torch.jit.load(str(model_path), map_location="cpu")
            module.eval()
            probe = module(torch.zeros(1, len(FEATURE_NAMES), dtype=torch.float32))
        except Exception as exc:  # torch raises many types for a corrupt file
            raise ModelError(f"{model_path} cannot be loaded as a TorchScript model: {exc}") from None
        if tuple(probe.shape) != (1, 3):
            raise ModelError(f"{model_path} returns shape {tuple(probe.shape)}, expected (1, 3)")
        moves = np.asarray(meta.get("label", {}).get("class_mean_move_bps", DEFAULT_CLASS_MOVES_BPS), float)
        return cls(str(meta.get("model_id", path.name)), module, moves, meta)

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(x.astype(np.float32).reshape(1, -1)))[0].numpy().astype(float)


@dataclass
class SignalOutput:
    probs: np.ndarray
    expected_move_bps: float
    confidence: float
    model_id: str
    latency_us: float
    fallback: bool


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
            self.model = LoadedModel.load(self.model_dir)
        except ModelError as exc:
            self.model = None
            self._trip("missing", now_ns, str(exc))

    def _trip(self, reason: str, now_ns: int, detail: str) -> None:
        self.stats["trips"][reason] += 1
        self.open_until_ns = now_ns + self.cooldown_ns
        if self.log is not None:
            self.log.warning(f"signal model out ({reason}): {detail}; fallback until retry")

    def evaluate(self, x: np.ndarray, now_ns: int) -> SignalOutput:
        if self.model is None and self.model_dir is not None and now_ns >= self.open_until_ns:
            self._try_load(now_ns)  # first block, or a retry after the cooldown
        model = self.model
        if model is not None and now_ns >= self.open_until_ns:
            t0 = time.perf_counter_ns()
            probs = model.predict(x)
            latency_us = (time.perf_counter_ns() - t0) / 1_000
            if self.simulated_latency_us is not None:
                latency_us = self.simulated_latency_us
            self.latencies_us.append(latency_us)
            if not np.all(np.isfinite(probs)) or abs(probs.sum() - 1) > 1e-3 or np.any(probs < 0):
                self._trip("nan", now_ns, f"output {probs}")
            else:
                self.slow_streak = self.slow_streak + 1 if latency_us > self.latency_budget_ms * 1e3 else 0
                if self.slow_streak >= self.trip_after:
                    self.slow_streak = 0
                    self._trip("latency", now_ns, f"{self.trip_after} inferences over {self.latency_budget_ms} ms")
                self.stats["model_blocks"] += 1
                return self._output(probs, model.class_moves_bps, model.model_id, latency_us, False)
        self.stats["fallback_blocks"] += 1
        probs = np.asarray(fallback_probs(x.reshape(1, -1)), float).reshape(3)
        moves = model.class_moves_bps if model is not None else np.asarray(DEFAULT_CLASS_MOVES_BPS)
        return self._output(probs, moves, "fallback", 0.0, True)

    @staticmethod
    def _output(probs: np.ndarray, moves: np.ndarray, model_id: str, latency_us: float, fallback: bool) -> SignalOutput:
        return SignalOutput(probs, float(probs @ moves), float(probs.max()), model_id, latency_us, fallback)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_us) if self.latencies_us else np.zeros(0)

        def pct(q):
            return float(np.percentile(lat, q)) if len(lat) else None

        return {**self.stats, "trips": dict(self.stats["trips"]),
                "model_id": self.model.model_id if self.model else None,
                "inference_us_p50": pct(50), "inference_us_p99": pct(99),
                "inference_us_mean": float(lat.mean()) if len(lat) else None}
