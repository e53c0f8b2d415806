"""The signal runtime never lets a bad model reach the strategy: fallback, breaker, retry."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from models.fallback import fallback_probs
from models.features import FEATURE_NAMES
from models.runtime import LoadedModel, ModelError, SignalEngine, directional_confidence
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


def artifact(tmp_path, probs=(0.2, 0.5, 0.3), names=None, model_bytes=None, p_move=0.3):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if model_bytes is None:
        torch.jit.script(Constant(list(probs))).save(str(tmp_path / "model.pt"))
    else:
        (tmp_path / "model.pt").write_bytes(model_bytes)
    meta = {"model_id": "test-model", "feature_names": names or FEATURE_NAMES,
            "label": {"class_mean_move_bps": [-2.0, 0.0, 2.0], "horizon_s": 5.0}, "fallback": {"p_move": p_move}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_healthy_model_is_used(tmp_path):
    engine = SignalEngine(str(artifact(tmp_path)))
    out = engine.evaluate(X, 1 * S)
    assert not out.fallback and out.model_id == "test-model"
    assert out.probs == pytest.approx([0.2, 0.5, 0.3])
    assert out.expected_move_bps == pytest.approx(0.2 * -2 + 0.3 * 2)
    assert out.horizon_s == 5.0 and out.latency_us > 0
    # directional: |p_up - p_down|, never the flat class's 0.5 (the largest probability here)
    assert out.confidence == pytest.approx(0.1)


@pytest.mark.parametrize("probs, confidence", [
    ((0.05, 0.9, 0.05), 0.0),  # sure nothing moves: no direction at all
    ((0.0, 1.0, 0.0), 0.0),
    ((0.45, 0.1, 0.45), 0.0),  # a big move either way: still no direction
    ((0.1, 0.2, 0.7), 0.6),
    ((0.7, 0.3, 0.0), 0.7),
])
def test_confidence_is_directional_and_ignores_the_flat_class(tmp_path, probs, confidence):
    assert directional_confidence(np.array(probs)) == pytest.approx(confidence)
    out = SignalEngine(str(artifact(tmp_path, probs=probs))).evaluate(X, 1 * S)
    assert out.confidence == pytest.approx(confidence, abs=1e-6)


def test_the_fallback_uses_what_the_artifact_knows_of_the_market(tmp_path):
    """A corrupt model.pt beside a readable meta.json: the fallback takes its base chance of a move
    and its class moves from the meta; with no artifact at all, half the row's spread."""
    x = X.copy()
    x[FEATURE_NAMES.index("imb_1")] = 0.8
    x[FEATURE_NAMES.index("spread_bps")] = 3.0
    informed = SignalEngine(str(artifact(tmp_path / "a", model_bytes=b"junk", p_move=0.3))).evaluate(x, 1 * S)
    assert informed.fallback and informed.horizon_s == 5.0
    np.testing.assert_allclose(informed.probs, fallback_probs(x, p_move=0.3)[0])
    assert informed.expected_move_bps == pytest.approx(informed.probs @ np.array([-2.0, 0.0, 2.0]))
    bare = SignalEngine(str(tmp_path / "nowhere")).evaluate(x, 1 * S)
    np.testing.assert_allclose(bare.probs, fallback_probs(x)[0])
    assert bare.expected_move_bps == pytest.approx(bare.probs @ np.array([-1.5, 0.0, 1.5]))
    assert np.isnan(bare.horizon_s)
    assert informed.probs[1] > bare.probs[1]  # a market that rarely moves: more weight on flat


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
        model_id, class_moves_bps, horizon_s = healthy.model_id, healthy.class_moves_bps, healthy.horizon_s

        def predict(self, x):
            time.sleep(0.003)
            return healthy.predict(x)

    engine.model = Slow()
    outs = [engine.evaluate(X, t * S) for t in range(2, 6)]
    assert engine.stats["trips"]["latency"] == 1
    assert [o.fallback for o in outs] == [False, False, False, True]


def signal(p_down, p_flat, p_up, move=1.0):
    return SignalData(None, p_down, p_flat, p_up, move, abs(p_up - p_down), 5.0, "m", 10.0, False, 5 * S, 5 * S)


def model_signal(**knobs) -> ModelSignal:
    return ModelSignal(parse_strategy_config({"instrument_id": "SEI/USDC.SEI", "use_signal": True, **knobs}))


def test_strategy_maps_the_signal_with_its_knobs():
    source = model_signal(signal_fair_shift_mult=2.0, signal_size_lean=True)
    assert model_signal().cfg.signal_size_lean is False and model_signal().cfg.signal_tighten is False
    source.update(signal(0.0, 1.0, 0.0, move=0.0))
    s = source.latest(5 * S)
    # certain of no move: no direction, so nothing to act on, and no blanket tightening by default
    assert (s.fair_shift_bps, s.spread_scale, s.shape()) == (0.0, 1.0, (0.0, 0.0, 1.0, 1.0))
    assert s.fair_from_mid  # the fair skew's forecast replaces the microprice's
    source.update(signal(0.05, 0.15, 0.8, move=1.5))  # edge +0.75: up, strongly
    s = source.latest(5 * S)
    assert s.fair_shift_bps == pytest.approx(3.0)
    assert s.ask_size_scale == 0.0 and s.bid_widen_bps == 0.0  # the ask would be run over: pulled
    assert s.bid_size_scale == pytest.approx(1 + 0.4)  # lean 0.5 x 0.75, in steps of 0.1
    source.update(signal(0.3, 0.4, 0.3))
    s = source.latest(5 * S)
    assert s.shape() == (0.0, 0.0, 1.0, 1.0) and s.fair_shift_bps == pytest.approx(2.0)


def test_adverse_protection_acts_on_the_side_that_would_be_run_over_with_hysteresis():
    """Defaults: a side steps back 2 bps from |edge| 0.4, is pulled from 0.6, and stays protected
    until |edge| < 0.2 or the lean turns: a forecast wobbling around 0.4 does not flip the quotes."""
    source = model_signal(signal_fair_skew=False, signal_size_lean=False)
    steps = [  # (p_down, p_flat, p_up) -> (bid widen, ask widen, bid scale, ask scale)
        ((0.35, 0.45, 0.2), (0.0, 0.0, 1.0, 1.0)),  # edge -0.15: nothing
        ((0.5, 0.45, 0.05), (2.0, 0.0, 1.0, 1.0)),  # edge -0.45: the bid steps back
        ((0.4, 0.45, 0.15), (2.0, 0.0, 1.0, 1.0)),  # edge -0.25: still protected (above the release)
        ((0.7, 0.25, 0.05), (0.0, 0.0, 0.0, 1.0)),  # edge -0.65: the bid is pulled
        ((0.45, 0.4, 0.15), (2.0, 0.0, 1.0, 1.0)),  # edge -0.3: back, still stepped back
        ((0.3, 0.55, 0.15), (0.0, 0.0, 1.0, 1.0)),  # edge -0.15: released
        ((0.35, 0.4, 0.25), (0.0, 0.0, 1.0, 1.0)),  # edge -0.1... -0.25 after a release: not re-entered
        ((0.05, 0.5, 0.45), (0.0, 2.0, 1.0, 1.0)),  # edge +0.4: now the ask
        ((0.3, 0.4, 0.3), (0.0, 0.0, 1.0, 1.0)),  # edge 0: released
        ((0.1, 0.6, 0.3), (0.0, 0.0, 1.0, 1.0)),  # edge +0.2: not entered below 0.4
    ]
    for probs, shape in steps:
        source.update(signal(*probs))
        s = source.latest(5 * S)
        assert s.shape() == pytest.approx(shape), probs
        assert s.fair_shift_bps == 0.0 and not s.fair_from_mid
    flip = model_signal(signal_fair_skew=False)
    flip.update(signal(0.5, 0.45, 0.05))
    assert flip.latest(5 * S).shape() == (2.0, 0.0, 1.0, 1.0)
    flip.update(signal(0.1, 0.6, 0.3))  # the lean turned: the bid is released at once
    assert flip.latest(5 * S).shape() == (0.0, 0.0, 1.0, 1.0)


def test_each_use_is_switched_on_its_own():
    data = signal(0.7, 0.2, 0.1, move=-2.0)  # edge -0.6
    off = model_signal(signal_fair_skew=False, signal_adverse_protection=False, signal_size_lean=False)
    off.update(data)
    assert off.latest(5 * S) == type(off.latest(5 * S))(ts_ns=5 * S)  # nothing on: the neutral signal
    skew = model_signal(signal_adverse_protection=False, signal_size_lean=False)
    skew.update(data)
    assert skew.latest(5 * S).fair_shift_bps == pytest.approx(-2.0) and skew.latest(5 * S).shape() == (0, 0, 1, 1)
    lean = model_signal(signal_fair_skew=False, signal_adverse_protection=False, signal_size_lean=True)
    lean.update(data)
    assert lean.latest(5 * S).shape() == (0.0, 0.0, pytest.approx(0.7), pytest.approx(1.3))
    gated = model_signal(signal_min_confidence=0.7)
    gated.update(data)
    assert gated.latest(5 * S).shape() == (0.0, 0.0, 1.0, 1.0) and gated.latest(5 * S).fair_shift_bps == 0.0


def test_tightening_only_when_the_model_expects_no_move_and_is_switched_on():
    calm = signal(0.04, 0.92, 0.04)
    default = model_signal()
    default.update(calm)
    assert default.latest(5 * S).spread_scale == 1.0  # off unless asked for
    tight = model_signal(signal_tighten=True, signal_tighten_min_flat=0.5)
    tight.update(calm)
    # (0.92 - 0.5) / 0.5 = 84% of the way: 0.3 x 0.84 = 0.252, in steps of 0.05: 25% tighter
    assert tight.latest(5 * S).spread_scale == pytest.approx(0.75)
    tight.update(signal(0.5, 0.45, 0.05))  # p_flat 0.45: below the threshold, and the bid is at risk
    assert tight.latest(5 * S).spread_scale == 1.0
    tight.update(signal(0.0, 0.55, 0.45))  # calm enough, but the ask is at risk: no tightening
    assert tight.latest(5 * S).spread_scale == 1.0
    tight.update(signal(0.2, 0.55, 0.25))  # the ask released: a little tighter
    assert tight.latest(5 * S).spread_scale == pytest.approx(0.95)


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
