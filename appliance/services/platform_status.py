"""Health of the appliance's parts, for `/api/status` and `/api/queue-status`."""

from __future__ import annotations

import asyncio
import time

import msgspec

from appliance import __version__
from appliance.runtime.engine import DockerEngine
from appliance.runtime.pool import WarmPool
from appliance.services.eval_queue import EvaluationQueue
from appliance.store.database import Database

ENGINE_CHECK_TTL_SECONDS = 2.0


class PlatformHealth(msgspec.Struct, kw_only=True):
    platform: str
    services: dict[str, str]
    # each engine requests may name: "available", or "unavailable" (e.g. runsc missing)
    engines: dict[str, str] = {}
    version: str = __version__


class PlatformStatusService:
    def __init__(self, db: Database, engine: DockerEngine, queue: EvaluationQueue, *,
                 engines: tuple[str, ...] = ("docker",), required_engine: str | None = None,
                 engine_problem=None, pool: WarmPool | None = None) -> None:
        self._db = db
        self._engine = engine
        self._queue = queue
        # With a mandatory engine (gVisor), only it is offered, and the executor is
        # unhealthy while it cannot run.
        self._engines = (required_engine,) if required_engine else engines
        self._required_engine = required_engine
        # async callable(engine name) -> str | None: why that engine cannot run now
        self._engine_problem = engine_problem
        self._pool = pool
        self._engine_checked_at = 0.0
        self._ping_task: asyncio.Task | None = None
        self._engine_ok = False
        self.started_monotonic = time.monotonic()

    async def engine_healthy(self) -> bool:
        """Pinged at most every few seconds: status polling must not hammer the engine.
        After the first answer, a stale result is returned at once while a fresh ping
        runs in the background, so a busy engine never makes /api/status slow."""
        stale = time.monotonic() - self._engine_checked_at > ENGINE_CHECK_TTL_SECONDS
        if self._engine_checked_at == 0.0:
            await self._ping()
        elif stale and (self._ping_task is None or self._ping_task.done()):
            self._ping_task = asyncio.create_task(self._ping())
        return self._engine_ok

    async def _ping(self) -> None:
        try:
            self._engine_ok = await asyncio.wait_for(self._engine.call(self._engine.ping), 3)
        except (asyncio.TimeoutError, RuntimeError):
            self._engine_ok = False
        self._engine_checked_at = time.monotonic()

    async def database_healthy(self) -> bool:
        try:
            return await self._db.fetch_value("SELECT 1") == 1
        except Exception:
            return False

    async def engines_available(self) -> dict[str, str]:
        engines: dict[str, str] = {}
        for name in self._engines:
            problem = await self._engine_problem(name) if self._engine_problem else None
            engines[name] = "unavailable" if problem else "available"
        return engines

    async def health(self) -> PlatformHealth:
        engine_up = await self.engine_healthy()
        engines = await self.engines_available() if engine_up else {e: "unavailable" for e in self._engines}
        executor_ok = engine_up and (
            self._required_engine is None or engines.get(self._required_engine) == "available"
        )
        services = {
            "gateway": "healthy",
            "queue": "healthy" if self._queue.healthy else "unhealthy",
            "storage": "healthy" if await self.database_healthy() else "unhealthy",
            "executor": "healthy" if executor_ok else "unhealthy",
        }
        overall = "healthy" if all(v == "healthy" for v in services.values()) else "degraded"
        return PlatformHealth(platform=overall, services=services, engines=engines)

    def pool_sizes(self) -> list[dict]:
        if self._pool is None:
            return []
        return [msgspec.structs.asdict(size) for size in self._pool.sizes()]

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
