"""The signal hook: an optional source that nudges fair value, spreads and sizes.

The strategy asks its source for the latest signal at quoting time. Strategy v1 ships with
`NoSignal`; the ML signal plugs in a source fed by its actor. Whatever a source returns is
clamped by the strategy config, so a misbehaving model can only move quotes within limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Signal:
    ts_ns: int
    fair_shift_bps: float = 0.0  # added to fair value
    spread_scale: float = 1.0  # multiplies both half spreads
    bid_size_scale: float = 1.0
    ask_size_scale: float = 1.0


NEUTRAL = Signal(ts_ns=0)


class SignalSource(Protocol):
    def latest(self, ts_ns: int) -> Signal | None: ...


class NoSignal:
    """The default source: never has an opinion."""

    def latest(self, ts_ns: int) -> Signal | None:
        return None


def effective_signal(
    signal: Signal | None,
    now_ns: int,
    max_age_ms: int,
    max_shift_bps: float,
    min_spread_scale: float,
    max_spread_scale: float,
) -> Signal:
    """The signal to quote on: neutral when absent, stale or non-finite; otherwise clamped."""
    if signal is None or now_ns - signal.ts_ns > max_age_ms * 1_000_000 or signal.ts_ns > now_ns:
        return NEUTRAL
    values = (signal.fair_shift_bps, signal.spread_scale, signal.bid_size_scale, signal.ask_size_scale)
    if not all(v == v and abs(v) != float("inf") for v in values):
        return NEUTRAL
    return Signal(
        ts_ns=signal.ts_ns,
        fair_shift_bps=min(max(signal.fair_shift_bps, -max_shift_bps), max_shift_bps),
        spread_scale=min(max(signal.spread_scale, min_spread_scale), max_spread_scale),
        bid_size_scale=min(max(signal.bid_size_scale, 0.0), 2.0),
        ask_size_scale=min(max(signal.ask_size_scale, 0.0), 2.0),
    )
