"""The warm pool: containers made ready before requests need them.

Every container is used for exactly one execution and then destroyed; the pool only
moves the cost of creating and starting it off the request's path. Each spec (image,
language, engine, limits) has a target number of idle containers, set by Little's law
from the spec's arrival rate (over the last `idle_seconds`) and the time its refills
take, between `min_idle` and `max_idle` and what free memory allows (core/pool_sizing.py).
Refills run in the background on the engine's threads, never on the event loop, and
stop while free memory is below the reserve or the pool holds `max_containers`; while
requests arrive faster than refills can be made, they run one at a time and leave the
CPU to the programs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import msgspec
import psutil

from appliance.core import pool_sizing
from appliance.core.pool import PoolSize
from appliance.core.pool_sizing import ArrivalRate
from appliance.runtime import sandbox as sandboxes
from appliance.runtime.engine import DockerEngine
from appliance.runtime.sandbox import Sandbox, SandboxSpec

log = logging.getLogger(__name__)

MAINTAIN_INTERVAL_SECONDS = 1.0
# After a failed refill (image missing, engine down) wait this long before the next try.
REFILL_BACKOFF_SECONDS = 5.0


class PoolSettings(msgspec.Struct, frozen=True, kw_only=True):
    min_idle: int = 1
    max_idle: int = 8
    max_containers: int = 32
    idle_seconds: float = 60.0
    memory_reserve_mb: int = 1024
    parallel_creates: int = 2


# The refill time assumed for a spec before any of its containers was made.
FIRST_REFILL_SECONDS = 0.5
# Weight of the newest refill in a lane's moving mean of refill times.
REFILL_MEAN_WEIGHT = 0.2


class _Lane:
    def __init__(self, min_idle: int, window: float) -> None:
        self.idle: collections.deque[Sandbox] = collections.deque()
        self.target = min_idle
        self.creating = 0
        self.failed_at = 0.0
        self.arrivals = ArrivalRate(window)
        self.refill_seconds: float | None = None

    def refilled(self, seconds: float) -> None:
        if self.refill_seconds is None:
            self.refill_seconds = seconds
        else:
            self.refill_seconds += REFILL_MEAN_WEIGHT * (seconds - self.refill_seconds)


class WarmPool:
    def __init__(self, engine: DockerEngine, settings: PoolSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._lanes: dict[SandboxSpec, _Lane] = {}
        self._in_use = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._creates = asyncio.Semaphore(max(1, settings.parallel_creates))
        self._background: set[asyncio.Task] = set()
        self._closing = False
        self._create_seconds: collections.deque[float] = collections.deque(maxlen=200)
        # Requests of a lane that found an idle container, and that had to wait for one.
        self.hits = 0
        self.misses = 0

    # --- the request path -------------------------------------------------------------

    async def acquire(self, spec: SandboxSpec, *, keep_warm: bool = True) -> Sandbox:
        """A ready sandbox of this spec: from the pool, or made now if there is none.
        `keep_warm=False`: a spec without a lane gets a container made for it and no lane
        (a one-off combination of limits must not keep idle containers from then on)."""
        if not keep_warm and spec not in self._lanes:
            self._in_use += 1
            try:
                return await self._timed_create(spec)
            except BaseException:
                self._in_use -= 1
                raise
        lane = self._lane(spec)
        lane.arrivals.record(time.monotonic())
        self._in_use += 1
        try:
            self._wake.set()
            if lane.idle:
                self.hits += 1
                return lane.idle.popleft()
            self.misses += 1
            return await self._timed_create(spec)
        except BaseException:
            self._in_use -= 1
            raise

    def discard(self, sandbox: Sandbox) -> None:
        """The sandbox was used (or cannot be): destroy it in the background."""
        self._in_use -= 1
        self._spawn(self._engine.call(sandboxes.destroy, self._engine, sandbox))

    def warm(self, spec: SandboxSpec) -> None:
        """Keep idle containers of this spec from now on, before any request asks."""
        self._lane(spec)
        self._wake.set()

    async def _timed_create(self, spec: SandboxSpec) -> Sandbox:
        started = time.monotonic()
        sandbox = await self._engine.call(sandboxes.create, self._engine, spec)
        self._create_seconds.append(time.monotonic() - started)
        return sandbox

    @property
    def average_create_seconds(self) -> float | None:
        """Mean time to create, attach and start a container, over the last 200."""
        return sum(self._create_seconds) / len(self._create_seconds) if self._create_seconds else None

    @property
    def containers(self) -> int:
        """Containers the pool holds now: idle, being made, and in use."""
        return self._total()

    def sizes(self) -> list[PoolSize]:
        return [
            PoolSize(
                language=spec.language,
                engine=spec.engine,
                image=spec.image,
                idle=len(lane.idle),
                target=lane.target,
                creating=lane.creating,
            )
            for spec, lane in self._lanes.items()
        ]

    # --- keeping it full ----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._maintain(), name="warm-pool")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        idle = [sandbox for lane in self._lanes.values() for sandbox in lane.idle]
        for lane in self._lanes.values():
            lane.idle.clear()
        await asyncio.gather(
            *(self._engine.call(sandboxes.destroy, self._engine, s) for s in idle), return_exceptions=True
        )
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _lane(self, spec: SandboxSpec) -> _Lane:
        lane = self._lanes.get(spec)
        if lane is None:
            lane = self._lanes[spec] = _Lane(self._settings.min_idle, self._settings.idle_seconds)
        return lane

    def _refill_seconds(self, lane: _Lane) -> float:
        return lane.refill_seconds or self.average_create_seconds or FIRST_REFILL_SECONDS

    def _memory_room(self, spec: SandboxSpec, lane: _Lane) -> int:
        """Containers of this spec free memory allows beside the reserve, counting the
        lane's idle ones (they hold their memory already)."""
        free = psutil.virtual_memory().available - self._settings.memory_reserve_mb * 1024 * 1024
        return len(lane.idle) + max(0, free // (max(spec.limits.memory_mb, 1) * 1024 * 1024))

    def refills_yield(self, now: float | None = None) -> bool:
        """Whether requests, all lanes together, arrive faster than refills are made."""
        now = time.monotonic() if now is None else now
        if not self._lanes:
            return False
        rate = sum(lane.arrivals.rate(now) for lane in self._lanes.values())
        refill = sum(self._refill_seconds(lane) for lane in self._lanes.values()) / len(self._lanes)
        return pool_sizing.refills_yield(rate, pool_sizing.sustainable_rate(self._settings.parallel_creates, refill))

    def _total(self) -> int:
        return self._in_use + sum(len(lane.idle) + lane.creating for lane in self._lanes.values())

    def _memory_allows(self, spec: SandboxSpec) -> bool:
        needed = (self._settings.memory_reserve_mb + spec.limits.memory_mb) * 1024 * 1024
        return psutil.virtual_memory().available >= needed

    async def _maintain(self) -> None:
        while not self._closing:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that arrives as the wait ends, and close() then waits forever.
            try:
                async with asyncio.timeout(MAINTAIN_INTERVAL_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self._rebalance()
            except Exception:  # the pool must keep running whatever one round hit
                log.exception("warm pool maintenance failed")

    def _rebalance(self) -> None:
        now = time.monotonic()
        yielding = self.refills_yield(now)
        for spec, lane in self._lanes.items():
            lane.target = pool_sizing.idle_target(
                lane.arrivals.rate(now),
                self._refill_seconds(lane),
                floor=self._settings.min_idle,
                ceiling=self._settings.max_idle,
                memory_room=self._memory_room(spec, lane),
            )
            while len(lane.idle) > lane.target:
                self.discard_idle(lane)
            if now - lane.failed_at < REFILL_BACKOFF_SECONDS:
                continue
            missing = lane.target - len(lane.idle) - lane.creating
            while missing > 0 and self._total() < self._settings.max_containers and self._memory_allows(spec):
                if yielding and self._creating() > 0:
                    break  # above the sustainable rate: one refill at a time
                lane.creating += 1
                missing -= 1
                self._spawn(self._refill(spec, lane))

    def _creating(self) -> int:
        return sum(lane.creating for lane in self._lanes.values())

    def discard_idle(self, lane: _Lane) -> None:
        sandbox = lane.idle.pop()
        self._spawn(self._engine.call(sandboxes.destroy, self._engine, sandbox))

    async def _refill(self, spec: SandboxSpec, lane: _Lane) -> None:
        try:
            async with self._creates:
                started = time.monotonic()
                sandbox = await self._timed_create(spec)
                lane.refilled(time.monotonic() - started)
        except Exception as exc:
            lane.failed_at = time.monotonic()
            log.warning("could not prepare a %s sandbox (%s): %s", spec.language, spec.engine, exc)
            return
        finally:
            lane.creating -= 1
        if self._closing:  # closed meanwhile
            await self._engine.call(sandboxes.destroy, self._engine, sandbox)
            return
        lane.idle.append(sandbox)
        self._wake.set()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
