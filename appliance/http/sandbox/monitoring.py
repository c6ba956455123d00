"""`/api/metrics` (Prometheus text format) and `/api/health`: open to anonymous callers,
as scrapers and load balancers have no key (rate limited like /api/status)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get

from appliance.core.identity import Identity
from appliance.services.monitoring.metrics import HealthReport, PerformanceReport

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MonitoringController(Controller):
    path = "/api"
    tags = ["monitoring"]

    @get("/metrics", summary="Metrics in the Prometheus text format")
    async def metrics(self, request: Request, identity: Identity) -> Response[str]:
        text = request.app.state.appliance.monitoring.metrics_text()
        return Response(text, media_type=PROMETHEUS_CONTENT_TYPE)

    @get("/metrics/performance", summary="CPU, memory, containers and executions over a time range")
    async def performance(
        self,
        request: Request,
        identity: Identity,
        duration: str = "1h",
        component: str | None = None,
        points: int | None = None,
    ) -> PerformanceReport:
        return await request.app.state.appliance.monitoring.performance(duration, component, points)

    @get("/health", summary="Health of each component")
    async def health(self, request: Request, identity: Identity) -> HealthReport:
        return await request.app.state.appliance.monitoring.health()
