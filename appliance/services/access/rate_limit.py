"""Fixed-window request counting per identity and bucket.

Keyed by the authenticated identity, not the client address: behind a proxy or an SSH
tunnel every caller has the same address.
"""

from __future__ import annotations

import math
import time

import msgspec

WINDOW_SECONDS = 60


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window restarts

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))


class RateLimiter:
    def __init__(self, window_seconds: int = WINDOW_SECONDS) -> None:
        self._window = window_seconds
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    def check(self, who: str, bucket: str, limit: int) -> RateDecision:
        now = time.time()
        window_start = int(now // self._window) * self._window
        reset = window_start + self._window
        key = (who, bucket)
        start, count = self._counts.get(key, (window_start, 0))
        if start != window_start:
            count = 0
            if len(self._counts) > 100_000:  # forget windows that are over
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window_start}
        if limit <= 0:  # 0 turns the limit off
            return RateDecision(True, 0, 0, reset)
        if count >= limit:
            self._counts[key] = (window_start, count)
            return RateDecision(False, limit, 0, reset)
        self._counts[key] = (window_start, count + 1)
        return RateDecision(True, limit, limit - count - 1, reset)
