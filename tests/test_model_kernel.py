"""The batch-invariant model evaluator (models/kernel.py): a row's probabilities are the same bits
alone and in any batch, which is what lets a backtest score a chunk in one call and still replay
the live node's signal exactly; and they are the TorchScript model's to float32 rounding."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from data.catalog import open_tape
from models.features import FEATURE_NAMES, offline_features
from models.runtime import LoadedModel
from models.train import MLP
from tests.test_signal_runtime import artifact

ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000
TAPES = {"sample": ("data/sample", 20 * 60), "ethusdt": ("data/real/ethusdt-perp-20240808", 90)}


@cache
def real_rows(name: str) -> np.ndarray:
    """Feature rows of the model's own tape (its first minutes)."""
    catalog, seconds = TAPES[name]
    tape = open_tape(ROOT / catalog)
    return offline_features(tape, None, tape.start_ns + seconds * S)[FEATURE_NAMES].to_numpy()


@pytest.mark.parametrize("name", sorted(TAPES))
def test_a_row_scores_the_same_bits_alone_and_in_any_batch(name):
    model = LoadedModel.load(ROOT / "models/artifacts" / name)
    assert model.kernel is not None
    x = real_rows(name)
    assert len(x) > 500
    alone = np.array([model.predict(row) for row in x])
    assert np.array_equal(np.array(model.predict_many(x)), alone)
    order = np.random.default_rng(7).permutation(len(x))
    assert np.array_equal(np.array(model.predict_many(x[order])), alone[order])
    assert np.array_equal(np.array(model.predict_many(x[5:22])), alone[5:22])  # a batch of an odd size


@pytest.mark.parametrize("name", sorted(TAPES))
def test_the_kernel_is_the_torchscript_model_to_float32_rounding(name):
    model = LoadedModel.load(ROOT / "models/artifacts" / name)
    x = real_rows(name)
    with torch.inference_mode():
        expected = model.module(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)
    got = np.array(model.predict_many(x))
    assert np.abs(got - expected).max() < 1e-6
    assert got.std(axis=0).min() > 1e-3  # the rows really differ: the comparison is not of constants


class CalibratedModel(torch.nn.Module):
    """Named like the exported model, with its buffers, but it multiplies by the temperature."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = MLP(n_features, 8)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("temperature", torch.tensor(2.0))
        self.clip = 8.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        return torch.softmax(self.net(z) * self.temperature, dim=1)


@pytest.mark.parametrize("module", ["constant", "impostor"])
def test_a_model_the_kernel_cannot_reproduce_is_called_row_by_row(tmp_path, module):
    """A module of another shape, or one that looks like the export but computes something else
    (caught by the probe rows), is left to TorchScript, one row at a time on both paths."""
    if module == "constant":
        path = artifact(tmp_path)
    else:
        path = artifact(tmp_path, model_bytes=b"")
        torch.jit.script(CalibratedModel(len(FEATURE_NAMES))).save(str(path / "model.pt"))
    model = LoadedModel.load(path)
    assert model.kernel is None
    x = real_rows("sample")[:50]
    with torch.inference_mode():
        expected = model.module(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)
    got = np.array(model.predict_many(x))
    assert np.array_equal(got, np.array([model.predict(row) for row in x]))
    assert np.abs(got - expected).max() < 1e-6
