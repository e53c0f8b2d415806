"""A batch-invariant evaluator of FlashMM's exported models: one row or a day of rows, the same bits.

Why it exists: a backtest knows its whole tape, so it could score every book batch in one model
call, but a matrix product sums each dot product in a blocking order that depends on the batch's
shape, so a batched call rounds differently (~1e-7) from the live node's one-row call, and a signal
that differs in its last bit can change an order. Here every step is an elementwise float32
operation (each product and each sum exactly rounded, nothing fused) and every dot product is
summed in one fixed order, a pairwise tree over the inputs padded with zeros to a power of two; the
softmax runs row by row on Python floats. A row's result therefore does not depend on the batch
around it, and the live node and the backtest evaluate the model with this same code.

It evaluates what `models.train` exports: a `CalibratedModel` (standardise, clip, a `Linear` or
`MLP` network, temperature, softmax). `BatchInvariantNet.from_module` reads the weights from the
TorchScript file and checks its outputs against the TorchScript module's own on probe rows; any
other module is refused (None) and the runtime calls TorchScript one row at a time instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# A checked model agrees with its TorchScript module to float32 rounding: far below this.
_PROBE_TOLERANCE = 1e-5


class BatchInvariantNet:
    """Features [N, F] -> class probabilities, row by row exact whatever N is."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, clip: float, temperature: np.float32,
                 layers: list[tuple[np.ndarray | None, np.ndarray, np.ndarray, bool]]) -> None:
        self.mean, self.std = mean, std
        self.clip = np.float32(clip)
        self.temperature = temperature
        # (input columns or None, weights [K padded to a power of two, H], bias [H], ReLU after)
        self.layers = layers

    @classmethod
    def from_module(cls, module: torch.jit.ScriptModule) -> BatchInvariantNet | None:
        """The exported model's weights, or None when the module is not a `CalibratedModel` of a
        `Linear` or `MLP` network, or when this evaluator does not reproduce it on probe rows."""
        try:
            net = cls._read(module)
        except (AttributeError, RuntimeError, TypeError, ValueError):
            return None
        if net is None:
            return None
        rng = np.random.default_rng(0)
        n_features = len(net.mean)
        probe = (net.mean + net.std * rng.normal(0.0, 3.0, size=(64, n_features))).astype(np.float32)
        probe = np.vstack([probe, np.zeros((1, n_features), np.float32)])
        try:
            with torch.no_grad():
                expected = module(torch.from_numpy(probe)).numpy().astype(np.float64)
            got = np.array([net.probs(row) for row in net.logits(probe)])
        except Exception:  # noqa: BLE001 - whatever the module does, it is then left to TorchScript
            return None
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0.0, atol=_PROBE_TOLERANCE):
            return None
        return net

    @classmethod
    def _read(cls, module) -> BatchInvariantNet | None:
        if getattr(module, "original_name", None) != "CalibratedModel":
            return None
        inner = module.net
        kind = getattr(inner, "original_name", None)
        if kind not in ("Linear", "MLP"):
            return None
        columns = inner.columns.numpy().astype(np.int64) if kind == "Linear" else None
        children = list(inner.net.children())
        layers = []
        for i, child in enumerate(children):
            name = child.original_name
            if name == "ReLU":
                if not layers or layers[-1][3]:
                    return None
                layers[-1] = (*layers[-1][:3], True)
                continue
            if name != "Linear":
                return None
            weight = child.weight.detach().numpy().astype(np.float32)
            bias = child.bias.detach().numpy().astype(np.float32)
            k = weight.shape[1]
            padded = np.zeros((1 << max(k - 1, 0).bit_length(), weight.shape[0]), np.float32)
            padded[:k] = weight.T
            layers.append((columns if i == 0 else None, padded, bias, False))
        if not layers or layers[-1][3] or layers[-1][1].shape[1] != 3:
            return None
        return cls(module.mean.numpy().astype(np.float32), module.std.numpy().astype(np.float32), float(module.clip),
                   np.float32(module.temperature.item()), layers)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Calibrated logits [N, 3] (float32) of raw features [N, F]."""
        z = np.clip((np.asarray(x, np.float32) - self.mean) / self.std, -self.clip, self.clip)
        for columns, weight, bias, relu in self.layers:
            if columns is not None:
                z = z[:, columns]
            k = weight.shape[0]
            if z.shape[1] < k:
                z = np.concatenate([z, np.zeros((len(z), k - z.shape[1]), np.float32)], axis=1)
            terms = z[:, :, None] * weight  # [N, K, H]: each product exactly rounded
            while k > 1:  # the same pairwise tree for every row
                k //= 2
                terms = terms[:, :k] + terms[:, k:]
            z = terms[:, 0] + bias
            if relu:
                z = np.maximum(z, np.float32(0.0))
        return z / self.temperature

    @staticmethod
    def probs(logits: np.ndarray) -> np.ndarray:
        """Softmax of one row of logits, on Python floats (double precision)."""
        a, b, c = (float(v) for v in logits)
        top = max(a, b, c)
        ea, eb, ec = math.exp(a - top), math.exp(b - top), math.exp(c - top)
        total = ea + eb + ec
        return np.array([ea / total, eb / total, ec / total])
