"""`/api/metrics` (Prometheus text format) and `/api/health`: open to anonymous callers,
as scrapers and load balancers have no key (rate limited like /api/status)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from appliance.core.identity import Identity
from appliance.services.monitoring.metrics import HealthReport, MonitoringService

# Litestar adds "; charset=utf-8" to a text/ media type.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


class UsageFigures(msgspec.Struct, kw_only=True):
    """Percent of the machine, over the range."""

    current: float | None
    average: float | None
    peak: float | None


class ContainerFigures(msgspec.Struct, kw_only=True):
    total_containers: int
    running_containers: int
    avg_startup_time: float | None  # seconds


class ExecutionFigures(msgspec.Struct, kw_only=True):
    total_executions: int
    avg_execution_time: float | None  # seconds
    success_rate: float | None  # percent


class PerformanceStretch(msgspec.Struct, kw_only=True):
    """One of `points` equal stretches of the range, oldest first."""

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


class PerformanceBody(msgspec.Struct, kw_only=True):
    """With `component`, only that component's figures; with `points`, a `series` too."""

    duration: str
    samples: int
    cpu_usage: UsageFigures | msgspec.UnsetType = msgspec.UNSET
    memory_usage: UsageFigures | msgspec.UnsetType = msgspec.UNSET
    container_metrics: ContainerFigures | msgspec.UnsetType = msgspec.UNSET
    execution_metrics: ExecutionFigures | msgspec.UnsetType = msgspec.UNSET
    series: list[PerformanceStretch] | msgspec.UnsetType = msgspec.UNSET


class MonitoringController(Controller):
    path = "/api"
    tags = ["monitoring"]

    @get("/metrics", summary="Metrics in the Prometheus text format", media_type=PROMETHEUS_CONTENT_TYPE)
    async def metrics(self, monitoring: MonitoringService, identity: Identity) -> str:
        return monitoring.metrics_text()

    @get("/metrics/performance", summary="CPU, memory, containers and executions over a time range")
    async def performance(
        self,
        monitoring: MonitoringService,
        identity: Identity,
        duration: str = "1h",
        component: str | None = None,
        points: int | None = None,
    ) -> PerformanceBody:
        report = await monitoring.performance(duration, component, points)
        return msgspec.convert(report, PerformanceBody, from_attributes=True)

    @get("/health", summary="Health of each component")
    async def health(self, monitoring: MonitoringService, identity: Identity) -> HealthReport:
        return await monitoring.health()
