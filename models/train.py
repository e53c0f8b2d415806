"""Train the short-horizon mid-move model on a tape, score it out of sample, export it.

The tape is cut into three time-ordered windows: train = [tape start, train_until),
valid = [train_until, valid_until) and test = [valid_until, end] (end defaults to the tape end).
Without valid_until the last 20% of the train window becomes valid and the test window starts at
train_until. Features are computed once over the whole span (they only look back, so a window's
first rows may use the previous window's book, as they would live); labels are made per window, so
the last `horizon_blocks` rows of each window are unlabelled and dropped and no label ever looks
into the next window.

The model is a small MLP (features -> hidden -> hidden -> 3 logits, ReLU) on standardised inputs,
trained with Adam on shuffled minibatches of the train window, early-stopped on the valid log loss,
then temperature-scaled on the valid window. Everything runs in one thread with seeded RNGs and
deterministic algorithms, so a seed reproduces the metrics and the exported weights bit for bit.

The test window is scored for the model and four baselines (see `BASELINES`), and the artifact is
written to `out/`: `model.pt`, a TorchScript module mapping RAW float32 features [N, F] to
calibrated probabilities [N, 3] (down, flat, up) with the scaler and temperature inside, and
`meta.json` describing it. The directory is assembled in a temporary sibling and moved into place.

    python -m models.train --catalog data/sample --train-until +90min --valid-until +120min --out artifacts/signal
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from data.catalog import iso_utc, open_tape, parse_time
from models import metrics
from models.fallback import fallback_probs
from models.features import FEATURE_NAMES, offline_features
from models.labels import CLASSES, make_labels

MODEL_NAME = "mlp"
BATCH_SIZE = 256
LEARNING_RATE = 2e-3
PATIENCE = 5  # epochs without a better valid log loss before stopping
MIN_IMPROVEMENT = 1e-6
INPUT_CLIP = 8.0  # standardised inputs are clipped to +-8 sd: one wild feature cannot swing the output
STD_FLOOR = 1e-12  # a constant feature gets std 1 (it standardises to 0)
VALID_SHARE = 0.2  # of the train window, when valid_until is not given
MIN_LABELLED_ROWS = {"train": 300, "valid": 100, "test": 100}
PERSISTENCE_HIT = 0.6  # probability on the class of the last realised move; the rest split evenly

BASELINES = {
    "prior": "class frequencies of the train window, the same for every row",
    "persistence": (
        f"the class of the last realised move (mid now vs mid `horizon_blocks` blocks ago, same flat "
        f"band) gets {PERSISTENCE_HIT}, the other two {(1 - PERSISTENCE_HIT) / 2:.1f} each (flat at the "
        "tape's first blocks)"
    ),
    "logreg": "multinomial logistic regression on the L1 imbalance alone, fitted on the train window",
    "fallback": "the runtime's rule-based fallback (models.fallback), fixed constants, not fitted",
}


def _l1_imbalance_name(names: list[str]) -> str:
    """The depth-1 imbalance column: contains 'imb' and the level number exactly 1 (not 10)."""
    found = [n for n in names if "imb" in n.lower() and "1" in re.findall(r"\d+", n)]
    if len(found) != 1:
        raise RuntimeError(f"cannot identify the L1 imbalance feature among {names}: candidates {found}")
    return found[0]


L1_IMBALANCE = _l1_imbalance_name(FEATURE_NAMES)


# ---------------------------------------------------------------------------------------------
# Model


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

    def __init__(self, mlp: MLP, mean: np.ndarray, std: np.ndarray, temperature: float, clip: float) -> None:
        super().__init__()
        self.mlp = mlp
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))
        self.clip = float(clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        return torch.softmax(self.mlp(z) / self.temperature, dim=1)


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


def _fit_mlp(xtr, ytr, xva, yva, hidden, epochs, seed, prior) -> tuple[MLP, dict]:
    rng = np.random.default_rng(seed)
    model = MLP(xtr.shape[1], hidden)
    with torch.no_grad():  # start from the class prior: the flat class dominates short horizons
        model.net[-1].bias.copy_(torch.log(torch.tensor(np.maximum(prior, 1e-6), dtype=torch.float32)))
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


def _fit_calibrated(tr: dict, va: dict, hidden: int, epochs: int, seed: int):
    """Scaler and prior from `tr`, MLP early-stopped on `va`, temperature fitted on `va`."""
    mean = tr["x"].mean(axis=0)
    std = tr["x"].std(axis=0)
    std = np.where(std > STD_FLOOR, std, 1.0)
    prior = np.bincount(tr["y"], minlength=3)[:3] / len(tr["y"])
    xtr, xva = _standardise(tr["x"], mean, std), _standardise(va["x"], mean, std)
    mlp, training = _fit_mlp(xtr, tr["y"], xva, va["y"], hidden, epochs, seed, prior)
    with torch.no_grad():
        valid_logits = mlp(xva).double().numpy()
    temperature = fit_temperature(valid_logits, va["y"])
    # No autograd in the export: a TorchScript graph first run with grad-requiring weights fails
    # when later called under torch.inference_mode (as the runtime does).
    mlp.requires_grad_(False)
    return mlp, mean, std, prior, temperature, training


def _walk_forward(frame, bounds, folds, horizon_blocks, threshold_bps, hidden, epochs, seed) -> list[dict]:
    """Time-ordered walk-forward over the test window: for each of `folds` consecutive slices, refit
    on everything before it (its last VALID_SHARE early-stops and calibrates) and score the slice.
    Each fold's model sees only the past of the data it is scored on."""
    start = bounds["train"][0]
    lo, hi, _ = bounds["test"]
    cuts = [lo + (hi - lo) * i // folds for i in range(folds + 1)]
    results = []
    for i in range(folds):
        split = start + int((cuts[i] - start) * (1 - VALID_SHARE))
        fold_bounds = {"train": (start, split, False), "valid": (split, cuts[i], False),
                       "test": (cuts[i], cuts[i + 1], i == folds - 1)}
        w = _prepare(frame, fold_bounds, horizon_blocks, threshold_bps)
        mlp, mean, std, prior, temperature, _ = _fit_calibrated(w["train"], w["valid"], hidden, epochs, seed)
        model = CalibratedModel(mlp, mean, std, temperature, INPUT_CLIP).eval()
        with torch.no_grad():
            probs = model(torch.from_numpy(w["test"]["x"].astype(np.float32))).double().numpy()
        y = w["test"]["y"]
        results.append({
            "fold": i + 1, "fit_until": iso_utc(cuts[i]), "test": [iso_utc(cuts[i]), iso_utc(cuts[i + 1])],
            "labelled": int(len(y)),
            "mlp": metrics.evaluate(y, probs), "prior": metrics.evaluate(y, np.tile(prior, (len(y), 1))),
            "fallback": metrics.evaluate(y, fallback_probs(w["test"]["frame"])),
        })
    return results


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
    return {"mean": mean, "std": std, "coef": w.detach().numpy()[0].tolist(), "intercept": b.detach().numpy().tolist()}


def _logreg_probs(fit: dict, x: np.ndarray) -> np.ndarray:
    z = ((x - fit["mean"]) / fit["std"])[:, None] * np.asarray(fit["coef"])[None, :] + np.asarray(fit["intercept"])
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Windows and labels


def _labels(mid: np.ndarray, horizon_blocks: int, threshold_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """(cls, move_bps)."""
    move, cls = make_labels(mid, horizon_blocks=horizon_blocks, threshold_bps=threshold_bps)
    return cls, move


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


def _prepare(frame: pd.DataFrame, bounds, horizon_blocks, threshold_bps) -> dict:
    """Per window: features X, labels y, moves, persistence classes, the fallback input rows."""
    ts = frame["ts"].to_numpy()
    x_all = frame[FEATURE_NAMES].to_numpy(dtype=np.float64)
    # The last realised move at row i is the label of row i - h over the whole span (it only uses
    # mids up to row i, so crossing a window boundary backwards is no leak).
    cls_all, _ = _labels(frame["mid"].to_numpy(), horizon_blocks, threshold_bps)
    persist = np.ones(len(frame), dtype=np.int64)  # flat where no move has been seen yet
    if len(frame) > horizon_blocks:
        persist[horizon_blocks:] = cls_all[:-horizon_blocks]
    windows = {}
    for name, (lo, hi, inclusive) in bounds.items():
        mask = (ts >= lo) & ((ts <= hi) if inclusive else (ts < hi))
        idx = np.flatnonzero(mask)
        cls, move = _labels(frame["mid"].to_numpy()[idx], horizon_blocks, threshold_bps)
        finite = np.all(np.isfinite(x_all[idx]), axis=1)
        keep = (cls >= 0) & finite
        n_lab = int(keep.sum())
        need = MIN_LABELLED_ROWS[name]
        if n_lab < need:
            raise ValueError(
                f"the {name} window [{iso_utc(lo)}, {iso_utc(hi)}{']' if inclusive else ')'} has {len(idx)} blocks and "
                f"{n_lab} labelled rows; at least {need} are needed: widen it (train_until / valid_until / end)"
            )
        rows = idx[keep]
        windows[name] = {
            "x": x_all[rows], "y": cls[keep], "move": move[keep], "persist": persist[rows],
            "frame": frame.iloc[rows], "bounds": (lo, hi), "blocks": int(len(idx)),
            "dropped_nonfinite": int(((cls >= 0) & ~finite).sum()),
        }
    if len(np.unique(windows["train"]["y"])) < 2:
        raise ValueError("the train window holds a single class: lower threshold_bps or widen the window")
    return windows


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


def train(
    catalog: str | Path,
    train_until: str,
    valid_until: str | None,
    out: str | Path,
    seed: int = 0,
    horizon_blocks: int = 1,
    threshold_bps: float = 1.0,
    epochs: int = 30,
    hidden: int = 32,
    end: str | None = None,
    baseline_feature: str = L1_IMBALANCE,
    folds: int = 3,
) -> dict:
    """Train, calibrate, score out of sample and export the signal model; returns the report.

    Times are ISO or offsets from the tape start ('+90min'). `end` cuts the test window short
    (default: the tape end). `baseline_feature` is the single feature of the logistic baseline.
    `folds` > 0 adds a walk-forward evaluation over the test window (see `_walk_forward`).
    """
    t0 = time.perf_counter()
    out = Path(out)
    if epochs < 1 or hidden < 1 or horizon_blocks < 1:
        raise ValueError(f"epochs, hidden and horizon_blocks must be >= 1 (got {epochs}, {hidden}, {horizon_blocks})")
    if baseline_feature not in FEATURE_NAMES:
        raise ValueError(f"baseline_feature {baseline_feature!r} is not a feature; choose from {FEATURE_NAMES}")
    _check_out(out)  # fail before the work, not after it
    tape = open_tape(catalog)
    bounds = _window_bounds(tape, train_until, valid_until, end)
    frame = offline_features(tape, None, bounds["test"][1])
    t_features = time.perf_counter() - t0
    w = _prepare(frame, bounds, horizon_blocks, threshold_bps)
    tr, va, te = w["train"], w["valid"], w["test"]

    default_moves = (-threshold_bps, 0.0, threshold_bps)
    class_moves = [float(tr["move"][tr["y"] == k].mean()) if np.any(tr["y"] == k) else default_moves[k]
                   for k in range(3)]

    with _deterministic(seed):
        # Scaler, prior and class statistics from the train window only.
        mlp, mean, std, prior, temperature, training = _fit_calibrated(tr, va, hidden, epochs, seed)
        exported = CalibratedModel(mlp, mean, std, temperature, INPUT_CLIP).eval()
        scripted = torch.jit.script(exported)
        uncalibrated = torch.jit.script(CalibratedModel(mlp, mean, std, 1.0, INPUT_CLIP).eval())
        with torch.inference_mode():
            probs = {name: scripted(torch.from_numpy(w[name]["x"].astype(np.float32))).double().numpy()
                     for name in ("valid", "test")}
            raw = {name: uncalibrated(torch.from_numpy(w[name]["x"].astype(np.float32))).double().numpy()
                   for name in ("valid", "test")}
        logreg = _fit_logreg(tr["x"][:, FEATURE_NAMES.index(baseline_feature)], tr["y"])
        walk_forward = (_walk_forward(frame, bounds, folds, horizon_blocks, threshold_bps, hidden, epochs, seed)
                        if folds else [])
    t_train = time.perf_counter() - t0 - t_features

    # Out-of-sample scores on the test window.
    y_te = te["y"]
    hit, miss = PERSISTENCE_HIT, (1 - PERSISTENCE_HIT) / 2
    persistence = np.full((len(y_te), 3), miss)
    persistence[np.arange(len(y_te)), te["persist"]] = hit
    forecasts = {
        "mlp": probs["test"],
        "mlp_uncalibrated": raw["test"],
        "prior": np.tile(prior, (len(y_te), 1)),
        "persistence": persistence,
        "logreg": _logreg_probs(logreg, te["x"][:, FEATURE_NAMES.index(baseline_feature)]),
        "fallback": fallback_probs(te["frame"]),
    }
    test_scores = {name: metrics.evaluate(y_te, p) for name, p in forecasts.items()}
    expected = probs["test"] @ np.asarray(class_moves)
    weights_hash = _weights_sha256(exported)
    model_id = f"{MODEL_NAME}-{weights_hash[:12]}"

    windows = {}
    for name in ("train", "valid", "test"):
        lo, hi = w[name]["bounds"]
        windows[name] = {"start": iso_utc(lo), "end": iso_utc(hi), "blocks": w[name]["blocks"],
                         "labelled": int(len(w[name]["y"])), "dropped_nonfinite": w[name]["dropped_nonfinite"]}
    scores = {
        "windows": windows,
        "class_frequencies": {name: metrics.class_frequencies(w[name]["y"]) for name in ("train", "valid", "test")},
        "test": test_scores,
        "valid": {"mlp": metrics.evaluate(va["y"], probs["valid"]),
                  "mlp_uncalibrated": metrics.evaluate(va["y"], raw["valid"])},
        "calibration": {
            "temperature": temperature,
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
        "training": {**{k: v for k, v in training.items()}},
        "walk_forward": walk_forward,
    }
    report = {
        "model_id": model_id,
        "catalog": str(catalog),
        "seed": seed,
        "label": {"horizon_blocks": horizon_blocks, "threshold_bps": threshold_bps, "classes": list(CLASSES)},
        "baseline_feature": baseline_feature,
        "baselines": {**BASELINES, "prior_probs": prior.tolist(), "logreg_fit": logreg},
        **scores,
    }
    meta = {
        "model_id": model_id,
        "feature_names": list(FEATURE_NAMES),
        "scaler": {"mean": mean.tolist(), "std": std.tolist(), "clip": INPUT_CLIP},
        "temperature": temperature,
        "label": {"horizon_blocks": horizon_blocks, "threshold_bps": threshold_bps, "classes": list(CLASSES),
                  "class_mean_move_bps": class_moves},
        "windows": {name: [windows[name]["start"], windows[name]["end"]] for name in windows},
        "metrics": scores,
        "seed": seed,
        "versions": _versions(),
        "architecture": {"type": MODEL_NAME, "hidden": hidden, "layers": [len(FEATURE_NAMES), hidden, hidden, 3],
                         "activation": "relu", "input": "raw float32 features [N, F] in feature_names order",
                         "output": "calibrated probabilities [N, 3] in label.classes order"},
        "training": {"epochs": epochs, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "patience": PATIENCE,
                     "catalog": str(catalog), "instrument_id": str(tape.instrument.id)},
        "weights_sha256": weights_hash,
    }
    with _quiet_jit():
        size = _write_artifact(out, scripted, meta, te["x"][:256])
    report["artifact"] = {"path": str(out), "model_bytes": size, "weights_sha256": weights_hash}
    report["timing"] = {"features_s": t_features, "train_s": t_train, "total_s": time.perf_counter() - t0}
    return report


# ---------------------------------------------------------------------------------------------
# Report

_ROWS = [
    ("mlp", "MLP, calibrated"),
    ("mlp_uncalibrated", "MLP, before temperature"),
    ("prior", "class prior (train)"),
    ("persistence", "persistence"),
    ("logreg", "logistic on {feature}"),
    ("fallback", "rule-based fallback"),
]


def _fmt(v, spec=".4f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def render_report(report: dict) -> str:
    """The out-of-sample report as text: windows, class frequencies, the test-window table of every
    model and baseline, calibration before/after temperature scaling and the test reliability table."""
    lab, win = report["label"], report["windows"]
    tw = max(len(win[n][k]) for n in win for k in ("start", "end"))
    lines = [
        f"signal model {report['model_id']}  (seed {report['seed']}, horizon {lab['horizon_blocks']} block(s), "
        f"flat band +-{lab['threshold_bps']:g} bps)",
        "",
        f"{'window':<7} {'start':<{tw}} {'end':<{tw}} {'blocks':>7} {'labelled':>8}   "
        + "  ".join(f"{c:>6}" for c in lab["classes"]),
    ]
    for name in ("train", "valid", "test"):
        freq = report["class_frequencies"][name]
        lines.append(f"{name:<7} {win[name]['start']:<{tw}} {win[name]['end']:<{tw}} {win[name]['blocks']:>7} "
                     f"{win[name]['labelled']:>8}   " + "  ".join(f"{f:>6.3f}" for f in freq))
    lines += ["", f"Out-of-sample, test window ({win['test']['labelled']} labelled blocks):",
              f"{'model':<32} {'log loss':>9} {'accuracy':>9} {'AUC':>7} {'ECE':>7}"]
    for key, label in _ROWS:
        s = report["test"][key]
        label = label.format(feature=report.get("baseline_feature", "L1 imbalance"))
        lines.append(f"{label:<32} {_fmt(s['log_loss']):>9} {_fmt(s['accuracy']):>9} {_fmt(s['auc']):>7} "
                     f"{_fmt(s['ece']):>7}")
    cal = report["calibration"]
    lines += [
        "",
        f"temperature {cal['temperature']:.4f} (fitted on valid); ECE before -> after: "
        f"valid {cal['valid']['before']['ece']:.4f} -> {cal['valid']['after']['ece']:.4f}, "
        f"test {cal['test']['before']['ece']:.4f} -> {cal['test']['after']['ece']:.4f}",
        "persistence: " + report["baselines"]["persistence"],
    ]
    em = report["expected_move"]
    lines.append("class mean move (train, bps): " + ", ".join(
        f"{c} {m:+.3f}" for c, m in zip(lab["classes"], em["class_mean_move_bps"], strict=True))
        + f"; expected move vs realised on test: corr {_fmt(em['test_corr'], '.3f')}, MAE {em['test_mae_bps']:.3f} bps")
    tr = report["training"]
    lines.append(f"training: {tr['epochs_run']} epochs, best {tr['best_epoch']} "
                 f"(valid log loss {tr['best_valid_log_loss']:.4f})")
    if report.get("walk_forward"):
        lines += ["", "walk-forward over the test window (refit on all data before each fold; log loss / AUC):",
                  f"{'fold':<5} {'test window (UTC)':<20} {'rows':>6} {'MLP':>15} {'prior':>15} {'fallback':>15}"]
        for f in report["walk_forward"]:
            cells = [f"{f[k]['log_loss']:.4f} / {_fmt(f[k]['auc'], '.3f')}" for k in ("mlp", "prior", "fallback")]
            window = f"{f['test'][0][11:19]}..{f['test'][1][11:19]}"
            lines.append(f"{f['fold']:<5} {window:<20} {f['labelled']:>6} "
                         + " ".join(f"{c:>15}" for c in cells))
    lines += ["", "reliability on test (confidence = highest probability, calibrated):",
              f"{'bin':<11} {'count':>7} {'mean pred':>10} {'observed':>9}"]
    for b in cal["test"]["after"]["confidence"]:
        if b["count"]:
            lines.append(f"[{b['lo']:.1f}, {b['hi']:.1f}) {b['count']:>7} {_fmt(b['mean_predicted']):>10} "
                         f"{_fmt(b['observed_frequency']):>9}")
    if "artifact" in report:
        art = report["artifact"]
        lines += ["", f"artifact: {art['path']} (model.pt {art['model_bytes']} bytes)"]
    if "timing" in report:
        t = report["timing"]
        lines.append(f"time: {t['total_s']:.1f} s (features {t['features_s']:.1f} s, training {t['train_s']:.1f} s)")
    return "\n".join(lines)
