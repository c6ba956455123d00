"""`/api/metrics` (Prometheus text format) and `/api/health`: open to anonymous callers,
as scrapers and load balancers have no key (rate limited like /api/status)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.services.monitoring.metrics import (
    MAX_SERIES_POINTS,
    HealthReport,
    MonitoringService,
    PerformanceReport,
)

# Litestar adds "; charset=utf-8" to a text/ media type.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


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
        # The service checks the bounds (its message); the schema says them.
        points: int | None = Parameter(default=None, schema_extra={"minimum": 1, "maximum": MAX_SERIES_POINTS}),
    ) -> PerformanceReport:
        return await monitoring.performance(duration, component, points)

    @get("/health", summary="Health of each component")
    async def health(self, monitoring: MonitoringService, identity: Identity) -> HealthReport:
        return await monitoring.health()
