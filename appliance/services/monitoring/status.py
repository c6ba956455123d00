"""Health of the appliance's parts, for `/api/status` and `/api/queue-status`."""

from __future__ import annotations

import time

import msgspec

from appliance import __version__
from appliance.core.pool import PoolSize
from appliance.runtime.pool import WarmPool
from appliance.services.engines.readiness import EngineReadiness
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.store.database import Database


class PlatformHealth(msgspec.Struct, kw_only=True):
    platform: str
    services: dict[str, str]
    # each engine requests may name: "available", or "unavailable" (e.g. runsc missing)
    engines: dict[str, str] = {}
    version: str = __version__


class PlatformStatusService:
    def __init__(self, db: Database, readiness: EngineReadiness, queue: EvaluationQueue, pool: WarmPool) -> None:
        self._db = db
        self._readiness = readiness
        self._queue = queue
        self._pool = pool
        self.started_monotonic = time.monotonic()

    async def engine_healthy(self) -> bool:
        return await self._readiness.engine_alive()

    async def database_healthy(self) -> bool:
        try:
            return bool(await self._db.fetch_value("SELECT 1") == 1)
        except Exception:
            return False

    async def health(self) -> PlatformHealth:
        services = {
            "gateway": "healthy",
            "queue": "healthy" if self._queue.healthy else "unhealthy",
            "storage": "healthy" if await self.database_healthy() else "unhealthy",
            "executor": "healthy" if await self._readiness.executor_healthy() else "unhealthy",
        }
        overall = "healthy" if all(v == "healthy" for v in services.values()) else "degraded"
        return PlatformHealth(platform=overall, services=services, engines=await self._readiness.engines_available())

    def pool_sizes(self) -> list[PoolSize]:
        return self._pool.sizes()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
