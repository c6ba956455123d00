"""Per model server (protocol family and base URL): how many calls are in flight at
once, how many start in any 60 seconds, and a pause every caller honours after the
server answered 429 with a Retry-After. The limits come from the model entry of each
call (entries that share a server should name the same ones: the last call's win)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

WINDOW_SECONDS = 60.0


class ServerLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._window = window
        self._concurrency = 1
        self._per_window = 0  # 0: no limit
        self._active = 0
        self._starts: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._changed = asyncio.Condition()

    def configure(self, concurrency: int, per_minute: int) -> None:
        self._concurrency = max(1, concurrency)
        self._per_window = max(0, per_minute)

    def pause(self, seconds: float) -> None:
        """Nobody starts a call on this server for `seconds` (it said 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def active(self) -> int:
        return self._active

    def _wait_needed(self) -> float:
        """0 when a call may start now; else seconds until that may change (inf: until
        a running call ends)."""
        now = self._clock()
        if self._paused_until > now:
            return self._paused_until - now
        if self._active >= self._concurrency:
            return float("inf")
        if self._per_window:
            while self._starts and self._starts[0] <= now - self._window:
                self._starts.popleft()
            if len(self._starts) >= self._per_window:
                return self._starts[0] + self._window - now
        return 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            while (wait := self._wait_needed()) > 0:
                try:
                    async with asyncio.timeout(None if wait == float("inf") else wait):
                        await self._changed.wait()
                except TimeoutError:
                    pass
            self._active += 1
            self._starts.append(self._clock())
        try:
            yield
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()
