"""The figures alert rules and `/ws/monitor` read, by name.

CPU, memory and disk come from the performance sample the scheduler takes every
`metrics_sample_seconds` (MonitoringService.take_sample): they are measured once, not
again here (psutil's CPU figure is the time since its previous call, so a second caller
would shorten the sampler's window). Queue, pool and failure figures are read live; the
engine's reachability comes from the platform status cache, which never waits on a busy
engine.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec

from appliance.core.clock import utc_now
from appliance.core.evaluations import EvalStatus, Evaluation
from appliance.runtime.pool import WarmPool
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.services.monitoring.metrics import MonitoringService
from appliance.services.monitoring.status import PlatformStatusService

# name -> what it is (served by /ws/monitor, listed in docs/api.md)
METRICS: dict[str, str] = {
    "cpu_usage": "host CPU in use, percent of all cores (latest sample)",
    "memory_usage": "host memory in use, percent (latest sample)",
    "disk_usage": "space used on the data dir's disk, percent (latest sample)",
    "active_containers": "sandbox containers the warm pool holds: idle, being made and in use",
    "pool_idle": "warm containers ready for the next execution",
    "queue_depth": "evaluations waiting for a worker",
    "running_executions": "evaluations running now",
    "finished_executions": "evaluations that ended within the failure-rate window",
    "failure_rate": "percent of those that ended failed or timed out (null when none ended)",
    "engine_reachable": "1 when the Docker engine answers, 0 when it does not",
}
FAILED_STATUSES = (EvalStatus.FAILED, EvalStatus.TIMEOUT)


class Reading(msgspec.Struct, frozen=True):
    value: float | None
    at: datetime  # when it was measured: a sample's time, or now for live figures


class FinishedWindow:
    """Evaluations that ended in the last `seconds`, counted per second so memory stays
    bounded however many finish."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, ended, failed]

    def record(self, failed: bool) -> None:
        second = int(self._clock())
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        self._buckets[-1][1] += 1
        self._buckets[-1][2] += int(failed)

    def counts(self) -> tuple[int, int]:
        """(ended, failed) within the window."""
        oldest = self._clock() - self._seconds
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)


class SystemReadings:
    def __init__(
        self,
        monitoring: MonitoringService,
        queue: EvaluationQueue,
        pool: WarmPool,
        status: PlatformStatusService,
        failure_window_seconds: float,
    ) -> None:
        self._monitoring = monitoring
        self._queue = queue
        self._pool = pool
        self._status = status
        self.finished = FinishedWindow(failure_window_seconds)
        self._extra: dict[str, Callable[[], float]] = {}
        self.descriptions = dict(METRICS)
        queue.add_finish_listener(self._record)

    def _record(self, evaluation: Evaluation) -> None:
        self.finished.record(evaluation.status in FAILED_STATUSES)

    def add(self, name: str, description: str, read: Callable[[], float]) -> None:
        """A figure another service owns (e.g. open alerts), served like the others."""
        self.descriptions[name] = description
        self._extra[name] = read

    @property
    def names(self) -> list[str]:
        return list(self.descriptions)

    async def read(self, names: Iterable[str]) -> dict[str, Reading]:
        wanted = set(names)
        now = utc_now()
        sample = self._monitoring.latest_sample
        values: dict[str, Reading] = {}
        if sample is not None:
            for name, value in (
                ("cpu_usage", sample.cpu_percent),
                ("memory_usage", sample.memory_percent),
                ("disk_usage", sample.disk_percent),
            ):
                values[name] = Reading(value, sample.taken_at)
        else:
            values.update({n: Reading(None, now) for n in ("cpu_usage", "memory_usage", "disk_usage")})
        live: dict[str, Callable[[], float | None]] = {
            "active_containers": lambda: self._pool.containers,
            "pool_idle": lambda: sum(s.idle for s in self._pool.sizes()),
            "queue_depth": lambda: self._queue.queued_count,
            "running_executions": lambda: self._queue.running_count,
            **self._extra,
        }
        for name in wanted & live.keys():
            values[name] = Reading(live[name](), now)
        if wanted & {"finished_executions", "failure_rate"}:
            ended, failed = self.finished.counts()
            values["finished_executions"] = Reading(ended, now)
            values["failure_rate"] = Reading(round(100.0 * failed / ended, 1) if ended else None, now)
        if "engine_reachable" in wanted:
            values["engine_reachable"] = Reading(1.0 if await self._status.engine_healthy() else 0.0, now)
        return {name: values[name] for name in wanted if name in values}
