"""Targets for short-horizon mid-move models: the move in bps over a time horizon, and its class.

A horizon is a time in seconds on the one clock (the receive time of each row): the label of the
row stamped t compares the mid then with the mid as of t + h, the last row stamped at or before
t + h. So a 5 s label means the same on a tape of 400 ms blocks and on a 100 ms exchange stream,
and the labels of several horizons come from the same rows (one feature pass).

A row whose t + h lies past the last row given has no label: whether the mid moved between that
last row and t + h is unknown. It is marked (nan, -1) rather than dropped so labels stay
row-aligned with the features. The flat band keeps moves within `threshold_bps` from being
learned as direction; at 0 (the default) "flat" means the mid did not move at all.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("down", "flat", "up")
NS = 1_000_000_000


def classify(move_bps: np.ndarray, threshold_bps: float) -> np.ndarray:
    """0/1/2 = down/flat/up for each move: down below -threshold, up above +threshold."""
    move = np.asarray(move_bps, dtype=np.float64)
    return np.where(move < -threshold_bps, 0, np.where(move > threshold_bps, 2, 1)).astype(np.int64)


def asof_index(ts: np.ndarray, when: np.ndarray) -> np.ndarray:
    """For each time in `when`, the index of the last row of `ts` (sorted) stamped at or before it
    (-1 if none)."""
    return np.searchsorted(np.asarray(ts, dtype=np.int64), np.asarray(when, dtype=np.int64), side="right") - 1


def make_labels(
    ts: np.ndarray, mid: np.ndarray, horizon_s: float, threshold_bps: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(move_bps, cls): move_bps[t] = (mid as of ts[t] + h / mid[t] - 1) * 1e4; cls 0/1/2 =
    down/flat/up, -1 where the horizon runs past the last row."""
    if not horizon_s > 0:
        raise ValueError(f"horizon_s must be > 0, got {horizon_s}")
    if threshold_bps < 0:
        raise ValueError(f"threshold_bps must be >= 0, got {threshold_bps}")
    ts = np.asarray(ts, dtype=np.int64)
    mid = np.asarray(mid, dtype=np.float64)
    if ts.shape != mid.shape:
        raise ValueError(f"ts and mid differ in shape: {ts.shape} vs {mid.shape}")
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("ts must be in time order")
    move = np.full(len(mid), np.nan)
    cls = np.full(len(mid), -1, dtype=np.int64)
    if len(mid) == 0:
        return move, cls
    target = ts + round(horizon_s * NS)
    known = target <= ts[-1]
    later = asof_index(ts, target[known])
    move[known] = (mid[later] / mid[known] - 1.0) * 1e4
    cls[known] = classify(move[known], threshold_bps)
    return move, cls


def past_moves(ts: np.ndarray, mid: np.ndarray, horizon_s: float) -> np.ndarray:
    """The realised move over the h seconds up to each row: (mid[t] / mid as of ts[t] - h - 1) *
    1e4, nan where no row is stamped at or before t - h. Uses nothing after t (persistence)."""
    ts = np.asarray(ts, dtype=np.int64)
    mid = np.asarray(mid, dtype=np.float64)
    earlier = asof_index(ts, ts - round(horizon_s * NS))
    out = np.full(len(mid), np.nan)
    ok = earlier >= 0
    out[ok] = (mid[ok] / mid[earlier[ok]] - 1.0) * 1e4
    return out
