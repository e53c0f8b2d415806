"""The signal hook: an optional source that nudges fair value, each side's distance, spreads and sizes.

The strategy asks its source for the latest signal at quoting time. Strategy v1 ships with
`NoSignal`; the ML signal plugs in a source fed by its actor. Whatever a source returns is
clamped by the strategy config, so a misbehaving model can only move quotes within limits.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from models.signal_data import SignalData


class Signal(NamedTuple):
    ts_ns: int
    fair_shift_bps: float = 0.0  # added to fair value
    spread_scale: float = 1.0  # multiplies both half spreads
    bid_size_scale: float = 1.0  # 0 pulls the side
    ask_size_scale: float = 1.0
    bid_widen_bps: float = 0.0  # the bid steps this much further from fair value (>= 0)
    ask_widen_bps: float = 0.0
    fair_from_mid: bool = False  # the shift is from the mid, not the configured fair value (a forecast of the mid)

    def shape(self) -> tuple[float, float, float, float]:
        """What moves a side without moving fair value: a change of it calls for a requote."""
        return (self.bid_widen_bps, self.ask_widen_bps, self.bid_size_scale, self.ask_size_scale)


NEUTRAL = Signal(ts_ns=0)


class SignalSource(Protocol):
    def latest(self, ts_ns: int) -> Signal | None: ...


class NoSignal:
    """The default source: never has an opinion."""

    def latest(self, ts_ns: int) -> Signal | None:
        return None


def is_current(signal: Signal, now_ns: int, max_age_ms: int) -> bool:
    """Not older than `max_age_ms` and not from the future. The strategy quotes on a signal only
    while it is current (otherwise neutral), and then on its `clamped` form."""
    return not (now_ns - signal.ts_ns > max_age_ms * 1_000_000 or signal.ts_ns > now_ns)


def clamped(signal: Signal, max_shift_bps: float, min_spread_scale: float, max_spread_scale: float,
            max_widen_bps: float) -> Signal:
    """The signal within its bounds, or neutral when it is not finite. It depends on the signal
    alone, so the strategy computes it once per signal."""
    if (-max_shift_bps <= signal.fair_shift_bps <= max_shift_bps
            and min_spread_scale <= signal.spread_scale <= max_spread_scale
            and 0.0 <= signal.bid_size_scale <= 2.0 and 0.0 <= signal.ask_size_scale <= 2.0
            and 0.0 <= signal.bid_widen_bps <= max_widen_bps and 0.0 <= signal.ask_widen_bps <= max_widen_bps):
        return signal  # within every bound (so finite: NaN fails each comparison): clamping keeps it
    finite = math.isfinite  # spelled out: this runs on every new signal
    if not (finite(signal.fair_shift_bps) and finite(signal.spread_scale) and finite(signal.bid_size_scale)
            and finite(signal.ask_size_scale) and finite(signal.bid_widen_bps) and finite(signal.ask_widen_bps)):
        return NEUTRAL
    return Signal(
        ts_ns=signal.ts_ns,
        fair_shift_bps=min(max(signal.fair_shift_bps, -max_shift_bps), max_shift_bps),
        spread_scale=min(max(signal.spread_scale, min_spread_scale), max_spread_scale),
        bid_size_scale=min(max(signal.bid_size_scale, 0.0), 2.0),
        ask_size_scale=min(max(signal.ask_size_scale, 0.0), 2.0),
        bid_widen_bps=min(max(signal.bid_widen_bps, 0.0), max_widen_bps),
        ask_widen_bps=min(max(signal.ask_widen_bps, 0.0), max_widen_bps),
        fair_from_mid=signal.fair_from_mid,
    )


class ModelSignal:
    """The ML actor's latest `SignalData`, turned into quoting adjustments by the config's knobs.

    The signal's direction is its edge d = p_up - p_down and its confidence |d|; the flat class's
    probability is never a confidence. Below `signal_min_confidence` no directional use acts.
    Each use is switched on its own:

    - fair skew (`signal_fair_skew`): fair value is the mid plus `signal_fair_shift_mult` x the
      expected move over the model's horizon. The model forecasts the mid's move from the whole
      book, the microprice's lean included, so its forecast replaces the microprice's (adding one to
      the other would count the book's lean twice);
    - adverse-selection protection (`signal_adverse_protection`): from |d| >=
      `signal_adverse_edge` the side the expected move would run over (the bid when d < 0, the ask
      when d > 0) steps back by `signal_adverse_widen_bps`, and from |d| >= `signal_pull_edge` it is
      pulled; it stays protected until |d| falls below `signal_adverse_release` or d changes sign
      (hysteresis: a forecast wobbling around the threshold would cancel and replace for nothing);
    - size lean (`signal_size_lean`): sizes lean by `signal_size_skew` x d, more on the side the
      model expects to be right to take;
    - tightening (`signal_tighten`): when p_flat >= `signal_tighten_min_flat` and no side is at
      risk, spreads tighten linearly in p_flat, by at most `signal_max_tighten` at p_flat = 1.

    Scales move in steps (below), so a wobbling forecast does not churn orders.
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.last: SignalData | None = None
        self.at_risk: str | None = None  # the side under adverse-selection protection, if any
        self._made: tuple[SignalData | None, Signal | None] = (None, None)  # (data, the signal made from it)

    def update(self, data: SignalData) -> None:
        self.last = data

    def latest(self, ts_ns: int) -> Signal | None:
        data = self.last
        if data is None:
            return None
        if self._made[0] is data:  # asked again for the same data (once per book batch and timer)
            return self._made[1]
        signal = self._make(data)
        self._made = (data, signal)
        return signal

    def _make(self, data: SignalData) -> Signal:
        cfg = self.cfg
        edge = data.p_up - data.p_down
        directional = abs(edge) >= cfg.signal_min_confidence
        fair_shift, widen, scale = 0.0, {"bid": 0.0, "ask": 0.0}, {"bid": 1.0, "ask": 1.0}
        at_risk = None
        if directional and cfg.signal_fair_skew:
            fair_shift = cfg.signal_fair_shift_mult * data.expected_move_bps
        if cfg.signal_adverse_protection:
            at_risk = self._protected_side(edge if directional else 0.0)
        if at_risk is not None:
            if abs(edge) >= cfg.signal_pull_edge:
                scale[at_risk] = 0.0
            else:
                widen[at_risk] = cfg.signal_adverse_widen_bps
        if directional and cfg.signal_size_lean:
            lean = _step(cfg.signal_size_skew * edge, SIZE_STEP)
            scale["bid"] *= 1 + lean
            scale["ask"] *= 1 - lean
        spread_scale = 1.0
        if cfg.signal_tighten and at_risk is None and data.p_flat >= cfg.signal_tighten_min_flat:
            calm = (data.p_flat - cfg.signal_tighten_min_flat) / (1 - cfg.signal_tighten_min_flat)
            spread_scale = 1 - _step(cfg.signal_max_tighten * calm, SPREAD_STEP)
        return Signal(
            ts_ns=data.ts_init,  # when the signal was made, on our clock (ts_event is the venue's)
            fair_shift_bps=fair_shift,
            spread_scale=spread_scale,
            bid_size_scale=scale["bid"],
            ask_size_scale=scale["ask"],
            bid_widen_bps=widen["bid"],
            ask_widen_bps=widen["ask"],
            fair_from_mid=cfg.signal_fair_skew,
        )


    def _protected_side(self, edge: float) -> str | None:
        """The side protected now: a side enters protection at |edge| >= signal_adverse_edge and
        stays until |edge| falls below signal_adverse_release or the lean turns to the other side."""
        cfg = self.cfg
        side = "bid" if edge < 0 else "ask" if edge > 0 else None
        if side is not None and abs(edge) >= cfg.signal_adverse_edge:
            self.at_risk = side
        elif self.at_risk is not None and (side != self.at_risk or abs(edge) < cfg.signal_adverse_release):
            self.at_risk = None
        return self.at_risk


# Scales move in steps, not with every wobble of the model's output: each change of a quote's size
# or spread is a cancel and a place (gas on a chain, and a lost queue position).
SIZE_STEP, SPREAD_STEP = 0.1, 0.05


def _step(value: float, step: float) -> float:
    return round(value / step) * step
