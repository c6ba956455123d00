"""`/api/queue-status` and `/api/status`: open to anonymous callers (rate limited)."""

from __future__ import annotations

from litestar import Controller, Request, get

from appliance.core.identity import Identity
from appliance.http.platform.schemas import PlatformStatusBody, QueueStatusBody


class StatusController(Controller):
    path = "/api"
    tags = ["platform"]

    @get("/queue-status", summary="Queue statistics")
    async def queue_status(self, request: Request, identity: Identity) -> QueueStatusBody:
        stats = await request.app.state.appliance.evaluations.queue_stats()
        return QueueStatusBody(
            queued=stats.queued,
            processing=stats.processing,
            queue_length=stats.queued + stats.processing,
            total_tasks=stats.total,
        )

    @get("/status", summary="Platform health and statistics")
    async def platform_status(self, request: Request, identity: Identity) -> PlatformStatusBody:
        appliance = request.app.state.appliance
        health = await appliance.status.health()
        stats = await appliance.evaluations.queue_stats()
        return PlatformStatusBody(
            platform=health.platform,
            mode="appliance",
            services=health.services,
            queue={"queued": stats.queued, "processing": stats.processing},
            storage={
                "total_evaluations": stats.total,
                "by_status": {status.value: count for status, count in stats.by_status.items()},
            },
            version=health.version,
            uptime_seconds=round(appliance.status.uptime_seconds, 3),
            engines=health.engines,
            sandbox_pool=appliance.status.pool_sizes(),
        )
