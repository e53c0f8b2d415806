"""The rule-based signal: class probabilities from the top of the book alone, with fixed constants.

It stands in for the model whenever the model is missing or unhealthy (see `models.runtime`), and
`models.train` scores it out of sample next to the model so the two can be compared.

The rule, for each row:

    s      = clip(W_IMB * imb_1 + W_MICRO * tanh(micro_bps / MICRO_SCALE_BPS), -1, 1)
    p_move = P_MOVE_BASE + P_MOVE_SLOPE * |s|          chance the mid leaves the flat band
    p_up   = p_move * (1/2 + TILT * s)
    p_down = p_move * (1/2 - TILT * s)
    p_flat = 1 - p_move

`imb_1` is the L1 depth imbalance (bid - ask) / (bid + ask) in [-1, 1] and `micro_bps` the
microprice minus the mid in bps; both lean the same way when the bid is the heavier side, and the
microprice offset also grows with the spread. `s` is the direction score: +1 all pressure up. A
stronger lean makes a move likelier (`p_move`) and more one-sided (`TILT`). The constants were set
by hand for a one-block (~400 ms) horizon with a 1 bps flat band on a ~2.5 bps tick (SEI/USDC at
0.40), where 6-8% of blocks move; they are not refitted anywhere.

Properties the tests pin: every row is a probability vector (non-negative, sums to 1); p_up never
falls and p_down never rises as the imbalance (or the microprice offset) rises, because
TILT * P_MOVE_BASE >= P_MOVE_SLOPE / 2; a non-finite input counts as neutral (0), so the fallback
never emits NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES

IMBALANCE_FEATURE = "imb_1"
MICRO_FEATURE = "micro_bps"

W_IMB = 0.5
W_MICRO = 0.5
MICRO_SCALE_BPS = 2.5  # about one tick at 0.40 USDC
P_MOVE_BASE = 0.06
P_MOVE_SLOPE = 0.04
TILT = 0.4

_IMB_COL = FEATURE_NAMES.index(IMBALANCE_FEATURE)
_MICRO_COL = FEATURE_NAMES.index(MICRO_FEATURE)


def fallback_from(imbalance, micro_bps) -> np.ndarray:
    """The rule on arrays of L1 imbalance and microprice offset (bps): probabilities [N, 3]
    in the order (down, flat, up)."""
    imb = np.nan_to_num(np.asarray(imbalance, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    micro = np.nan_to_num(np.asarray(micro_bps, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if imb.shape != micro.shape:
        raise ValueError(f"imbalance and micro_bps differ in length: {imb.shape} vs {micro.shape}")
    s = np.clip(W_IMB * np.clip(imb, -1.0, 1.0) + W_MICRO * np.tanh(micro / MICRO_SCALE_BPS), -1.0, 1.0)
    p_move = P_MOVE_BASE + P_MOVE_SLOPE * np.abs(s)
    up = p_move * (0.5 + TILT * s)
    down = p_move * (0.5 - TILT * s)
    return np.stack([down, 1.0 - p_move, up], axis=1)


def fallback_probs(features) -> np.ndarray:
    """Probabilities [N, 3] (down, flat, up) from raw features.

    `features` is a DataFrame or mapping with the columns `imb_1` and `micro_bps`, or an array of
    raw feature rows in `FEATURE_NAMES` order ([N, F], or one row [F]).
    """
    if isinstance(features, (pd.DataFrame, Mapping)):
        missing = [c for c in (IMBALANCE_FEATURE, MICRO_FEATURE) if c not in features]
        if missing:
            raise ValueError(f"fallback needs the feature columns {missing}")
        return fallback_from(features[IMBALANCE_FEATURE], features[MICRO_FEATURE])
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"fallback expects raw feature rows [N, {len(FEATURE_NAMES)}], got shape {x.shape}")
    return fallback_from(x[:, _IMB_COL], x[:, _MICRO_COL])
