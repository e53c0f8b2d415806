"""Targets for the short-horizon mid-move model: the move in bps and its down/flat/up class.

The flat band keeps moves within `threshold_bps` (e.g. no mid change, or noise well inside one
tick) from being learned as direction. The last `horizon_blocks` rows have no future mid; they are
marked (nan, -1) rather than dropped so labels stay row-aligned with the features.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("down", "flat", "up")


def make_labels(
    mid: np.ndarray, horizon_blocks: int = 1, threshold_bps: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(move_bps, cls): move_bps[t] = (mid[t+h] / mid[t] - 1) * 1e4; cls 0/1/2 = down/flat/up, -1 unknown."""
    if horizon_blocks < 1:
        raise ValueError(f"horizon_blocks must be >= 1, got {horizon_blocks}")
    if threshold_bps < 0:
        raise ValueError(f"threshold_bps must be >= 0, got {threshold_bps}")
    mid = np.asarray(mid, dtype=np.float64)
    h = horizon_blocks
    move = np.full(len(mid), np.nan)
    cls = np.full(len(mid), -1, dtype=np.int64)
    if len(mid) > h:
        move[:-h] = (mid[h:] / mid[:-h] - 1.0) * 1e4
        cls[:-h] = np.where(move[:-h] < -threshold_bps, 0, np.where(move[:-h] > threshold_bps, 2, 1))
    return move, cls
