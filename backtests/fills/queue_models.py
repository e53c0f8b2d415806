"""Queue models: how much of a level's shrinkage happened ahead of our order.

When a level shrinks by more than the prints at that price explain, someone cancelled, and the
data does not say where in the queue. These models estimate it, as hftbacktest's do:

- `ProbPowerQueue` (hftbacktest's ProbQueueModel with PowerProbQueueFunc): a cancellation is
  behind us with probability f(back) / (f(back) + f(front)), f(x) = x**n. Larger n pushes more
  of the cancellations behind us when we are near the front.
- `RiskAverseQueue`: cancellations never advance us; only prints do (and a level shrinking below
  our position, which can only mean everything ahead of us left).
"""

from __future__ import annotations

from typing import Protocol


class QueueModel(Protocol):
    name: str

    def after_cancel(self, front: float, prev_size: float, new_size: float, cancelled: float) -> float:
        """Our new queue position (market size ahead of us) after `cancelled` left the level."""
        ...


class ProbPowerQueue:
    name = "prob_power"

    def __init__(self, n: float = 2.0) -> None:
        if not n > 0:
            raise ValueError(f"queue_power must be > 0, got {n}")
        self.n = n

    def after_cancel(self, front: float, prev_size: float, new_size: float, cancelled: float) -> float:
        back = max(prev_size - front, 0.0)
        fb, ff = back**self.n, front**self.n
        prob_behind = fb / (fb + ff) if fb + ff > 0 else 1.0
        est = front - (1.0 - prob_behind) * cancelled + min(back - prob_behind * cancelled, 0.0)
        return min(max(est, 0.0), new_size)


class RiskAverseQueue:
    name = "risk_averse"

    def after_cancel(self, front: float, prev_size: float, new_size: float, cancelled: float) -> float:
        return min(front, new_size)


def make_queue_model(name: str, power: float = 2.0) -> QueueModel:
    if name == "prob_power":
        return ProbPowerQueue(power)
    if name == "risk_averse":
        return RiskAverseQueue()
    raise ValueError(f"unknown queue_model {name!r}: choose 'prob_power' or 'risk_averse'")
