"""The batch lane: one batch sandbox per (owner, batch, engine), made on the batch's first
execution and destroyed when the batch has nothing left to run.

A sandbox that dies (memory blown, tampered with) fails only the execution it was
running; the batch's next execution gets a new sandbox.
"""

from __future__ import annotations

import asyncio
import logging

from appliance.core.evaluations import ExecutionOutcome
from appliance.runtime.batch_sandbox import BatchSandbox
from appliance.runtime.engine import DockerEngine
from appliance.runtime.limits import SandboxLimits
from appliance.runtime.sandbox import ExecutionHandle

log = logging.getLogger(__name__)

LaneKey = tuple[str, str, str]  # owner, batch id, engine


class BatchLanes:
    def __init__(self, engine: DockerEngine, image: str, limits: SandboxLimits) -> None:
        self._engine = engine
        self._image = image
        self._limits = limits
        self._sandboxes: dict[LaneKey, BatchSandbox] = {}
        self._starting: dict[LaneKey, asyncio.Lock] = {}
        self._running: dict[int, BatchSandbox] = {}  # id(handle) -> its sandbox

    async def run(self, key: LaneKey, code: str, timeout: float, handle: ExecutionHandle) -> ExecutionOutcome:
        sandbox = await self._sandbox(key)
        if handle.killed:
            return ExecutionOutcome(exit_code=None, stdout="", stderr="", killed=True)
        self._running[id(handle)] = sandbox
        try:
            return await sandbox.run(code, timeout=timeout, output_limit=self._limits.output_bytes)
        except Exception:
            # This sandbox can run nothing more: the batch's next execution gets another.
            if self._sandboxes.get(key) is sandbox:
                del self._sandboxes[key]
            await sandbox.close()
            raise
        finally:
            self._running.pop(id(handle), None)

    async def kill(self, handle: ExecutionHandle) -> None:
        handle.request_kill()
        sandbox = self._running.get(id(handle))
        if sandbox is not None:
            await sandbox.kill_current()

    async def release(self, owner: str, batch_id: str) -> None:
        """The batch has nothing left to run: destroy its sandboxes."""
        for key in [k for k in self._sandboxes if k[:2] == (owner, batch_id)]:
            sandbox = self._sandboxes.pop(key)
            await sandbox.close()

    async def close(self) -> None:
        sandboxes, self._sandboxes = list(self._sandboxes.values()), {}
        await asyncio.gather(*(s.close() for s in sandboxes), return_exceptions=True)

    async def _sandbox(self, key: LaneKey) -> BatchSandbox:
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            sandbox = self._sandboxes.get(key)
            if sandbox is None or not sandbox.alive:
                owner, batch_id, engine_name = key
                sandbox = BatchSandbox(
                    self._engine, self._image, self._limits, engine_name=engine_name, owner=owner, batch_id=batch_id
                )
                await sandbox.start()
                self._sandboxes[key] = sandbox
        return sandbox
