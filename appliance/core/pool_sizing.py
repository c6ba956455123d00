"""How many idle containers a warm-pool lane keeps: Little's law on its arrival rate and
the time a refill takes, between a floor and a ceiling. Pure functions of the figures
the pool measures, so the policy is tested on its own (tests/test_pool_sizing.py).

A lane whose requests arrive at λ per second, each taking an idle container that takes W
seconds to replace, has on average λ·W replacements under way (Little's law). To find a
container idle on arrival, the lane keeps that many plus a margin for the arrivals'
randomness (one standard deviation of a Poisson count, √(λ·W)), rounded up.

Refills compete with running programs for the CPU. Below the rate refills can sustain
they run at full speed (that is what keeps a container idle for the next request);
above it the pool cannot keep up anyway, so refills yield: one at a time, leaving the
cores to the programs that run now.
"""

from __future__ import annotations

import collections
import math

# The shortest span an arrival rate is taken over: a burst of n requests within a few
# milliseconds counts as n per second, not as thousands.
MIN_RATE_SPAN_SECONDS = 1.0


def idle_target(
    arrival_rate: float, refill_seconds: float, *, floor: int, ceiling: int, memory_room: int | None = None
) -> int:
    """Idle containers to keep: ⌈λW + √(λW)⌉, at least `floor`, at most `ceiling` and
    `memory_room` (the containers free memory allows beside the ones idle now). The floor
    wins over a memory ceiling only as far as memory allows: none is made without it."""
    in_refill = max(arrival_rate, 0.0) * max(refill_seconds, 0.0)
    wanted = math.ceil(in_refill + math.sqrt(in_refill)) if in_refill > 0 else 0
    target = min(max(wanted, floor), max(ceiling, 0))
    if memory_room is not None:
        target = min(target, max(memory_room, 0))
    return max(target, 0)


def sustainable_rate(parallel_refills: int, refill_seconds: float) -> float:
    """Containers per second the pool can make: `parallel_refills` at a time, each taking
    `refill_seconds`."""
    if refill_seconds <= 0:
        return math.inf
    return max(parallel_refills, 1) / refill_seconds


def refills_yield(arrival_rate: float, sustainable: float) -> bool:
    """Whether refills give way to running programs: only above the sustainable rate."""
    return arrival_rate > sustainable


class ArrivalRate:
    """Requests per second over the last `window` seconds, from their times (monotonic
    seconds, passed in, so this stays a pure calculation)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def record(self, now: float) -> None:
        self._times.append(now)
        self._forget(now)

    def rate(self, now: float) -> float:
        self._forget(now)
        if not self._times:
            return 0.0
        span = max(now - self._times[0], MIN_RATE_SPAN_SECONDS)
        return len(self._times) / span

    def _forget(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
