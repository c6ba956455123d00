"""Health of the appliance's parts, for `/api/status` and `/api/queue-status`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from appliance import __version__
from appliance.core.evaluations import EvalStatus
from appliance.core.pool import PoolSize
from appliance.runtime.pool import WarmPool
from appliance.services.engines.readiness import EngineReadiness
from appliance.services.evaluation.evaluations import QueueStats
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.store.database import Database

log = logging.getLogger(__name__)
# How stale /api/status, /api/health and /api/metrics' health may be.
HEALTH_REFRESH_SECONDS = 1.0


class PlatformHealth(msgspec.Struct, kw_only=True):
    platform: str
    services: dict[str, str]
    # each engine requests may name: "available", or "unavailable" (e.g. runsc missing)
    engines: dict[str, str] = {}
    version: str = __version__


class PlatformStatusService:
    """Answers from a snapshot of the parts' health that a background task refreshes
    every HEALTH_REFRESH_SECONDS: a request never waits on the Docker engine (which can
    take seconds to answer while it starts many containers) nor on the database's read
    lock for a health probe."""

    def __init__(
        self,
        db: Database,
        readiness: EngineReadiness,
        queue: EvaluationQueue,
        pool: WarmPool,
        counts: Callable[[], Awaitable[dict[EvalStatus, int]]] | None = None,
    ) -> None:
        self._db = db
        # Stored evaluations by status: a GROUP BY over the whole table, so it is read
        # here in the background, not on every request (the queue's counts are live).
        self._count_source = counts
        self._counts: dict[EvalStatus, int] = {}
        self._readiness = readiness
        self._queue = queue
        self._pool = pool
        self.started_monotonic = time.monotonic()
        self._engine_ok = False
        self._database_ok = False
        self._executor_ok = False
        self._engines: dict[str, str] = {}
        self.refreshed_monotonic = 0.0
        self._refresher: asyncio.Task[None] | None = None

    # --- the snapshot -------------------------------------------------------------------

    async def refresh(self) -> None:
        """Look at every part once. The readiness checks answer from their own caches and
        refresh those in the background, so this is quick even on a busy engine."""
        self._engine_ok = await self._readiness.engine_alive()
        self._executor_ok = await self._readiness.executor_healthy()
        self._engines = await self._readiness.engines_available()
        try:
            self._database_ok = bool(await self._db.fetch_value("SELECT 1") == 1)
            if self._count_source is not None:
                self._counts = await self._count_source()
        except Exception:
            self._database_ok = False
        self.refreshed_monotonic = time.monotonic()

    async def start(self) -> None:
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="status-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:  # a failed look must not end the looking
                log.exception("refreshing the platform status failed")

    # --- answers ------------------------------------------------------------------------

    async def engine_healthy(self) -> bool:
        return self._engine_ok

    async def database_healthy(self) -> bool:
        return self._database_ok

    async def health(self) -> PlatformHealth:
        services = {
            "gateway": "healthy",
            "queue": "healthy" if self._queue.healthy else "unhealthy",
            "storage": "healthy" if self._database_ok else "unhealthy",
            "executor": "healthy" if self._executor_ok else "unhealthy",
        }
        overall = "healthy" if all(v == "healthy" for v in services.values()) else "degraded"
        return PlatformHealth(platform=overall, services=services, engines=dict(self._engines))

    def queue_stats(self) -> QueueStats:
        """The queue as it is now; the stored totals as of the last refresh (at most
        HEALTH_REFRESH_SECONDS old)."""
        return QueueStats(
            queued=self._queue.queued_count,
            processing=self._queue.running_count,
            total=sum(self._counts.values()),
            by_status=dict(self._counts),
        )

    def pool_sizes(self) -> list[PoolSize]:
        return self._pool.sizes()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
