"""Health of the appliance's parts, for `/api/status` and `/api/queue-status`."""

from __future__ import annotations

import asyncio
import time

import msgspec

from appliance import __version__
from appliance.runtime.engine import DockerEngine
from appliance.services.eval_queue import EvaluationQueue
from appliance.store.database import Database

ENGINE_CHECK_TTL_SECONDS = 2.0


class PlatformHealth(msgspec.Struct, kw_only=True):
    platform: str
    services: dict[str, str]
    version: str = __version__


class PlatformStatusService:
    def __init__(self, db: Database, engine: DockerEngine, queue: EvaluationQueue) -> None:
        self._db = db
        self._engine = engine
        self._queue = queue
        self._engine_checked_at = 0.0
        self._engine_ok = False
        self.started_monotonic = time.monotonic()

    async def engine_healthy(self) -> bool:
        """Pinged at most every few seconds: status polling must not hammer the engine."""
        if time.monotonic() - self._engine_checked_at > ENGINE_CHECK_TTL_SECONDS:
            try:
                self._engine_ok = await asyncio.wait_for(self._engine.call(self._engine.ping), 3)
            except (asyncio.TimeoutError, RuntimeError):
                self._engine_ok = False
            self._engine_checked_at = time.monotonic()
        return self._engine_ok

    async def database_healthy(self) -> bool:
        try:
            return await self._db.fetch_value("SELECT 1") == 1
        except Exception:
            return False

    async def health(self) -> PlatformHealth:
        services = {
            "gateway": "healthy",
            "queue": "healthy" if self._queue.healthy else "unhealthy",
            "storage": "healthy" if await self.database_healthy() else "unhealthy",
            "executor": "healthy" if await self.engine_healthy() else "unhealthy",
        }
        overall = "healthy" if all(v == "healthy" for v in services.values()) else "degraded"
        return PlatformHealth(platform=overall, services=services)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
