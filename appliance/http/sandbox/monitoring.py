"""`/api/metrics` (Prometheus text format) and `/api/health`: open to anonymous callers,
as scrapers and load balancers have no key (rate limited like /api/status)."""

from __future__ import annotations

from litestar import Controller, get

from appliance.core.identity import Identity
from appliance.services.monitoring.metrics import HealthReport, MonitoringService, PerformanceReport

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
        points: int | None = None,
    ) -> PerformanceReport:
        return await monitoring.performance(duration, component, points)

    @get("/health", summary="Health of each component")
    async def health(self, monitoring: MonitoringService, identity: Identity) -> HealthReport:
        return await monitoring.health()
