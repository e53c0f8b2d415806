"""What can go wrong talking to Monaco, split by what the caller may conclude about its request.

The split matters for orders: a request refused before the venue processed it (`NotSent`,
`RateLimited`, `Rejected`) can be decided at once, while one whose answer was lost (`FateUnknown`:
a timeout, a 5xx, a connection cut after sending) may have created an order that must be looked
for before the strategy is told anything. No message here carries a token or key.
"""

from __future__ import annotations

from adapters.monaco.wire import ApiError


class VenueError(Exception):
    """Monaco could not be reached or answered something unusable."""


class NotSent(VenueError):
    """The request never left (no connection): the venue cannot have processed it."""


class FateUnknown(VenueError):
    """The request went out and no usable answer came back: it may or may not have taken effect."""


class RateLimited(VenueError):
    """HTTP 429: refused unprocessed; `retry_after_s` is how long the venue asked us to wait."""

    def __init__(self, retry_after_s: float, message: str) -> None:
        super().__init__(f"rate limited by the venue for {retry_after_s:g} s: {message}")
        self.retry_after_s = retry_after_s


class Rejected(VenueError):
    """A definite refusal (4xx other than 401 and 429), with the venue's own code and reason."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(f"HTTP {error.status} {error.code}: {error.message}")
        self.error = error


class AuthFailed(VenueError):
    """The venue refused our login or kept answering 401 after a fresh login."""
