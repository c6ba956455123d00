"""`/api/queue-status` and `/api/status`: open to anonymous callers (rate limited)."""

from __future__ import annotations

from litestar import Controller, get

from appliance.core.identity import Identity
from appliance.http.platform.schemas import (
    PlatformStatusBody,
    QueueCounts,
    QueueStatusBody,
    StorageBody,
)
from appliance.services.monitoring.status import PlatformStatusService


class StatusController(Controller):
    path = "/api"
    tags = ["platform"]

    @get("/queue-status", summary="Queue statistics")
    async def queue_status(self, platform_status: PlatformStatusService, identity: Identity) -> QueueStatusBody:
        stats = platform_status.queue_stats()
        return QueueStatusBody(
            queued=stats.queued,
            processing=stats.processing,
            queue_length=stats.queued + stats.processing,
            total_tasks=stats.total,
        )

    @get("/status", summary="Platform health and statistics")
    async def platform_status(self, platform_status: PlatformStatusService, identity: Identity) -> PlatformStatusBody:
        health = await platform_status.health()
        stats = platform_status.queue_stats()
        return PlatformStatusBody(
            platform=health.platform,
            mode="appliance",
            services=health.services,
            queue=QueueCounts(queued=stats.queued, processing=stats.processing),
            storage=StorageBody(
                total_evaluations=stats.total,
                by_status={status.value: count for status, count in stats.by_status.items()},
            ),
            version=health.version,
            uptime_seconds=round(platform_status.uptime_seconds, 3),
            engines=health.engines,
            sandbox_pool=platform_status.pool_sizes(),
        )
