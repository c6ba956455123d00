"""Evaluations the TUI saw finish (the feed's `completed` events), for the dashboard's
executions-per-minute and latency sparklines.

Times are the TUI's own clock when the event arrived (a fraction of a second after the
evaluation ended), so a daemon whose clock is off cannot shift the minutes.
"""

from __future__ import annotations

import time
from collections import deque

MINUTES_KEPT = 60
RUN_TIMES_KEPT = 120


class ExecutionHistory:
    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self.watching_since = clock()
        self._ended: deque[float] = deque()  # arrival times, oldest first
        self.run_times: deque[float] = deque(maxlen=RUN_TIMES_KEPT)  # seconds, oldest first
        self.seen = 0

    def record(self, execution_time: float | None) -> None:
        now = self._clock()
        self._ended.append(now)
        self.seen += 1
        if execution_time is not None:
            self.run_times.append(float(execution_time))
        while self._ended and self._ended[0] < now - MINUTES_KEPT * 60:
            self._ended.popleft()

    def per_minute(self, minutes: int = 30) -> list[int | None]:
        """Ended per clock minute over the last `minutes`, oldest first; the last is the
        minute under way. None for minutes before watching began: not seen, not zero."""
        current = int(self._clock() // 60)
        first = current - minutes + 1
        watched_from = int(self.watching_since // 60)
        counts: list[int | None] = [None if first + n < watched_from else 0 for n in range(minutes)]
        for ended in self._ended:
            index = int(ended // 60) - first
            if 0 <= index < minutes:
                counts[index] = (counts[index] or 0) + 1
        return counts

    def last_minute(self) -> int:
        """Ended in the 60 s up to now: the rate the dashboard calls 'now'."""
        cutoff = self._clock() - 60
        return sum(1 for ended in self._ended if ended > cutoff)
