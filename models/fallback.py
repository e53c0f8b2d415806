"""The rule-based signal: class probabilities from the book's imbalance alone.

It stands in for the model whenever the model is missing or unhealthy (see `models.runtime`), and
`models.train` scores it out of sample next to the models so the two can be compared.

The rule, for each row:

    s      = clip(W_IMB_1 * imb_1 + W_IMB_3 * imb_3, -1, 1)     direction score, +1 all pressure up
    p_move = base + SLOPE * min(base, 1 - base) * |s|            chance the mid leaves the flat band
    p_up   = p_move * (1/2 + TILT * s)
    p_down = p_move * (1/2 - TILT * s)
    p_flat = 1 - p_move

`imb_k` is the depth imbalance (bid - ask) / (bid + ask) over the top k levels, in [-1, 1]: a
heavier bid leans up. Both are scale-free, so the rule means the same on any instrument and tape
cadence. `base` is the only number that depends on the market and the horizon: the share of moves
(1 - the flat class's frequency) in the data the model was trained on, which `models.train`
stores in the artifact's meta.json (`fallback.p_move`). With no artifact at all nothing is known
and `base` is 2/3: each class equally likely at a balanced book.

Properties the tests pin: every row is a probability vector (non-negative, sums to 1); p_up never
falls and p_down never rises as either imbalance rises, because SLOPE / 2 <= TILT; a non-finite
input counts as neutral (0), so the fallback never emits NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES

INPUT_FEATURES = ("imb_1", "imb_3")
W_IMB_1 = 0.5
W_IMB_3 = 0.5
SLOPE = 2 / 3
TILT = 0.4
DEFAULT_P_MOVE = 2 / 3  # nothing known: down, flat and up equally likely at a balanced book
P_MOVE_RANGE = (0.01, 0.99)

_COLS = [FEATURE_NAMES.index(name) for name in INPUT_FEATURES]


def _finite(values) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)


def fallback_from(imb_1, imb_3, p_move: float = DEFAULT_P_MOVE) -> np.ndarray:
    """The rule on arrays of the L1 and L3 imbalance: probabilities [N, 3] (down, flat, up)."""
    a, b = _finite(imb_1), _finite(imb_3)
    if a.shape != b.shape:
        raise ValueError(f"imb_1 and imb_3 differ in length: {a.shape} vs {b.shape}")
    base = float(np.clip(p_move if np.isfinite(p_move) else DEFAULT_P_MOVE, *P_MOVE_RANGE))
    s = np.clip(W_IMB_1 * np.clip(a, -1.0, 1.0) + W_IMB_3 * np.clip(b, -1.0, 1.0), -1.0, 1.0)
    move = base + SLOPE * min(base, 1.0 - base) * np.abs(s)
    up = move * (0.5 + TILT * s)
    down = move * (0.5 - TILT * s)
    return np.stack([down, 1.0 - move, up], axis=1)


def fallback_probs(features, p_move: float = DEFAULT_P_MOVE) -> np.ndarray:
    """Probabilities [N, 3] (down, flat, up) from raw features.

    `features` is a DataFrame or mapping with the columns `imb_1` and `imb_3`, or an array of raw
    feature rows in `FEATURE_NAMES` order ([N, F], or one row [F]). `p_move` is the base chance of
    a move (see the module docstring).
    """
    if isinstance(features, (pd.DataFrame, Mapping)):
        missing = [c for c in INPUT_FEATURES if c not in features]
        if missing:
            raise ValueError(f"fallback needs the feature columns {missing}")
        return fallback_from(features[INPUT_FEATURES[0]], features[INPUT_FEATURES[1]], p_move)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"fallback expects raw feature rows [N, {len(FEATURE_NAMES)}], got shape {x.shape}")
    return fallback_from(x[:, _COLS[0]], x[:, _COLS[1]], p_move)
