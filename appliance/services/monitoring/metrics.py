"""Metrics in the Prometheus text format, and component health, for /api/metrics and
/api/health.

Counters are fed by the evaluation queue as evaluations end; gauges are read when a
scraper asks. Nothing here waits on the Docker engine: the engine's health comes from
the platform status service, which answers from a cache refreshed in the background.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import psutil

from appliance import __version__
from appliance.core.clock import iso_z, utc_now
from appliance.core.errors import ValidationError
from appliance.core.evaluations import Evaluation
from appliance.core.metrics import Counter, Histogram, render_gauge
from appliance.runtime.pool import WarmPool
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.services.monitoring.status import PlatformStatusService
from appliance.store.performance import PerformanceSample, PerformanceStore

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# The data dir's disk is unhealthy below this much free space.
DISK_MIN_FREE_BYTES = 512 * 1024 * 1024


class ComponentHealth(msgspec.Struct, kw_only=True):
    name: str
    status: str
    last_check: str
    message: str | None = None


class HealthReport(msgspec.Struct, kw_only=True):
    status: str
    version: str
    uptime: int
    components: list[ComponentHealth]


class UsageFigures(msgspec.Struct, kw_only=True):
    current: float | None  # percent, the latest sample
    average: float | None
    peak: float | None


class ContainerFigures(msgspec.Struct, kw_only=True):
    total_containers: int
    running_containers: int
    avg_startup_time: float | None  # seconds


class ExecutionFigures(msgspec.Struct, kw_only=True):
    total_executions: int
    avg_execution_time: float | None  # seconds
    success_rate: float | None  # percent; None when none ended


class SeriesPoint(msgspec.Struct, kw_only=True):
    """One stretch of the range, what the TUI plots."""

    start: str
    seconds: float
    samples: int
    cpu_average: float | None
    cpu_peak: float | None
    memory_average: float | None
    containers_average: float | None
    queue_depth_peak: int | None
    executions: int
    avg_execution_time: float | None
    success_rate: float | None


class PerformanceReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """/api/metrics/performance: a `component` leaves out the other three groups, and
    `series` is there when `points` was asked for."""

    duration: str
    samples: int
    cpu_usage: UsageFigures | None = None
    memory_usage: UsageFigures | None = None
    container_metrics: ContainerFigures | None = None
    execution_metrics: ExecutionFigures | None = None
    series: list[SeriesPoint] | None = None


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PERFORMANCE_COMPONENTS = ("cpu", "memory", "containers", "executions")
MAX_SERIES_POINTS = 500


def parse_duration(text: str, longest: float) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValidationError(
            f"duration {text!r} is not a time range: use a number and s, m, h or d, like 30m, 1h, 24h or 7d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > longest:
        raise ValidationError(
            f"duration {text!r} reaches past the {longest / 3600:g} h of samples kept (setting metrics_retention_hours)"
        )
    return timedelta(seconds=seconds)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _round3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rate(successes: int, executions: int) -> float | None:
    return round(100.0 * successes / executions, 1) if executions else None


class MonitoringService:
    def __init__(
        self,
        queue: EvaluationQueue,
        pool: WarmPool,
        status: PlatformStatusService,
        data_path: Path,
        samples: PerformanceStore,
        retention_hours: float,
    ) -> None:
        self._samples = samples
        self._retention = timedelta(hours=retention_hours)
        self._sampled = 0
        # The newest sample, for alert rules and /ws/monitor (services/readings.py).
        self.latest_sample: PerformanceSample | None = None
        # Other services' gauges for /api/metrics (alerts), each returning text lines.
        self._gauge_sources: list[Callable[[], list[str]]] = []
        self._queue = queue
        self._pool = pool
        self._status = status
        self._data_path = data_path
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only starts the measurement
        self.executions = Counter(
            "appliance_executions_total", "Evaluations that reached a final status.", ("status", "language", "engine")
        )
        self.execution_seconds = Histogram(
            "appliance_execution_seconds",
            "Run time of finished evaluations, code handed in to program end.",
            DURATION_BUCKETS,
            ("language",),
        )
        self.turnaround_seconds = Histogram(
            "appliance_turnaround_seconds",
            "Submission to final status, queueing included.",
            DURATION_BUCKETS,
            ("language",),
        )
        queue.add_finish_listener(self.record)

    def record(self, evaluation: Evaluation) -> None:
        e = evaluation
        self.executions.inc(e.status.value, e.language, e.engine)
        if e.execution_time is not None:
            self.execution_seconds.observe(e.execution_time, e.language)
        if e.completed_at is not None:
            self.turnaround_seconds.observe((e.completed_at - e.created_at).total_seconds(), e.language)

    # --- /api/metrics -------------------------------------------------------------------

    def metrics_text(self) -> str:
        lines: list[str] = []
        lines += self.executions.render()
        lines += self.execution_seconds.render()
        lines += self.turnaround_seconds.render()
        lines += render_gauge(
            "appliance_queue_depth", "Evaluations waiting for a worker.", [({}, self._queue.queued_count)]
        )
        lines += render_gauge(
            "appliance_running_executions", "Evaluations running now.", [({}, self._queue.running_count)]
        )
        sizes = self._pool.sizes()
        lines += render_gauge(
            "appliance_pool_idle_containers",
            "Warm containers ready, per language and engine.",
            [({"language": s.language, "engine": s.engine}, s.idle) for s in sizes],
        )
        lines += render_gauge(
            "appliance_pool_target_containers",
            "Idle containers the pool aims to keep.",
            [({"language": s.language, "engine": s.engine}, s.target) for s in sizes],
        )
        lines += render_gauge(
            "appliance_containers",
            "Sandbox containers the pool holds: idle, being made, in use.",
            [({}, self._pool.containers)],
        )
        memory = psutil.virtual_memory()
        disk = shutil.disk_usage(self._data_path)
        lines += render_gauge(
            "appliance_process_cpu_percent",
            "CPU used by the appliance process.",
            [({}, self._process.cpu_percent(None))],
        )
        lines += render_gauge(
            "appliance_process_resident_bytes",
            "Resident memory of the appliance process.",
            [({}, self._process.memory_info().rss)],
        )
        lines += render_gauge(
            "appliance_host_cpu_percent", "CPU in use on the host, all cores.", [({}, psutil.cpu_percent(None))]
        )
        lines += render_gauge(
            "appliance_host_memory_used_percent", "Memory in use on the host.", [({}, memory.percent)]
        )
        lines += render_gauge("appliance_data_disk_free_bytes", "Free space on the data dir's disk.", [({}, disk.free)])
        lines += render_gauge(
            "appliance_asyncio_tasks",
            "Tasks on the appliance's event loop (a number that only grows is a leak; bench/soak.py watches it).",
            [({}, len(asyncio.all_tasks()))],
        )
        lines += render_gauge(
            "appliance_uptime_seconds",
            "Seconds since the appliance started.",
            [({}, round(self._status.uptime_seconds, 3))],
        )
        for source in self._gauge_sources:
            lines += source()
        return "\n".join(lines) + "\n"

    def add_gauges(self, source: Callable[[], list[str]]) -> None:
        self._gauge_sources.append(source)

    # --- /api/health --------------------------------------------------------------------

    async def health(self) -> HealthReport:
        now = iso_z(utc_now())

        def component(name: str, ok: bool, message: str | None = None) -> ComponentHealth:
            return ComponentHealth(
                name=name, status="healthy" if ok else "unhealthy", last_check=now, message=None if ok else message
            )

        free = shutil.disk_usage(self._data_path).free
        components = [
            component("database", await self._status.database_healthy(), "the SQLite database does not answer"),
            component("container_manager", await self._status.engine_healthy(), "the Docker engine does not answer"),
            component("scheduler", self._queue.healthy, "the evaluation workers are not running"),
            component(
                "disk", free >= DISK_MIN_FREE_BYTES, f"only {free // (1024 * 1024)} MiB free on the data dir's disk"
            ),
        ]
        bad = [c for c in components if c.status != "healthy"]
        status = "healthy" if not bad else ("unhealthy" if any(c.name == "database" for c in bad) else "degraded")
        return HealthReport(
            status=status, version=__version__, uptime=int(self._status.uptime_seconds), components=components
        )

    # --- samples and /api/metrics/performance -------------------------------------------

    async def take_sample(self) -> None:
        """Run by the scheduler every few seconds; old samples go now and then."""
        now = utc_now()
        sample = PerformanceSample(
            taken_at=now,
            cpu_percent=psutil.cpu_percent(None),
            memory_percent=psutil.virtual_memory().percent,
            disk_percent=psutil.disk_usage(str(self._data_path)).percent,
            queue_depth=self._queue.queued_count,
            running=self._queue.running_count,
            containers=self._pool.containers,
        )
        self.latest_sample = sample
        await self._samples.add(sample)
        self._sampled += 1
        if self._sampled % 100 == 1:
            await self._samples.forget_before(now - self._retention)

    async def performance(
        self, duration: str = "1h", component: str | None = None, points: int | None = None
    ) -> PerformanceReport:
        window = parse_duration(duration, self._retention.total_seconds())
        if component is not None and component not in PERFORMANCE_COMPONENTS:
            raise ValidationError(f"unknown component {component!r}; one of: {', '.join(PERFORMANCE_COMPONENTS)}")
        if points is not None and not 1 <= points <= MAX_SERIES_POINTS:
            raise ValidationError(
                f"points must be 1 to {MAX_SERIES_POINTS} (got {points})", details={"field": "points"}
            )
        since = utc_now() - window
        summary = await self._samples.summary(since)
        startup = self._pool.average_create_seconds
        wanted = PERFORMANCE_COMPONENTS if component is None else (component,)
        report = PerformanceReport(duration=duration, samples=summary.samples)
        if "cpu" in wanted:
            report.cpu_usage = UsageFigures(
                current=_round(summary.cpu_current), average=_round(summary.cpu_average), peak=_round(summary.cpu_peak)
            )
        if "memory" in wanted:
            report.memory_usage = UsageFigures(
                current=_round(summary.memory_current),
                average=_round(summary.memory_average),
                peak=_round(summary.memory_peak),
            )
        if "containers" in wanted:
            report.container_metrics = ContainerFigures(
                total_containers=self._pool.containers,
                running_containers=self._queue.running_count,
                avg_startup_time=None if startup is None else round(startup, 3),
            )
        if "executions" in wanted:
            report.execution_metrics = ExecutionFigures(
                total_executions=summary.executions,
                avg_execution_time=_round3(summary.average_execution_time),
                success_rate=_rate(summary.successes, summary.executions),
            )
        if points is not None:
            report.series = await self._series(since, window.total_seconds() / points, points)
        return report

    async def _series(self, since: datetime, stretch_seconds: float, points: int) -> list[SeriesPoint]:
        """The range cut into `points` stretches, oldest first."""
        stretches = await self._samples.series(since, stretch_seconds, points)
        return [
            SeriesPoint(
                start=iso_z(since + timedelta(seconds=s.index * stretch_seconds)),
                seconds=round(stretch_seconds, 3),
                samples=s.samples,
                cpu_average=_round(s.cpu_average),
                cpu_peak=_round(s.cpu_peak),
                memory_average=_round(s.memory_average),
                containers_average=_round(s.containers_average),
                queue_depth_peak=s.queue_depth_peak,
                executions=s.executions,
                avg_execution_time=_round3(s.average_execution_time),
                success_rate=_rate(s.successes, s.executions),
            )
            for s in stretches
        ]
