"""Scores for class-probability forecasts: log loss, accuracy, multi-class AUC and calibration.

Every function takes integer labels `y` (shape [N], values 0..K-1) and probabilities `probs`
(shape [N, K], rows summing to 1) and returns plain floats, dicts and lists, so results go straight
into JSON. Rows with a negative label (no label: the horizon ran past the data) must be removed by
the caller; they are rejected here rather than silently scored.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-15  # probabilities are clipped to [EPS, 1] before the log, so one confident miss is finite
N_BINS = 10


def _check(y, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D [N, K], got shape {probs.shape}")
    if y.ndim != 1 or len(y) != len(probs):
        raise ValueError(f"y must be 1-D with one label per row of probs: {y.shape} vs {probs.shape}")
    if len(y) == 0:
        raise ValueError("cannot score an empty set of forecasts")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}; drop unlabelled rows first")
    return y, probs


def log_loss(y, probs) -> float:
    """Mean negative log probability of the realised class (natural log)."""
    y, probs = _check(y, probs)
    p = np.clip(probs[np.arange(len(y)), y], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def accuracy(y, probs) -> float:
    """Share of rows whose most probable class (first one on ties) is the realised class."""
    y, probs = _check(y, probs)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of `x`, tied values sharing the average of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]  # exclusive
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def binary_auc(positive, score) -> float:
    """ROC AUC of `score` for the boolean `positive`, by ranks (Mann-Whitney U): the chance that a
    random positive scores above a random negative, ties counting one half. NaN if either side is
    empty."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def multiclass_auc(y, probs) -> float:
    """Macro one-vs-rest AUC: each class's probability scored against "is this class", averaged
    over the classes that occur (a class absent from `y`, or the only class present, has no AUC and
    is left out). NaN when no class can be scored."""
    y, probs = _check(y, probs)
    aucs = [binary_auc(y == k, probs[:, k]) for k in range(probs.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def per_class_auc(y, probs) -> list[float]:
    """One-vs-rest AUC per class (NaN for a class that is absent or alone)."""
    y, probs = _check(y, probs)
    return [binary_auc(y == k, probs[:, k]) for k in range(probs.shape[1])]


def direction_auc(y, probs) -> float:
    """How well the directional edge p_up - p_down ranks the rows that went up above those that
    went down (flat rows left out): the AUC a market maker's skew rests on. NaN without both an up
    and a down row. Classes are (down, flat, up)."""
    y, probs = _check(y, probs)
    moved = y != 1
    return binary_auc(y[moved] == 2, probs[moved, 2] - probs[moved, 0])


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin i holds [i/n, (i+1)/n), the last one also holds 1.0."""
    return np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)


def _reliability(pred: np.ndarray, hit: np.ndarray, n_bins: int) -> list[dict]:
    idx = _bin_index(pred, n_bins)
    table = []
    for i in range(n_bins):
        m = idx == i
        n = int(m.sum())
        table.append({
            "bin": i,
            "lo": i / n_bins,
            "hi": (i + 1) / n_bins,
            "count": n,
            "mean_predicted": float(pred[m].mean()) if n else None,
            "observed_frequency": float(hit[m].mean()) if n else None,
        })
    return table


def reliability_table(y, probs, n_bins: int = N_BINS, cls: int | None = None) -> list[dict]:
    """Reliability diagram as a list of `n_bins` equal-width bins on [0, 1], each
    {bin, lo, hi, count, mean_predicted, observed_frequency} (the last two None for an empty bin).

    With `cls=None` the binned prediction is the confidence (highest probability) and the observed
    frequency is the accuracy of the argmax class; with `cls=k` it is class k's probability against
    how often class k happened.
    """
    y, probs = _check(y, probs)
    if cls is None:
        pred = probs.max(axis=1)
        hit = (np.argmax(probs, axis=1) == y).astype(np.float64)
    else:
        pred = probs[:, cls]
        hit = (y == cls).astype(np.float64)
    return _reliability(pred, hit, n_bins)


def expected_calibration_error(y, probs, n_bins: int = N_BINS) -> float:
    """ECE on confidence: sum over bins of (bin count / N) * |accuracy - mean confidence|, with
    `n_bins` equal-width bins of the highest probability."""
    table = reliability_table(y, probs, n_bins)
    n = sum(b["count"] for b in table)
    return float(sum(
        b["count"] / n * abs(b["observed_frequency"] - b["mean_predicted"]) for b in table if b["count"]
    ))


def calibration(y, probs, n_bins: int = N_BINS, classes: tuple[str, ...] | None = None) -> dict:
    """ECE plus reliability tables on confidence and per class:
    {"ece", "n_bins", "confidence": [bins], "per_class": {name: [bins]}}."""
    y, probs = _check(y, probs)
    names = classes or tuple(str(k) for k in range(probs.shape[1]))
    return {
        "ece": expected_calibration_error(y, probs, n_bins),
        "n_bins": n_bins,
        "confidence": reliability_table(y, probs, n_bins),
        "per_class": {names[k]: reliability_table(y, probs, n_bins, cls=k) for k in range(probs.shape[1])},
    }


def evaluate(y, probs) -> dict:
    """The headline scores of one forecast: {n, log_loss, accuracy, auc, direction_auc, ece}."""
    y, probs = _check(y, probs)
    return {
        "n": int(len(y)),
        "log_loss": log_loss(y, probs),
        "accuracy": accuracy(y, probs),
        "auc": multiclass_auc(y, probs),
        "direction_auc": direction_auc(y, probs),
        "ece": expected_calibration_error(y, probs),
    }


def class_frequencies(y, n_classes: int = 3) -> list[float]:
    """Share of each class among the labelled rows (zeros if there are none)."""
    y = np.asarray(y)
    y = y[y >= 0]
    if len(y) == 0:
        return [0.0] * n_classes
    return [float(v) for v in np.bincount(y.astype(np.int64), minlength=n_classes)[:n_classes] / len(y)]
