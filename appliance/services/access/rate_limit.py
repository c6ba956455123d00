"""Fixed-window request counting per identity and bucket.

Keyed by the authenticated identity, not the client address: behind a proxy or an SSH
tunnel every caller has the same address.

Windows are aligned to the clock (a one-minute window renews on the minute), so every
caller sees the same X-RateLimit-Reset. The clock is a parameter: tests drive it by
hand instead of waiting for, or dodging, the turn of a minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec

WINDOW_SECONDS = 60


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window restarts
    retry_after: int  # whole seconds until `reset` by the limiter's clock, at least 1


class RateLimiter:
    def __init__(self, window_seconds: int = WINDOW_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._window = window_seconds
        self._clock = clock
        self._window_start: int | None = None
        self._counts: dict[tuple[str, str], int] = {}

    @property
    def tracked(self) -> int:
        """How many (identity, bucket) counts are held: only those of the current window."""
        return len(self._counts)

    def check(self, who: str, bucket: str, limit: int, cost: int = 1) -> RateDecision:
        """Count `cost` units (1 request, or n events) at once: all of them fit in what
        is left of the window, or none is counted and the answer is a refusal."""
        now = self._clock()
        window_start = int(now // self._window) * self._window
        if window_start != self._window_start:
            # Counts of a window that is over are worth nothing: forgetting them all at
            # its turn keeps memory to the callers of one window.
            self._window_start = window_start
            self._counts.clear()
        reset = window_start + self._window
        retry_after = max(1, math.ceil(reset - now))
        if limit <= 0:  # 0 turns the limit off
            return RateDecision(True, 0, 0, reset, retry_after)
        key = (who, bucket)
        count = self._counts.get(key, 0)
        if count + cost > limit:
            return RateDecision(False, limit, max(0, limit - count), reset, retry_after)
        self._counts[key] = count + cost
        return RateDecision(True, limit, limit - count - cost, reset, retry_after)
