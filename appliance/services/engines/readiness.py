"""Whether code can run now: the Docker engine, each sandbox engine (runc, gVisor) and
each language's runtime image.

One answer for everyone who asks (submissions, `/api/status`, `/api/health`, sandboxes,
the warm-up at start), cached for a few seconds and refreshed in the background, so a
busy engine never makes a status request slow and polling never hammers the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from appliance.core.languages import LANGUAGES
from appliance.runtime.engine import DockerEngine, gvisor_missing_help
from appliance.runtime.images import image_ref

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0  # an image or runtime found (or missing) is believed this long
PING_TTL_SECONDS = 2.0  # the engine's liveness is believed this long
PING_TIMEOUT_SECONDS = 3.0

ENGINE_UNREACHABLE = "the Docker engine is not reachable; evaluations cannot run until it is back"


class StartupRefused(Exception):
    """The appliance must not serve in this state (e.g. gVisor mandatory but missing)."""


class EnginePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Which sandbox engines requests may name on this appliance."""

    engines: tuple[str, ...]
    require_gvisor: bool = False
    gvisor_runtime: str = "runsc"

    @property
    def offered(self) -> tuple[str, ...]:
        """The engines requests can get: with gVisor mandatory, gVisor alone."""
        return ("gvisor",) if self.require_gvisor else self.engines

    @property
    def default(self) -> str:
        """The engine of a request that names none."""
        if self.require_gvisor or "docker" not in self.engines:
            return "gvisor"
        return "docker"


class _Cached(msgspec.Struct):
    checked_at: float
    problem: str | None


class EngineReadiness:
    def __init__(self, engine: DockerEngine, policy: EnginePolicy) -> None:
        self._engine = engine
        self.policy = policy
        self._images: dict[str, _Cached] = {}
        self._runtimes: dict[str, _Cached] = {}
        self._runtime_check: asyncio.Task[None] | None = None
        self._alive = False
        self._pinged_at = 0.0
        self._ping_task: asyncio.Task[None] | None = None

    # --- the Docker engine itself --------------------------------------------------------

    async def engine_alive(self) -> bool:
        """Pinged at most every PING_TTL_SECONDS. After the first answer, a stale result is
        returned at once while a fresh ping runs in the background."""
        stale = time.monotonic() - self._pinged_at > PING_TTL_SECONDS
        if self._pinged_at == 0.0:
            await self._ping()
        elif stale and (self._ping_task is None or self._ping_task.done()):
            self._ping_task = asyncio.create_task(self._ping(), name="engine-ping")
        return self._alive

    async def _ping(self) -> None:
        try:
            self._alive = await asyncio.wait_for(self._engine.call(self._engine.ping), PING_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError):
            self._alive = False
        self._pinged_at = time.monotonic()

    # --- runtime images -------------------------------------------------------------------

    async def image_problem(self, language_name: str) -> str | None:
        """Why code in this language cannot run now, or None."""
        cached = self._images.get(language_name)
        if cached is not None and (cached.problem is None or time.monotonic() - cached.checked_at < RECHECK_SECONDS):
            return cached.problem
        ref = image_ref(LANGUAGES[language_name].image)
        if not await self._engine.call(self._engine.ping):
            problem: str | None = ENGINE_UNREACHABLE
        elif not await self._engine.call(self._engine.image_present, ref):
            problem = f"the runtime image {ref} is missing: run `appliance images build` (or `images import FILE`)"
        else:
            problem = None
        self._images[language_name] = _Cached(time.monotonic(), problem)
        return problem

    # --- sandbox engines ------------------------------------------------------------------

    async def engine_problem(self, engine: str) -> str | None:
        """Why evaluations cannot run on this sandbox engine now, or None. An unreachable
        Docker engine is not reported here: image_problem and engine_alive say so."""
        if engine != "gvisor":
            return None
        if engine not in self._runtimes:
            await self._check_runtime(engine)
        cached = self._runtimes[engine]
        # Stale: answer with what is known and look again in the background. `docker
        # info` can take a second on a busy engine, and /api/status must not wait for it.
        stale = time.monotonic() - cached.checked_at >= RECHECK_SECONDS
        if stale and (self._runtime_check is None or self._runtime_check.done()):
            self._runtime_check = asyncio.create_task(self._check_runtime(engine), name="runtime-check")
        return cached.problem

    async def _check_runtime(self, engine: str) -> None:
        registered = await self._engine.call(self._engine.has_runtime, self.policy.gvisor_runtime)
        problem = gvisor_missing_help(self.policy.gvisor_runtime) if registered is False else None
        self._runtimes[engine] = _Cached(time.monotonic(), problem)

    async def engines_available(self) -> dict[str, str]:
        """Each engine requests may name: "available" or "unavailable"."""
        if not await self.engine_alive():
            return {name: "unavailable" for name in self.policy.offered}
        return {name: "unavailable" if await self.engine_problem(name) else "available" for name in self.policy.offered}

    async def executor_healthy(self) -> bool:
        """The engine answers and, where gVisor is mandatory, gVisor can run."""
        if not await self.engine_alive():
            return False
        return not self.policy.require_gvisor or await self.engine_problem("gvisor") is None

    async def runnable(self) -> list[tuple[str, str]]:
        """Every (language, engine) that can run now: what the warm pool fills at start."""
        found = []
        for engine in self.policy.offered:
            if await self.engine_problem(engine) is not None:
                continue
            for name in LANGUAGES:
                if await self.image_problem(name) is None:
                    found.append((name, engine))
        return found

    def check_required_engine(self) -> None:
        """With require_gvisor, refuse to run when dockerd answers but has no gVisor
        runtime. Synchronous: `appliance serve` calls it before it listens."""
        if not self.policy.require_gvisor:
            return
        registered = self._engine.has_runtime(self.policy.gvisor_runtime)
        if registered is False:
            raise StartupRefused(
                "gVisor is mandatory here (require_gvisor) but "
                + gvisor_missing_help(self.policy.gvisor_runtime)
                + "; or unset require_gvisor"
            )
        if registered is None:
            log.warning(
                "Docker engine not reachable: cannot check the gVisor runtime %r that "
                "require_gvisor needs; evaluations get 503 until it is there",
                self.policy.gvisor_runtime,
            )
