"""The signal runtime never lets a bad model reach the strategy: fallback, breaker, retry."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from models.features import FEATURE_NAMES
from models.runtime import LoadedModel, ModelError, SignalEngine
from models.signal_data import SignalData
from strategies.config import parse_strategy_config
from strategies.signal import ModelSignal

S = 1_000_000_000
X = np.zeros(len(FEATURE_NAMES))


class Constant(torch.nn.Module):
    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(probs, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p.repeat(x.shape[0], 1) + 0 * x[:, :1]


def artifact(tmp_path, probs=(0.2, 0.5, 0.3), names=None, model_bytes=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if model_bytes is None:
        torch.jit.script(Constant(list(probs))).save(str(tmp_path / "model.pt"))
    else:
        (tmp_path / "model.pt").write_bytes(model_bytes)
    meta = {"model_id": "test-model", "feature_names": names or FEATURE_NAMES,
            "label": {"class_mean_move_bps": [-2.0, 0.0, 2.0]}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_healthy_model_is_used(tmp_path):
    engine = SignalEngine(str(artifact(tmp_path)))
    out = engine.evaluate(X, 1 * S)
    assert not out.fallback and out.model_id == "test-model"
    assert out.probs == pytest.approx([0.2, 0.5, 0.3])
    assert out.expected_move_bps == pytest.approx(0.2 * -2 + 0.3 * 2)
    assert out.confidence == pytest.approx(0.5) and out.latency_us > 0


@pytest.mark.parametrize("make, reason", [
    (lambda p: p / "nowhere", "no model"),
    (lambda p: artifact(p, model_bytes=b"not a torchscript file"), "cannot be loaded"),
    (lambda p: artifact(p, names=["something_else"]), "other features"),
])
def test_missing_corrupt_or_incompatible_model_falls_back_and_retries(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ModelError, match=reason):
        LoadedModel.load(path)
    engine = SignalEngine(str(path), cooldown_ns=10 * S)
    outs = [engine.evaluate(X, t * S) for t in range(1, 6)]
    assert all(o.fallback and o.model_id == "fallback" for o in outs)
    assert all(np.isfinite(o.probs).all() and o.probs.sum() == pytest.approx(1) for o in outs)
    assert engine.stats["trips"]["missing"] == 1  # tried once, then waits out the cooldown
    engine.evaluate(X, 12 * S)
    assert engine.stats["trips"]["missing"] == 2  # retried after the cooldown


def test_nan_output_trips_then_model_is_retried(tmp_path):
    engine = SignalEngine(str(artifact(tmp_path, probs=(float("nan"), 0.5, 0.5))), cooldown_ns=10 * S)
    first = engine.evaluate(X, 1 * S)
    assert first.fallback and engine.stats["trips"]["nan"] == 1
    assert engine.evaluate(X, 5 * S).fallback  # breaker open: the model is not even asked
    assert engine.stats["trips"]["nan"] == 1
    engine.evaluate(X, 12 * S)  # cooldown over: asked again, still NaN
    assert engine.stats["trips"]["nan"] == 2


def test_slow_model_trips_after_consecutive_overruns(tmp_path):
    engine = SignalEngine(str(artifact(tmp_path)), latency_budget_ms=1.0, trip_after=3, cooldown_ns=10 * S)
    engine.evaluate(X, 1 * S)
    healthy = engine.model

    class Slow:
        model_id, class_moves_bps = healthy.model_id, healthy.class_moves_bps

        def predict(self, x):
            time.sleep(0.003)
            return healthy.predict(x)

    engine.model = Slow()
    outs = [engine.evaluate(X, t * S) for t in range(2, 6)]
    assert engine.stats["trips"]["latency"] == 1
    assert [o.fallback for o in outs] == [False, False, False, True]


def signal(p_down, p_flat, p_up, move=1.0):
    probs = (p_down, p_flat, p_up)
    return SignalData(None, p_down, p_flat, p_up, move, max(probs), "m", 10.0, False, 5 * S, 5 * S)


def test_strategy_maps_the_signal_with_its_knobs():
    cfg = parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "use_signal": True, "signal_fair_shift_mult": 2.0})
    source = ModelSignal(cfg)
    source.update(signal(0.3, 0.4, 0.3))
    assert source.latest(5 * S) is None  # below 0.6 confidence: ignored
    source.update(signal(0.0, 1.0, 0.0, move=0.0))
    assert source.latest(5 * S).spread_scale == pytest.approx(0.7)  # certain: 30% tighter, no more
    source.update(signal(0.05, 0.15, 0.8, move=1.5))
    s = source.latest(5 * S)
    assert s.fair_shift_bps == pytest.approx(3.0)
    assert s.spread_scale == pytest.approx(1 - 0.3 * 0.5)
    assert s.bid_size_scale > 1 > s.ask_size_scale  # expecting up: lean to buying


def test_predictions_at_t_do_not_depend_on_data_after_t():
    from pathlib import Path

    from data.catalog import open_tape
    from models.features import offline_features

    root = Path(__file__).resolve().parent.parent
    tape = open_tape(root / "data/sample")
    cut = tape.start_ns + 10 * 60 * S
    short = offline_features(tape, None, cut)
    longer = offline_features(tape, None, cut + 10 * 60 * S)
    model = LoadedModel.load(root / "models/artifacts/sample")
    rows = short[FEATURE_NAMES].to_numpy()[-200:]
    same = longer[FEATURE_NAMES].to_numpy()[len(short) - 200: len(short)]
    assert np.array_equal(rows, same)
    assert all(np.array_equal(model.predict(a), model.predict(b)) for a, b in zip(rows, same, strict=True))
