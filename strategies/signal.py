"""The signal hook: an optional source that nudges fair value, spreads and sizes.

The strategy asks its source for the latest signal at quoting time. Strategy v1 ships with
`NoSignal`; the ML signal plugs in a source fed by its actor. Whatever a source returns is
clamped by the strategy config, so a misbehaving model can only move quotes within limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.signal_data import SignalData


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


class ModelSignal:
    """The ML actor's latest `SignalData`, turned into quoting adjustments by the config's knobs.

    Below `signal_min_confidence` the signal is ignored. Above it: fair value shifts by
    `signal_fair_shift_mult` x the expected move; spreads tighten linearly with confidence, by at
    most `signal_max_tighten` at certainty; sizes lean by `signal_size_skew` x (p_up - p_down),
    bigger on the side the model expects to be right to take. Scales move in steps (below).
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.last: SignalData | None = None

    def update(self, data: SignalData) -> None:
        self.last = data

    def latest(self, ts_ns: int) -> Signal | None:
        data, cfg = self.last, self.cfg
        if data is None or data.confidence < cfg.signal_min_confidence:
            return None
        certainty = (data.confidence - cfg.signal_min_confidence) / max(1 - cfg.signal_min_confidence, 1e-9)
        lean = _step(cfg.signal_size_skew * (data.p_up - data.p_down), SIZE_STEP)
        return Signal(
            ts_ns=data.ts_init,  # when the signal was made, on our clock (ts_event is the venue's)
            fair_shift_bps=cfg.signal_fair_shift_mult * data.expected_move_bps,
            spread_scale=1 - _step(cfg.signal_max_tighten * certainty, SPREAD_STEP),
            bid_size_scale=1 + lean,
            ask_size_scale=1 - lean,
        )


# Scales move in steps, not with every wobble of the model's output: each change of a quote's size
# or spread is a cancel and a place (gas on Sei, and a lost queue position).
SIZE_STEP, SPREAD_STEP = 0.1, 0.05


def _step(value: float, step: float) -> float:
    return round(value / step) * step
