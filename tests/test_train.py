"""Signal-model training: forecast metrics by hand, the rule-based fallback, and train() on the sample
(artifact contract, determinism, out-of-sample skill, calibration output, window errors)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models import metrics
from models.fallback import fallback_from, fallback_probs
from models.features import FEATURE_NAMES
from models.train import L1_IMBALANCE, fit_temperature, render_report, train

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
# torch marks TorchScript deprecated; the runtime contract is still a TorchScript file.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
SMALL = dict(train_until="+40min", valid_until="+55min", end="+70min")


# ---------------------------------------------------------------------------------------------
# metrics


def test_log_loss_and_accuracy_by_hand():
    y = [0, 1, 2]
    p = [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
    assert metrics.log_loss(y, p) == pytest.approx(-(math.log(0.5) + math.log(0.8) + math.log(0.6)) / 3)
    assert metrics.accuracy(y, p) == 1.0
    # A certain miss is clipped, not infinite; argmax ties go to the first class.
    assert metrics.log_loss([1], [[1.0, 0.0, 0.0]]) == pytest.approx(-math.log(metrics.EPS))
    assert metrics.accuracy([0, 1], [[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]]) == 0.5
    with pytest.raises(ValueError, match="drop unlabelled"):
        metrics.log_loss([-1], [[0.3, 0.4, 0.3]])


def test_binary_auc_counts_ties_as_half():
    # Positives 0.9 and 0.5, negatives 0.9 and 0.1: pairs (0.9,0.9)=1/2, (0.9,0.1)=1, (0.5,0.9)=0, (0.5,0.1)=1.
    assert metrics.binary_auc([1, 0, 1, 0], [0.9, 0.9, 0.5, 0.1]) == pytest.approx(2.5 / 4)
    assert metrics.binary_auc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == 0.5
    assert metrics.binary_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert math.isnan(metrics.binary_auc([1, 1], [0.2, 0.3]))


def test_multiclass_auc_is_macro_one_vs_rest():
    y = np.array([0, 0, 1, 2])
    p = np.array([[0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]])
    # class 0: positives {0.6, 0.3} vs negatives {0.3, 0.1}: 1 + 1 + 0.5 + 1 = 3.5 / 4
    # class 1: positive 0.3 vs negatives {0.3, 0.3, 0.2}: 0.5 + 0.5 + 1 = 2 / 3
    # class 2: positive 0.7 vs negatives {0.1, 0.4, 0.4}: 3 / 3
    expected = (3.5 / 4 + 2 / 3 + 1.0) / 3
    assert metrics.multiclass_auc(y, p) == pytest.approx(expected)
    assert metrics.per_class_auc(y, p) == pytest.approx([3.5 / 4, 2 / 3, 1.0])
    # A class that never occurs has no AUC and is left out of the mean.
    assert metrics.multiclass_auc([0, 2], [[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]]) == 1.0
    assert metrics.multiclass_auc(y, np.full((4, 3), 1 / 3)) == 0.5


def test_ece_and_reliability_table_by_hand():
    y = [0, 1, 1, 2]
    p = [[0.95, 0.03, 0.02], [0.95, 0.03, 0.02], [0.10, 0.65, 0.25], [0.25, 0.20, 0.55]]
    # Bins on confidence: [0.9,1.0) holds two rows (mean 0.95, one right), [0.6,0.7) one right row at
    # 0.65, [0.5,0.6) one right row at 0.55.
    expected = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.65) + 1 / 4 * abs(1 - 0.55)
    assert metrics.expected_calibration_error(y, p) == pytest.approx(expected)
    table = metrics.reliability_table(y, p)
    assert len(table) == 10 and [b["count"] for b in table] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
    assert table[9]["mean_predicted"] == pytest.approx(0.95) and table[9]["observed_frequency"] == 0.5
    assert table[0]["mean_predicted"] is None and table[0]["observed_frequency"] is None
    assert table[9]["lo"] == pytest.approx(0.9) and table[9]["hi"] == pytest.approx(1.0)
    up = metrics.reliability_table(y, p, cls=2)  # class 2's probability vs class 2 happening
    assert [b["count"] for b in up] == [2, 0, 1, 0, 0, 1, 0, 0, 0, 0]  # 0.02, 0.02, 0.25, 0.55
    assert up[5]["observed_frequency"] == 1.0 and up[0]["observed_frequency"] == 0.0
    assert metrics.expected_calibration_error([0, 0], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]) == 0.0
    cal = metrics.calibration(y, p, classes=("down", "flat", "up"))
    assert cal["ece"] == pytest.approx(expected) and cal["n_bins"] == 10
    assert set(cal["per_class"]) == {"down", "flat", "up"} and all(len(t) == 10 for t in cal["per_class"].values())
    json.dumps(cal)  # plain types only


def test_evaluate_and_class_frequencies():
    out = metrics.evaluate([0, 1, 2, 1], np.full((4, 3), 1 / 3))
    assert set(out) == {"n", "log_loss", "accuracy", "auc", "ece"}
    assert out["log_loss"] == pytest.approx(math.log(3)) and out["auc"] == 0.5
    assert metrics.class_frequencies([0, 1, 1, 2, -1]) == [0.25, 0.5, 0.25]


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20_000, 3))
    z = logits / 2.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.05)


# ---------------------------------------------------------------------------------------------
# fallback


def _rows(imb, micro):
    x = np.zeros((len(imb), len(FEATURE_NAMES)))
    x[:, FEATURE_NAMES.index("imb_1")] = imb
    x[:, FEATURE_NAMES.index("micro_bps")] = micro
    return x


def test_fallback_gives_probabilities_for_any_input():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 50, size=(2000, len(FEATURE_NAMES)))
    x[::7] = np.nan
    x[::11, FEATURE_NAMES.index("micro_bps")] = np.inf
    p = fallback_probs(x)
    assert p.shape == (2000, 3) and np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fallback_probs(x[:, :][0]), p[:1])  # one raw row
    neutral = fallback_probs(_rows([0.0], [0.0]))[0]
    assert neutral[0] == pytest.approx(neutral[2]) and neutral[1] > 0.5
    with pytest.raises(ValueError):
        fallback_probs(np.zeros((3, 2)))


def test_fallback_is_monotone_in_the_imbalance():
    imb = np.linspace(-1, 1, 201)
    for micro in (np.zeros_like(imb), np.full_like(imb, 3.0), imb * 1.25, imb * 15.0):  # fixed, or the touch's own
        p = fallback_probs(_rows(imb, micro))
        assert np.all(np.diff(p[:, 2]) >= -1e-15), "p_up must not fall as the bid gets heavier"
        assert np.all(np.diff(p[:, 0]) <= 1e-15), "p_down must not rise as the bid gets heavier"
    p = fallback_from(imb, imb * 1.25)
    assert p[-1, 2] > p[-1, 0] and p[0, 0] > p[0, 2]
    np.testing.assert_allclose(p[:, 0], p[::-1, 2])  # symmetric
    frame = pd.DataFrame({"imb_1": imb, "micro_bps": imb})
    np.testing.assert_allclose(fallback_probs(frame), fallback_probs(_rows(imb, imb)))


# ---------------------------------------------------------------------------------------------
# train() on the sample


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trainings with the same seed into the same `out`: the second replaces the first."""
    root = tmp_path_factory.mktemp("train")
    out = root / "model"
    first = train(SAMPLE, out=out, seed=0, **SMALL)
    saved = {name: (out / name).read_bytes() for name in ("model.pt", "meta.json")}
    second = train(SAMPLE, out=out, seed=0, **SMALL)
    return root, out, first, saved, second


def test_artifact_is_torchscript_on_raw_features(runs):
    root, out, report, _, _ = runs
    assert sorted(p.name for p in root.iterdir()) == ["model"]  # no staging or old copies left behind
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "model.pt"]
    module = torch.jit.load(str(out / "model.pt"))
    from data.catalog import open_tape
    from models.features import offline_features

    tape = open_tape(SAMPLE)
    frame = offline_features(tape, tape.start_ns, tape.start_ns + 5 * 60 * 10**9)
    x = frame[FEATURE_NAMES].to_numpy(np.float32)
    probs = module(torch.from_numpy(x))
    assert probs.dtype == torch.float32 and tuple(probs.shape) == (len(x), 3)
    assert torch.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-5)
    with torch.inference_mode():  # as the runtime calls it, after a first call with grad mode on
        assert torch.equal(module(torch.from_numpy(x)), probs)
    assert report["artifact"]["model_bytes"] == (out / "model.pt").stat().st_size


def test_meta_has_every_key(runs):
    _, out, report, _, _ = runs
    meta = json.loads((out / "meta.json").read_text())
    for key in ("model_id", "feature_names", "scaler", "temperature", "label", "windows", "metrics", "seed",
                "versions"):
        assert key in meta, key
    assert meta["feature_names"] == FEATURE_NAMES and meta["model_id"] == report["model_id"]
    assert meta["model_id"].startswith("mlp-")
    assert len(meta["scaler"]["mean"]) == len(meta["scaler"]["std"]) == len(FEATURE_NAMES)
    assert min(meta["scaler"]["std"]) > 0 and meta["temperature"] > 0
    assert meta["label"]["classes"] == ["down", "flat", "up"] and meta["label"]["horizon_blocks"] == 1
    moves = meta["label"]["class_mean_move_bps"]
    assert len(moves) == 3 and moves[0] < 0 < moves[2]
    assert set(meta["windows"]) == {"train", "valid", "test"}
    assert meta["windows"]["train"] == ["2026-01-05T00:00:00+00:00", "2026-01-05T00:40:00+00:00"]
    assert meta["windows"]["valid"][1] == meta["windows"]["test"][0] == "2026-01-05T00:55:00+00:00"
    assert meta["windows"]["test"][1] == "2026-01-05T01:10:00+00:00"
    assert set(meta["versions"]) == {"python", "torch", "numpy", "nautilus_trader"}
    assert meta["metrics"]["test"] == report["test"]


def test_same_seed_same_metrics_and_bytes(runs):
    _, out, first, saved, second = runs
    for key in ("model_id", "test", "valid", "calibration", "class_frequencies", "windows", "expected_move",
                "training"):
        assert first[key] == second[key], key
    assert (out / "model.pt").read_bytes() == saved["model.pt"]
    assert (out / "meta.json").read_bytes() == saved["meta.json"]
    # The global torch state is left as it was.
    assert not torch.are_deterministic_algorithms_enabled()


def test_beats_the_class_prior_out_of_sample(runs):
    report = runs[2]
    test = report["test"]
    assert set(test) == {"mlp", "mlp_uncalibrated", "prior", "persistence", "logreg", "fallback"}
    assert test["mlp"]["log_loss"] < test["prior"]["log_loss"]
    assert test["mlp"]["auc"] > 0.55
    assert test["prior"]["auc"] == 0.5
    labelled = report["windows"]["test"]["labelled"]
    assert all(s["n"] == labelled for s in test.values())
    # Labels stop `horizon` rows before each window's end.
    assert all(w["labelled"] == w["blocks"] - 1 for w in report["windows"].values())
    text = render_report(report)
    for label in ("MLP, calibrated", "class prior", "persistence", f"logistic on {L1_IMBALANCE}", "fallback"):
        assert label in text


def test_calibration_before_and_after(runs):
    cal = runs[2]["calibration"]
    assert cal["temperature"] > 0
    for window in ("valid", "test"):
        for stage in ("before", "after"):
            c = cal[window][stage]
            assert len(c["confidence"]) == 10 and set(c["per_class"]) == {"down", "flat", "up"}
            assert sum(b["count"] for b in c["confidence"]) == runs[2]["windows"][window]["labelled"]
            for b in c["confidence"]:
                assert set(b) == {"bin", "lo", "hi", "count", "mean_predicted", "observed_frequency"}
    # Temperature scaling minimises the valid log loss over T, so it cannot make it worse.
    assert runs[2]["valid"]["mlp"]["log_loss"] <= runs[2]["valid"]["mlp_uncalibrated"]["log_loss"] + 1e-9


def test_runtime_loads_the_artifact(runs):
    from models.runtime import LoadedModel

    model = LoadedModel.load(runs[1])
    assert model.model_id == runs[2]["model_id"]
    p = model.predict(np.zeros(len(FEATURE_NAMES)))
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0, abs=1e-5)


def test_default_valid_is_the_last_fifth_of_train(tmp_path):
    (tmp_path / "m").mkdir()  # an empty directory is fine to write into
    report = train(SAMPLE, "+20min", None, tmp_path / "m", end="+30min", epochs=2)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["meta.json", "model.pt"]
    w = report["windows"]
    assert w["train"]["end"] == w["valid"]["start"] == "2026-01-05T00:16:00+00:00"
    assert w["valid"]["end"] == w["test"]["start"] == "2026-01-05T00:20:00+00:00"
    assert report["training"]["epochs_run"] <= 2


def test_refuses_a_foreign_directory_and_bad_windows(tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a model artifact"):
        train(SAMPLE, "+20min", "+25min", foreign, end="+30min")
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="valid_until"):
        train(SAMPLE, "+20min", "+10min", tmp_path / "a")
    with pytest.raises(ValueError, match="train_until"):
        train(SAMPLE, "+0min", "+10min", tmp_path / "a")
    with pytest.raises(ValueError, match="test window is empty"):
        train(SAMPLE, "+20min", "+30min", tmp_path / "a", end="+25min")
    with pytest.raises(ValueError, match="the train window .* labelled rows"):
        train(SAMPLE, "+1min", "+2min", tmp_path / "a", end="+3min")
    with pytest.raises(ValueError, match="neither an ISO time"):
        train(SAMPLE, "tomorrow-ish", None, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    shutil.rmtree(foreign)


def test_bundled_model_is_reproduced_by_its_documented_command(tmp_path):
    """README: flashmm train --catalog data/sample --train-until +90min --valid-until +120min --out ..."""
    root = Path(__file__).resolve().parent.parent
    bundled = root / "models/artifacts/sample"
    out = tmp_path / "again"
    done = subprocess.run([sys.executable, "-m", "app.cli", "train", "--catalog", str(root / "data/sample"),
                           "--train-until", "+90min", "--valid-until", "+120min", "--out", str(out)],
                          capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Out-of-sample" in done.stdout
    a = torch.jit.load(str(bundled / "model.pt")).state_dict()
    b = torch.jit.load(str(out / "model.pt")).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    meta_a, meta_b = (json.loads((p / "meta.json").read_text()) for p in (bundled, out))
    assert meta_a["feature_names"] == meta_b["feature_names"] and meta_a["windows"] == meta_b["windows"]


def test_walk_forward_folds_refit_on_the_past_only(tmp_path):
    report = train(ROOT / "data/sample", "+40min", "+55min", tmp_path / "wf", end="+70min", folds=2)
    folds = report["walk_forward"]
    assert [f["fold"] for f in folds] == [1, 2]
    assert folds[0]["test"][1] == folds[1]["test"][0]  # consecutive slices of the test window
    for f in folds:
        assert f["fit_until"] == f["test"][0]  # each fold's model ends where its scoring starts
        assert f["labelled"] > 100 and 0 < f["mlp"]["log_loss"] < 2
