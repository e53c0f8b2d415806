"""Train short-horizon mid-move models on a tape, select the one that wins out of sample, export it.

The tape is cut into three time-ordered windows: train = [tape start, train_until),
valid = [train_until, valid_until) and test = [valid_until, end] (end defaults to the tape end).
Without valid_until the last 20% of the train window becomes valid and the test window starts at
train_until. Features are computed once over the whole span (they only look back, so a window's
first rows may use the previous window's book, as they would live). Labels are made per horizon
(seconds, on the receive-time clock) and per window, so the rows whose horizon runs past their
window's end are unlabelled and dropped and no label ever looks into the next window.

For each horizon the candidates are fitted on the train window, all on standardised, clipped
inputs and temperature-calibrated on the valid window:

- `logreg_all`: multinomial logistic regression on every feature (full-batch L-BFGS, its L2
  strength picked on the valid log loss);
- `logreg_book`: the same on the book's lean alone (BOOK_FEATURES);
- `mlp`: a small MLP (features -> hidden -> hidden -> 3 logits, ReLU), Adam on shuffled
  minibatches, early-stopped on the valid log loss.

By default each is fitted on the windows and their mirror images (`mirror`: bids and asks
swapped), so no model learns a drift that a few minutes of one market happened to have.

Both are scored against the baselines (`BASELINES`) on the valid and test windows: log loss,
accuracy, AUC, directional AUC and ECE, per horizon. The main horizon (given, or the one where the
better candidate gains most over the one-feature logistic on the valid window) decides what
ships: the candidate with the lower valid log loss there. The verdict then says, on the test
window, whether it beats the class prior and the one-feature logistic; when it does not, the
tooling says so and the market's default is to trade without the signal. Everything runs in one
thread with seeded RNGs and deterministic algorithms, so a seed reproduces the metrics and the
exported weights bit for bit.

The artifact written to `out/` is `model.pt`, a TorchScript module mapping RAW float32 features
[N, F] to calibrated probabilities [N, 3] (down, flat, up) with the scaler and temperature inside
(the same runtime serves either candidate), and `meta.json` describing it, with the whole
evaluation. `eval_catalogs` scores every model and baseline on other catalogs too (train on one
capture, test on the next); `evaluate_artifact` scores a saved artifact on any catalog.

    flashmm train --catalog data/sample --train-until +90min --valid-until +120min --out models/artifacts/sample
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from data.catalog import Tape, iso_utc, open_tape, parse_time
from models import metrics
from models.fallback import fallback_probs
from models.features import DIRECTIONAL, FEATURE_NAMES, offline_features
from models.labels import CLASSES, classify, make_labels, past_moves
from models.report import MODEL_LABELS, render_report  # noqa: F401  (render_report: the CLI's and tests' entry)

REPORT_KIND = "flashmm.signal_report"
REPORT_VERSION = 2
HORIZONS_S = (1.0, 5.0, 30.0)  # the report's markout horizons
CANDIDATES = ("logreg_all", "logreg_book", "mlp")
BOOK_FEATURES = ("imb_1", "imb_3", "imb_5", "imb_10", "micro_bps")  # logreg_book's inputs: the book's lean
BATCH_SIZE = 256
LEARNING_RATE = 2e-3
PATIENCE = 5  # epochs without a better valid log loss before stopping
MIN_IMPROVEMENT = 1e-6
LOGREG_L2 = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # L2 strengths tried for logreg_all, per unit of the mean loss
INPUT_CLIP = 8.0  # standardised inputs are clipped to +-8 sd: one wild feature cannot swing the output
STD_FLOOR = 1e-12  # a constant feature gets std 1 (it standardises to 0)
VALID_SHARE = 0.2  # of the train window, when valid_until is not given
MIN_LABELLED_ROWS = {"train": 300, "valid": 100, "test": 100}
MIN_EVAL_ROWS = 100
# A horizon can be the main one only if the valid and test windows each span this many of it: a
# 30 s label on a 60 s window is two independent outcomes, not a score.
MIN_SPANS = 20
PERSISTENCE_HIT = 0.6  # probability on the class of the last realised move; the rest split evenly
BASELINE_FEATURE = "imb_1"

BASELINES = {
    "prior": "class frequencies of the train window, the same for every row",
    "persistence": (
        f"the class of the move realised over the last horizon (same flat band) gets {PERSISTENCE_HIT}, the "
        f"other two {(1 - PERSISTENCE_HIT) / 2:.1f} each (flat where there is no such past yet)"
    ),
    "logreg_imb": f"multinomial logistic regression on {BASELINE_FEATURE} alone (the L1 imbalance), fitted on "
                  "the train window",
    "fallback": "the runtime's rule-based fallback (models.fallback) with the train window's share of moves",
}
def hkey(horizon_s: float) -> str:
    """A horizon as the reports key it: 5.0 -> "5s"."""
    return f"{horizon_s:g}s"


# ---------------------------------------------------------------------------------------------
# Models


class Linear(nn.Module):
    """features -> 3 logits: multinomial logistic regression on the columns `columns` of the
    input (all of them by default)."""

    def __init__(self, n_features: int, columns: list[int] | None = None) -> None:
        super().__init__()
        columns = list(range(n_features)) if columns is None else list(columns)
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long))
        self.net = nn.Sequential(nn.Linear(len(columns), 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.index_select(1, self.columns))


class MLP(nn.Module):
    """features -> hidden -> hidden -> 3 logits, ReLU."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 3)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class CalibratedModel(nn.Module):
    """The exported model: raw features [N, F] float32 -> calibrated probabilities [N, 3]."""

    def __init__(self, net: nn.Module, mean: np.ndarray, std: np.ndarray, temperature: float, clip: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))
        self.clip = float(clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        return torch.softmax(self.net(z) / self.temperature, dim=1)


@contextmanager
def _quiet_jit():
    """torch 2.13 marks TorchScript deprecated; the runtime contract is still a TorchScript file."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.", category=DeprecationWarning)
        yield


@contextmanager
def _deterministic(seed: int):
    """One thread, deterministic kernels, seeded torch RNG; the caller's settings and global RNG
    state are restored afterwards."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    try:
        torch.use_deterministic_algorithms(True)
    except RuntimeError:  # pragma: no cover - always available on CPU
        pass
    try:
        with torch.random.fork_rng(devices=[]), _quiet_jit():
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.set_num_threads(threads)


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    # Same float32 arithmetic as CalibratedModel.forward, so training and export see equal inputs.
    xt = torch.from_numpy(x.astype(np.float32))
    return torch.clamp((xt - torch.from_numpy(mean.astype(np.float32))) / torch.from_numpy(std.astype(np.float32)),
                       -INPUT_CLIP, INPUT_CLIP)


def _init_prior(layer: nn.Linear, prior: np.ndarray) -> None:
    """Start from the class prior: the flat class dominates short horizons."""
    with torch.no_grad():
        layer.bias.copy_(torch.log(torch.tensor(np.maximum(prior, 1e-6), dtype=torch.float32)))


def _fit_mlp(xtr, ytr, xva, yva, hidden, epochs, seed, prior) -> tuple[MLP, dict]:
    rng = np.random.default_rng(seed)
    model = MLP(xtr.shape[1], hidden)
    _init_prior(model.net[-1], prior)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    ytr_t, yva_t = torch.from_numpy(ytr), torch.from_numpy(yva)
    n = len(ytr)
    best_loss, best_state, best_epoch, stale = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i: i + BATCH_SIZE]
            loss = F.cross_entropy(model(xtr[idx]), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            train_loss = F.cross_entropy(model(xtr), ytr_t).item()
            valid_loss = F.cross_entropy(model(xva), yva_t).item()
        history.append({"epoch": epoch, "train_log_loss": train_loss, "valid_log_loss": valid_loss})
        if valid_loss < best_loss - MIN_IMPROVEMENT:
            best_loss, best_state, best_epoch, stale = valid_loss, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= PATIENCE:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, {"epochs_run": len(history), "best_epoch": best_epoch, "best_valid_log_loss": best_loss,
                   "history": history}


def _fit_linear(xtr, ytr, xva, yva, prior, columns: list[int] | None = None) -> tuple[Linear, dict]:
    """Multinomial logistic regression by full-batch L-BFGS for each L2 strength in LOGREG_L2
    (on the weights, not the intercepts); the one with the lowest valid log loss is kept."""
    ytr_t, yva_t = torch.from_numpy(ytr), torch.from_numpy(yva)
    best = None
    tried = []
    for l2 in LOGREG_L2:
        model = Linear(xtr.shape[1], columns)
        with torch.no_grad():
            model.net[0].weight.zero_()
        _init_prior(model.net[0], prior)
        opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=300, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure(model=model, opt=opt, l2=l2):
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr), ytr_t) + l2 * (model.net[0].weight ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        model.eval()
        with torch.no_grad():
            valid_loss = F.cross_entropy(model(xva), yva_t).item()
        tried.append({"l2": l2, "valid_log_loss": valid_loss})
        if best is None or valid_loss < best[0] - MIN_IMPROVEMENT:
            best = (valid_loss, l2, model)
    return best[2], {"l2": best[1], "best_valid_log_loss": best[0], "tried": tried}


@dataclass
class Fitted:
    """One candidate fitted for one horizon: the exported module and how it was trained."""

    name: str
    module: CalibratedModel
    uncalibrated: CalibratedModel
    temperature: float
    training: dict

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(np.asarray(x, dtype=np.float32))).double().numpy()

    def predict_uncalibrated(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.uncalibrated(torch.from_numpy(np.asarray(x, dtype=np.float32))).double().numpy()


_SIGN = np.array([-1.0 if name in DIRECTIONAL else 1.0 for name in FEATURE_NAMES])


def mirror(x: np.ndarray, y: np.ndarray | None = None):
    """The rows of a mirrored market: directional features negated, down and up swapped."""
    mx = np.asarray(x) * _SIGN
    return mx if y is None else (mx, 2 - np.asarray(y))


def _augment(window: dict) -> dict:
    """The window with its mirror image appended: a model fitted on it has no preferred direction."""
    mx, my = mirror(window["x"], window["y"])
    return {**window, "x": np.concatenate([window["x"], mx]), "y": np.concatenate([window["y"], my])}


def _scaler(x: np.ndarray, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    if symmetric:
        x = np.concatenate([x, mirror(x)])
    mean = x.mean(axis=0)
    if symmetric:
        mean[_SIGN < 0] = 0.0  # exactly: a mirrored row standardises to the negated row
    std = x.std(axis=0)
    return mean, np.where(std > STD_FLOOR, std, 1.0)


@dataclass(frozen=True)
class FitOptions:
    hidden: int = 32
    epochs: int = 30
    seed: int = 0
    symmetric: bool = True


def _fit_candidate(name: str, tr: dict, va: dict, scaler, opts: FitOptions) -> Fitted:
    """`name` fitted on `tr` (scaler from the train window), early-stopped or regularised on `va`,
    temperature fitted on `va`; `symmetric`: both windows with their mirror images (see `mirror`)."""
    mean, std = scaler
    hidden, epochs, seed = opts.hidden, opts.epochs, opts.seed
    if opts.symmetric:
        tr, va = _augment(tr), _augment(va)
    prior = _prior(tr["y"])
    xtr, xva = _standardise(tr["x"], mean, std), _standardise(va["x"], mean, std)
    if name == "mlp":
        net, training = _fit_mlp(xtr, tr["y"], xva, va["y"], hidden, epochs, seed, prior)
    elif name == "logreg_all":
        net, training = _fit_linear(xtr, tr["y"], xva, va["y"], prior)
    elif name == "logreg_book":
        net, training = _fit_linear(xtr, tr["y"], xva, va["y"], prior, [FEATURE_NAMES.index(f) for f in BOOK_FEATURES])
    else:
        raise ValueError(f"unknown candidate {name!r}: choose from {CANDIDATES}")
    with torch.no_grad():
        valid_logits = net(xva).double().numpy()
    temperature = fit_temperature(valid_logits, va["y"])
    # No autograd in the export: a TorchScript graph first run with grad-requiring weights fails
    # when later called under torch.inference_mode (as the runtime does).
    net.requires_grad_(False)
    net.eval()
    return Fitted(name, CalibratedModel(net, mean, std, temperature, INPUT_CLIP).eval(),
                  CalibratedModel(net, mean, std, 1.0, INPUT_CLIP).eval(), temperature, training)


def _prior(y: np.ndarray) -> np.ndarray:
    return np.bincount(y, minlength=3)[:3] / len(y)


def _nll_at(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    z = logits / t
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the log loss of softmax(logits / T): a log-spaced grid over
    [0.05, 20], then golden-section search on log T between the best point's neighbours."""
    logits = np.asarray(logits, dtype=np.float64)
    grid = np.linspace(math.log(0.05), math.log(20.0), 121)
    losses = [_nll_at(logits, y, math.exp(g)) for g in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll_at(logits, y, math.exp(a)), _nll_at(logits, y, math.exp(b))
    for _ in range(60):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = _nll_at(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll_at(logits, y, math.exp(b))
    best = min((losses[i], grid[i]), (fa, a), (fb, b))
    return float(math.exp(best[1]))


def _fit_logreg(x: np.ndarray, y: np.ndarray) -> dict:
    """Multinomial logistic regression on one standardised feature (full-batch LBFGS, float64,
    a tiny L2 on the slopes so a separable window still has a finite fit)."""
    mean, std = float(x.mean()), float(x.std())
    std = std if std > STD_FLOOR else 1.0
    xt = torch.tensor((x - mean) / std, dtype=torch.float64).reshape(-1, 1)
    yt = torch.from_numpy(y)
    w = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xt @ w + b, yt) + 1e-6 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return {"feature": BASELINE_FEATURE, "mean": mean, "std": std, "coef": w.detach().numpy()[0].tolist(),
            "intercept": b.detach().numpy().tolist()}


def _logreg_probs(fit: dict, x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=fit["mean"], posinf=fit["mean"], neginf=fit["mean"])
    z = ((x - fit["mean"]) / fit["std"])[:, None] * np.asarray(fit["coef"])[None, :] + np.asarray(fit["intercept"])
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _persistence_probs(persist: np.ndarray) -> np.ndarray:
    out = np.full((len(persist), 3), (1 - PERSISTENCE_HIT) / 2)
    out[np.arange(len(persist)), persist] = PERSISTENCE_HIT
    return out


def baseline_fits(tr: dict) -> dict:
    """What the baselines learn from a train window: the class prior and the one-feature logistic."""
    prior = _prior(tr["y"])
    return {"prior": prior.tolist(), "logreg_imb": _fit_logreg(tr["x"][:, FEATURE_NAMES.index(BASELINE_FEATURE)],
                                                               tr["y"])}


def baseline_forecasts(fits: dict, window: dict) -> dict[str, np.ndarray]:
    """Every baseline's probabilities on a prepared window."""
    prior = np.asarray(fits["prior"])
    n = len(window["y"])
    return {
        "prior": np.tile(prior, (n, 1)),
        "persistence": _persistence_probs(window["persist"]),
        "logreg_imb": _logreg_probs(fits["logreg_imb"], window["x"][:, FEATURE_NAMES.index(BASELINE_FEATURE)]),
        "fallback": fallback_probs(window["x"], p_move=1.0 - float(prior[1])),
    }


# ---------------------------------------------------------------------------------------------
# Windows and labels


def _window_bounds(tape, train_until, valid_until, end) -> dict[str, tuple[int, int, bool]]:
    """name -> (start_ns, end_ns, end_inclusive)."""
    start = tape.start_ns
    t_train = parse_time(train_until, tape, "train_until")
    if t_train is None:
        raise ValueError("train_until is required (an ISO time or an offset like '+90min')")
    t_end = parse_time(end, tape, "end")
    t_end = tape.end_ns if t_end is None else min(t_end, tape.end_ns)
    t_valid = parse_time(valid_until, tape, "valid_until")
    if t_train <= start:
        raise ValueError(f"train_until {iso_utc(t_train)} is not after the tape start {iso_utc(start)}: "
                         "the train window is empty")
    if t_valid is None:
        if t_train >= t_end:
            raise ValueError(f"train_until {iso_utc(t_train)} is not before the end {iso_utc(t_end)}: "
                             "the test window is empty")
        t_split = start + int((t_train - start) * (1 - VALID_SHARE))
        return {"train": (start, t_split, False), "valid": (t_split, t_train, False), "test": (t_train, t_end, True)}
    if t_valid <= t_train:
        raise ValueError(f"valid_until {iso_utc(t_valid)} must be after train_until {iso_utc(t_train)}: "
                         "the valid window is empty")
    if t_valid >= t_end:
        raise ValueError(f"valid_until {iso_utc(t_valid)} is not before the end {iso_utc(t_end)}: "
                         "the test window is empty")
    return {"train": (start, t_train, False), "valid": (t_train, t_valid, False), "test": (t_valid, t_end, True)}


def _prepare(frame: pd.DataFrame, bounds, horizon_s: float, threshold_bps: float,
             minimum: dict[str, int] = MIN_LABELLED_ROWS) -> dict:
    """Per window: features X, labels y, moves, persistence classes, for one horizon.

    Labels are made from the window's own rows, so none looks past the window's end. The
    persistence class at a row is the class of the move over the horizon up to it, over the whole
    frame (it only uses mids up to the row, so crossing a window boundary backwards is no leak)."""
    ts = frame["ts"].to_numpy()
    mid = frame["mid"].to_numpy()
    x_all = frame[FEATURE_NAMES].to_numpy(dtype=np.float64)
    past = past_moves(ts, mid, horizon_s)
    persist = np.where(np.isnan(past), 1, classify(np.nan_to_num(past), threshold_bps))
    windows = {}
    for name, (lo, hi, inclusive) in bounds.items():
        mask = (ts >= lo) & ((ts <= hi) if inclusive else (ts < hi))
        idx = np.flatnonzero(mask)
        move, cls = make_labels(ts[idx], mid[idx], horizon_s, threshold_bps)
        finite = np.all(np.isfinite(x_all[idx]), axis=1)
        keep = (cls >= 0) & finite
        n_lab = int(keep.sum())
        need = minimum[name]
        if n_lab < need:
            raise ValueError(
                f"the {name} window [{iso_utc(lo)}, {iso_utc(hi)}{']' if inclusive else ')'} has {len(idx)} rows and "
                f"{n_lab} rows labelled at the {hkey(horizon_s)} horizon; at least {need} are needed: widen it "
                "(train_until / valid_until / end) or use shorter horizons"
            )
        rows = idx[keep]
        windows[name] = {
            "x": x_all[rows], "y": cls[keep], "move": move[keep], "persist": persist[rows],
            "bounds": (lo, hi), "rows": int(len(idx)), "labelled": n_lab,
            "dropped_nonfinite": int(((cls >= 0) & ~finite).sum()),
        }
    if "train" in windows and len(np.unique(windows["train"]["y"])) < 2:
        raise ValueError(f"the train window holds a single class at the {hkey(horizon_s)} horizon: lower "
                         "threshold_bps or widen the window")
    return windows


def _score(y: np.ndarray, forecasts: dict[str, np.ndarray]) -> dict[str, dict]:
    return {name: metrics.evaluate(y, p) for name, p in forecasts.items()}


def _beats(scores: dict, model: str) -> dict[str, bool]:
    """Whether `model`'s log loss is below each baseline's."""
    return {name: scores[model]["log_loss"] < scores[name]["log_loss"] for name in ("prior", "logreg_imb")}


def _verdict(scores: dict, model: str, horizon_s: float, where: str) -> dict:
    """Does the shipped model beat the class prior and the one-feature logistic on log loss?"""
    beats = _beats(scores, model)
    ships = all(beats.values())
    gain = scores["logreg_imb"]["log_loss"] - scores[model]["log_loss"]
    if ships:
        text = (f"{MODEL_LABELS[model]} beats the class prior and the logistic on {BASELINE_FEATURE} at "
                f"{hkey(horizon_s)} on {where} (log loss {scores[model]['log_loss']:.4f} vs "
                f"{scores['logreg_imb']['log_loss']:.4f} and {scores['prior']['log_loss']:.4f})")
    else:
        lost = [MODEL_LABELS[name] for name, ok in beats.items() if not ok]
        text = (f"NO MODEL BEATS THE BASELINES at {hkey(horizon_s)} on {where}: {MODEL_LABELS[model]} does not beat "
                f"{' or '.join(lost)} on log loss; trade this market with the signal off (strategy.use_signal = "
                "false)")
    return {"ships": ships, "model": model, "horizon_s": horizon_s, "beats": beats, "log_loss_gain_vs_logreg_imb": gain,
            "where": where, "text": text}


# ---------------------------------------------------------------------------------------------
# Artifact


def _check_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"out {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / "meta.json").is_file():
            raise ValueError(
                f"out {out} is a non-empty directory that is not a model artifact (no meta.json); "
                "refusing to overwrite it: choose another out or empty it"
            )


def _weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "nautilus_trader": metadata.version("nautilus_trader")}


def _write_artifact(out: Path, scripted: torch.jit.ScriptModule, meta: dict, probe: np.ndarray) -> int:
    """Write model.pt and meta.json into a temp sibling of `out`, check the saved model reproduces
    the in-memory one, then move the directory into place (replacing an earlier artifact).
    Returns the size of model.pt in bytes."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    staging.chmod(0o755)
    old: Path | None = None
    try:
        torch.jit.save(scripted, str(staging / "model.pt"))
        meta = dict(meta, model_sha256=hashlib.sha256((staging / "model.pt").read_bytes()).hexdigest())
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
        loaded = torch.jit.load(str(staging / "model.pt"), map_location="cpu")
        x = torch.from_numpy(probe.astype(np.float32))
        first = loaded(x)  # grad mode, then inference mode: the runtime's load probe, then its calls
        with torch.inference_mode():
            if not (torch.equal(first, scripted(x)) and torch.equal(loaded(x), first)):
                raise RuntimeError("the saved model does not reproduce the trained one")
        size = (staging / "model.pt").stat().st_size
        _check_out(out)
        if out.exists() and any(out.iterdir()):
            # An earlier artifact: move it aside, move the new one in, then delete the old one.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)  # onto the empty temp dir
            try:
                os.replace(staging, out)
            except OSError:
                os.replace(old, out)
                old = None
                raise
        else:
            os.replace(staging, out)  # rename onto a missing or empty directory is atomic
        return size
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class _Horizon:
    horizon_s: float
    windows: dict
    fits: dict
    fitted: dict[str, Fitted]
    scores: dict
    best: str


def _fit_horizon(frame, bounds, horizon_s, threshold_bps, scaler, candidates, opts: FitOptions) -> _Horizon:
    w = _prepare(frame, bounds, horizon_s, threshold_bps)
    fits = baseline_fits(w["train"])
    fitted = {name: _fit_candidate(name, w["train"], w["valid"], scaler, opts) for name in candidates}
    scores = {}
    for name in ("valid", "test"):
        forecasts = {c: f.predict(w[name]["x"]) for c, f in fitted.items()}
        forecasts.update(baseline_forecasts(fits, w[name]))
        scores[name] = _score(w[name]["y"], forecasts)
    best = min(candidates, key=lambda c: (scores["valid"][c]["log_loss"], candidates.index(c)))
    return _Horizon(horizon_s, w, fits, fitted, scores, best)


def _spans(bounds: dict, horizon_s: float) -> float:
    """How many horizons the shorter of the valid and test windows spans."""
    return min(bounds[n][1] - bounds[n][0] for n in ("valid", "test")) / (horizon_s * 1e9)


def _valid_gain(h: _Horizon) -> float:
    """The best candidate's relative log-loss gain over the one-feature logistic, on valid."""
    base = h.scores["valid"]["logreg_imb"]["log_loss"]
    return (base - h.scores["valid"][h.best]["log_loss"]) / base


def _walk_forward(frame, bounds, folds, horizon_s, threshold_bps, family, opts: FitOptions) -> list[dict]:
    """Time-ordered walk-forward over the test window: for each of `folds` consecutive slices, refit
    `family` on everything before it (its last VALID_SHARE early-stops and calibrates) and score the
    slice. Each fold's model sees only the past of the data it is scored on."""
    start = bounds["train"][0]
    lo, hi, _ = bounds["test"]
    cuts = [lo + (hi - lo) * i // folds for i in range(folds + 1)]
    results = []
    for i in range(folds):
        split = start + int((cuts[i] - start) * (1 - VALID_SHARE))
        fold_bounds = {"train": (start, split, False), "valid": (split, cuts[i], False),
                       "test": (cuts[i], cuts[i + 1], i == folds - 1)}
        w = _prepare(frame, fold_bounds, horizon_s, threshold_bps)
        fitted = _fit_candidate(family, w["train"], w["valid"], _scaler(w["train"]["x"], opts.symmetric), opts)
        forecasts = {family: fitted.predict(w["test"]["x"]), **baseline_forecasts(baseline_fits(w["train"]), w["test"])}
        scores = _score(w["test"]["y"], forecasts)
        results.append({
            "fold": i + 1, "fit_until": iso_utc(cuts[i]), "test": [iso_utc(cuts[i]), iso_utc(cuts[i + 1])],
            "labelled": int(len(w["test"]["y"])), "model": family,
            "scores": {k: scores[k] for k in (family, "prior", "logreg_imb", "fallback")},
        })
    return results


def train(
    catalog: str | Path,
    train_until: str,
    valid_until: str | None,
    out: str | Path,
    seed: int = 0,
    horizons_s: tuple[float, ...] = HORIZONS_S,
    main_horizon_s: float | None = None,
    threshold_bps: float = 0.0,
    epochs: int = 30,
    hidden: int = 32,
    end: str | None = None,
    folds: int = 3,
    candidates: tuple[str, ...] = CANDIDATES,
    eval_catalogs: tuple[str | Path, ...] = (),
    eval_start: str | None = None,
    eval_end: str | None = None,
    symmetric: bool = True,
) -> dict:
    """Train, select, score out of sample and export the signal model; returns the report.

    Times are ISO or offsets from the tape start ('+90min'). `end` cuts the test window short
    (default: the tape end). `main_horizon_s` (one of `horizons_s`) fixes the horizon the shipped
    model predicts; by default it is the one where the better candidate gains most over the
    one-feature logistic on the valid window. `folds` > 0 adds a walk-forward evaluation of the
    shipped family over the test window. Each of `eval_catalogs` is scored over
    [`eval_start`, `eval_end`] (default: the whole catalog) by every model and baseline.
    """
    t0 = time.perf_counter()
    out = Path(out)
    horizons_s = tuple(sorted({float(h) for h in horizons_s}))
    if epochs < 1 or hidden < 1:
        raise ValueError(f"epochs and hidden must be >= 1 (got {epochs}, {hidden})")
    if not horizons_s or min(horizons_s) <= 0:
        raise ValueError(f"horizons must be > 0 seconds, got {horizons_s}")
    if main_horizon_s is not None and float(main_horizon_s) not in horizons_s:
        raise ValueError(f"main horizon {main_horizon_s:g}s is not among the horizons {[hkey(h) for h in horizons_s]}")
    if threshold_bps < 0:
        raise ValueError(f"threshold_bps must be >= 0, got {threshold_bps}")
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"candidates must be some of {CANDIDATES}, got {candidates}")
    candidates = tuple(dict.fromkeys(candidates))
    _check_out(out)  # fail before the work, not after it
    tape = open_tape(catalog)
    bounds = _window_bounds(tape, train_until, valid_until, end)
    frame = offline_features(tape, None, bounds["test"][1])
    t_features = time.perf_counter() - t0
    ts = frame["ts"].to_numpy()
    x_all = frame[FEATURE_NAMES].to_numpy(np.float64)
    in_train = (ts >= bounds["train"][0]) & (ts < bounds["train"][1]) & np.all(np.isfinite(x_all), axis=1)
    if not in_train.any():
        raise ValueError(f"the train window [{iso_utc(bounds['train'][0])}, {iso_utc(bounds['train'][1])}) holds "
                         "no rows: widen it")
    scaler = _scaler(x_all[in_train], symmetric)  # from the train window only, the same for every horizon
    opts = FitOptions(hidden, epochs, seed, symmetric)

    with _deterministic(seed):
        per_h = {h: _fit_horizon(frame, bounds, h, threshold_bps, scaler, candidates, opts)
                 for h in horizons_s}
        eligible = [h for h in horizons_s if _spans(bounds, h) >= MIN_SPANS] or [horizons_s[0]]
        main = float(main_horizon_s) if main_horizon_s is not None else max(
            eligible, key=lambda h: (_valid_gain(per_h[h]), -h))
        chosen = per_h[main]
        selected = chosen.best
        shipped = chosen.fitted[selected]
        scripted = torch.jit.script(shipped.module)
        walk_forward = (_walk_forward(frame, bounds, folds, main, threshold_bps, selected, opts)
                        if folds else [])
    t_train = time.perf_counter() - t0 - t_features

    w = chosen.windows
    tr, te = w["train"], w["test"]
    class_moves = [float(tr["move"][tr["y"] == k].mean()) if np.any(tr["y"] == k) else
                   (-threshold_bps, 0.0, threshold_bps)[k] for k in range(3)]
    probs = {name: shipped.predict(w[name]["x"]) for name in ("valid", "test")}
    raw = {name: shipped.predict_uncalibrated(w[name]["x"]) for name in ("valid", "test")}
    expected = probs["test"] @ np.asarray(class_moves)
    weights_hash = _weights_sha256(shipped.module)
    model_id = f"{selected}-{weights_hash[:12]}"

    windows = {}
    for name in ("train", "valid", "test"):
        lo, hi = w[name]["bounds"]
        windows[name] = {"start": iso_utc(lo), "end": iso_utc(hi), "rows": w[name]["rows"],
                         "labelled": {hkey(h): per_h[h].windows[name]["labelled"] for h in horizons_s},
                         "dropped_nonfinite": w[name]["dropped_nonfinite"]}
    horizons = {}
    for h, ph in per_h.items():
        horizons[hkey(h)] = {
            "horizon_s": h,
            "class_frequencies": {n: metrics.class_frequencies(ph.windows[n]["y"]) for n in ("train", "valid", "test")},
            "valid": ph.scores["valid"],
            "test": ph.scores["test"],
            "best_on_valid": ph.best,
            "valid_gain_vs_logreg_imb": _valid_gain(ph),
            "spans": _spans(bounds, h),
            "training": {c: _training_summary(f) for c, f in ph.fitted.items()},
        }
    selection = {
        "main_horizon_s": main,
        "model": selected,
        "rule": ("main horizon: " + ("given" if main_horizon_s is not None else
                                     "the largest relative valid log-loss gain of the best candidate over the "
                                     f"logistic on {BASELINE_FEATURE}, among horizons the valid and test windows "
                                     f"span at least {MIN_SPANS} times")
                 + "; model: the candidate with the lower valid log loss at the main horizon"),
        "candidates": list(candidates),
    }
    verdict = _verdict(chosen.scores["test"], selected, main, "the test window")
    fallback_p_move = 1.0 - float(chosen.fits["prior"][1])
    report = {
        "kind": REPORT_KIND,
        "version": REPORT_VERSION,
        "model_id": model_id,
        "catalog": str(catalog),
        "instrument_id": str(tape.instrument.id),
        "venue_profile": tape.meta.get("venue_profile"),
        "synthetic": bool(tape.meta.get("synthetic", False)),
        "seed": seed,
        "label": {"horizons_s": list(horizons_s), "horizon_s": main, "threshold_bps": threshold_bps,
                  "classes": list(CLASSES)},
        "windows": windows,
        "horizons": horizons,
        "selection": selection,
        "verdict": verdict,
        "calibration": {
            "model": selected,
            "temperature": shipped.temperature,
            **{name: {"before": metrics.calibration(w[name]["y"], raw[name], classes=CLASSES),
                      "after": metrics.calibration(w[name]["y"], probs[name], classes=CLASSES)}
               for name in ("valid", "test")},
        },
        "expected_move": {
            "class_mean_move_bps": class_moves,
            "test_corr": (float(np.corrcoef(expected, te["move"])[0, 1])
                          if np.std(expected) > 0 and np.std(te["move"]) > 0 else None),
            "test_mae_bps": float(np.mean(np.abs(expected - te["move"]))),
        },
        "baselines": {**BASELINES, "fits": {hkey(h): ph.fits for h, ph in per_h.items()}},
        "walk_forward": walk_forward,
    }
    report["evaluations"] = [
        _evaluate_catalog(c, eval_start, eval_end, per_h, threshold_bps, selected, main) for c in eval_catalogs]
    report = json_clean(report)
    meta = {
        "model_id": model_id,
        "feature_names": list(FEATURE_NAMES),
        "scaler": {"mean": scaler[0].tolist(), "std": scaler[1].tolist(), "clip": INPUT_CLIP},
        "temperature": shipped.temperature,
        "label": {"horizon_s": main, "threshold_bps": threshold_bps, "classes": list(CLASSES),
                  "class_mean_move_bps": class_moves},
        "fallback": {"p_move": fallback_p_move, "rule": "models.fallback"},
        "baselines": chosen.fits,
        "windows": {name: [windows[name]["start"], windows[name]["end"]] for name in windows},
        "selection": selection,
        "verdict": verdict,
        "report": {k: v for k, v in report.items() if k not in ("calibration",)},
        "seed": seed,
        "versions": _versions(),
        "architecture": _architecture(selected, hidden, shipped),
        "training": {"epochs": epochs, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "patience": PATIENCE,
                     "logreg_l2": list(LOGREG_L2), "catalog": str(catalog), "instrument_id": str(tape.instrument.id)},
        "weights_sha256": weights_hash,
    }
    with _quiet_jit():
        size = _write_artifact(out, scripted, meta, te["x"][:256])
    report["artifact"] = {"path": str(out), "model_bytes": size, "weights_sha256": weights_hash}
    report["timing"] = {"features_s": t_features, "train_s": t_train, "total_s": time.perf_counter() - t0}
    return report


def json_clean(value):
    """`value` with every non-finite float as None (JSON has no NaN): an AUC with one class absent."""
    if isinstance(value, dict):
        return {k: json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _training_summary(f: Fitted) -> dict:
    info = {k: v for k, v in f.training.items() if k != "history"}
    return {**info, "temperature": f.temperature}


def _architecture(name: str, hidden: int, fitted: Fitted) -> dict:
    n = len(FEATURE_NAMES)
    common = {"input": "raw float32 features [N, F] in feature_names order",
              "output": "calibrated probabilities [N, 3] in label.classes order"}
    if name == "mlp":
        return {"type": "mlp", "hidden": hidden, "layers": [n, hidden, hidden, 3], "activation": "relu", **common}
    inputs = list(BOOK_FEATURES) if name == "logreg_book" else list(FEATURE_NAMES)
    return {"type": name, "layers": [len(inputs), 3], "inputs": inputs, "l2": fitted.training["l2"], **common}


# ---------------------------------------------------------------------------------------------
# Scoring on other catalogs


def _eval_frame(catalog, start, end) -> tuple[Tape, pd.DataFrame, int, int]:
    tape = open_tape(catalog)
    lo = parse_time(start, tape, "eval start")
    hi = parse_time(end, tape, "eval end")
    lo = tape.start_ns if lo is None else max(lo, tape.start_ns)
    hi = tape.end_ns if hi is None else min(hi, tape.end_ns)
    if hi <= lo:
        raise ValueError(f"the evaluation window of {catalog} is empty: {iso_utc(lo)} .. {iso_utc(hi)}")
    return tape, offline_features(tape, lo, hi), lo, hi


def _eval_window(frame: pd.DataFrame, lo: int, hi: int, horizon_s: float, threshold_bps: float) -> dict:
    # A window starting inside the tape opens with a seed snapshot stamped lo - 1: it belongs in.
    return _prepare(frame, {"eval": (lo - 1, hi, True)}, horizon_s, threshold_bps, {"eval": MIN_EVAL_ROWS})["eval"]


def _evaluate_catalog(catalog, start, end, per_h: dict, threshold_bps: float, selected: str, main: float) -> dict:
    """Every candidate and baseline (as fitted on the training catalog) scored on another catalog."""
    tape, frame, lo, hi = _eval_frame(catalog, start, end)
    horizons = {}
    for h, ph in per_h.items():
        w = _eval_window(frame, lo, hi, h, threshold_bps)
        forecasts = {c: f.predict(w["x"]) for c, f in ph.fitted.items()}
        forecasts.update(baseline_forecasts(ph.fits, w))
        horizons[hkey(h)] = {"horizon_s": h, "labelled": int(len(w["y"])),
                             "class_frequencies": metrics.class_frequencies(w["y"]),
                             "scores": _score(w["y"], forecasts)}
    where = f"{Path(catalog).name} [{iso_utc(lo)}, {iso_utc(hi)}]"
    return {"catalog": str(catalog), "instrument_id": str(tape.instrument.id),
            "synthetic": bool(tape.meta.get("synthetic", False)),
            "window": {"start": iso_utc(lo), "end": iso_utc(hi), "rows": int(len(frame))},
            "horizons": horizons, "verdict": _verdict(horizons[hkey(main)]["scores"], selected, main, where)}


def evaluate_artifact(model_dir: str | Path, catalog: str | Path, start: str | None = None,
                      end: str | None = None) -> dict:
    """A saved artifact and its baselines (as fitted when it was trained) scored on a catalog's
    window at the artifact's horizon: the evaluation of `flashmm train --model DIR --eval-catalog C`."""
    model_dir = Path(model_dir)
    try:
        meta = json.loads((model_dir / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{model_dir} is not a model artifact: {exc}") from None
    if meta.get("feature_names") != FEATURE_NAMES or "baselines" not in meta:
        raise ValueError(f"{model_dir} was built by another version of the features or training: retrain it")
    label = meta["label"]
    h, threshold = float(label["horizon_s"]), float(label["threshold_bps"])
    with _quiet_jit():
        module = torch.jit.load(str(model_dir / "model.pt"), map_location="cpu").eval()
    tape, frame, lo, hi = _eval_frame(catalog, start, end)
    w = _eval_window(frame, lo, hi, h, threshold)
    name = meta["selection"]["model"]
    with torch.inference_mode():
        shipped = module(torch.from_numpy(w["x"].astype(np.float32))).double().numpy()
    scores = _score(w["y"], {name: shipped, **baseline_forecasts(meta["baselines"], w)})
    where = f"{Path(catalog).name} [{iso_utc(lo)}, {iso_utc(hi)}]"
    return json_clean({
        "kind": "flashmm.signal_evaluation", "version": REPORT_VERSION, "model_id": meta["model_id"],
        "model_dir": str(model_dir), "catalog": str(catalog), "instrument_id": str(tape.instrument.id),
        "synthetic": bool(tape.meta.get("synthetic", False)),
        "label": {"horizon_s": h, "threshold_bps": threshold, "classes": list(CLASSES)},
        "window": {"start": iso_utc(lo), "end": iso_utc(hi), "rows": int(len(frame))},
        "horizons": {hkey(h): {"horizon_s": h, "labelled": int(len(w["y"])),
                               "class_frequencies": metrics.class_frequencies(w["y"]), "scores": scores}},
        "verdict": _verdict(scores, name, h, where)})
