"""The signal the actor publishes on the message bus each book batch (a NautilusTrader custom data type)."""

from __future__ import annotations

from nautilus_trader.core.data import Data
from nautilus_trader.model.identifiers import InstrumentId

SIGNAL_COLUMNS = ["ts", "p_down", "p_flat", "p_up", "expected_move_bps", "confidence", "horizon_s", "model_id",
                  "latency_us", "fallback"]


class SignalData(Data):
    """Class probabilities (down, flat, up) of the mid's move over the next `horizon_s` seconds,
    their expected move in bps, the directional confidence |p_up - p_down| (never the flat class's
    probability), which model produced them, how long inference took, and whether the rule-based
    fallback stood in for the model."""

    def __init__(
        self,
        instrument_id: InstrumentId,
        p_down: float,
        p_flat: float,
        p_up: float,
        expected_move_bps: float,
        confidence: float,
        horizon_s: float,
        model_id: str,
        latency_us: float,
        fallback: bool,
        ts_event: int,
        ts_init: int,
    ) -> None:
        self.instrument_id = instrument_id
        self.p_down, self.p_flat, self.p_up = p_down, p_flat, p_up
        self.expected_move_bps = expected_move_bps
        self.confidence = confidence
        self.horizon_s = horizon_s
        self.model_id = model_id
        self.latency_us = latency_us
        self.fallback = fallback
        self._ts_event = ts_event
        self._ts_init = ts_init

    @property
    def ts_event(self) -> int:
        return self._ts_event

    @property
    def ts_init(self) -> int:
        return self._ts_init

    @classmethod
    def from_output(cls, instrument_id: InstrumentId, out, batch) -> SignalData:
        """The signal a `SignalEngine` output (`models.runtime.SignalOutput`) gives for a book batch."""
        p = out.probs
        return cls(instrument_id, float(p[0]), float(p[1]), float(p[2]), out.expected_move_bps, out.confidence,
                   out.horizon_s, out.model_id, out.latency_us, out.fallback, batch.ts_event, batch.ts_init)

    @property
    def edge(self) -> float:
        """p_up - p_down: the signed directional lean, in [-1, 1]."""
        return self.p_up - self.p_down

    def row(self) -> tuple:
        return (self._ts_init, self.p_down, self.p_flat, self.p_up, self.expected_move_bps, self.confidence,
                self.horizon_s, self.model_id, self.latency_us, self.fallback)

    def __repr__(self) -> str:
        return (f"SignalData(p=({self.p_down:.3f}, {self.p_flat:.3f}, {self.p_up:.3f}), "
                f"move={self.expected_move_bps:+.3f}bps over {self.horizon_s:g}s, model={self.model_id}, "
                f"fallback={self.fallback})")
