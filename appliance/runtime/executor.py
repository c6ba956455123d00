"""Runs one piece of code in one fresh, locked-down container from the warm pool.

The container was created and started ahead of time with its runner waiting (see
`pool`, `sandbox`, `runners`); this hands the code in, streams the output back, and has
the container destroyed afterwards. A container is never reused.

A request with limits of its own (POST /api/execute's memory_limit, cpu_limit,
network_access) must not make the pool keep a lane of idle containers per combination.
Under runc it borrows a container of the default lane and `docker update`s its memory
and CPU (about 12 ms, against 150-200 ms to create and start one); otherwise (gVisor,
whose runsc has no `update`, or a network) it gets a container made for it, in no lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import msgspec

from appliance.core.evaluations import ExecutionOutcome
from appliance.runtime import sandbox as sandboxes
from appliance.runtime.collect import CollectSpec
from appliance.runtime.engine import DockerEngine
from appliance.runtime.pool import WarmPool
from appliance.runtime.sandbox import ExecutionHandle, SandboxBroken, SandboxSpec

log = logging.getLogger(__name__)

OutputCallback = Callable[[str, str], None]  # (stream name, text)

__all__ = [
    "CollectSpec",
    "ContainerExecutor",
    "SandboxExecutor",
    "ExecutionHandle",
    "ExecutionRequest",
    "OutputCallback",
]


class ExecutionRequest(msgspec.Struct, kw_only=True):
    spec: SandboxSpec
    code: str
    timeout: float
    files: dict[str, str] = {}
    # Set for the program only; never stored (values can be secrets).
    environment: dict[str, str] = {}
    # Report the work dir's files after the run (ExecutionOutcome.files_created).
    list_files: bool = False
    # A long program (an experiment run): all of its output goes to `on_output` and the
    # outcome keeps only the end of each stream; killed once both streams together pass
    # `max_output_bytes` (None: the usual flood limit).
    stream_output: bool = False
    max_output_bytes: int | None = None
    # Files to copy out of the work dir when the program ended by itself.
    collect: CollectSpec | None = None
    # A warm spec that differs from `spec` only in memory and CPU: take a container of
    # its lane and update its limits. None: `spec` itself, from its lane if it has one.
    borrow_from: SandboxSpec | None = None


class SandboxExecutor(Protocol):
    """What the evaluation queue runs requests with: the local engine's containers, or
    (cluster mode, services/cluster) the nodes of a Ray cluster."""

    async def run(
        self, request: ExecutionRequest, handle: ExecutionHandle, on_output: OutputCallback
    ) -> ExecutionOutcome: ...

    async def kill(self, handle: ExecutionHandle) -> None: ...

    async def drain(self) -> None: ...


class ContainerExecutor:
    def __init__(self, engine: DockerEngine, pool: WarmPool) -> None:
        self._engine = engine
        self._pool = pool

    async def run(
        self, request: ExecutionRequest, handle: ExecutionHandle, on_output: OutputCallback
    ) -> ExecutionOutcome:
        loop = asyncio.get_running_loop()

        def emit(stream: str, text: str) -> None:
            loop.call_soon_threadsafe(on_output, stream, text)

        for attempt in (1, 2):
            sandbox = await self._acquire(request)
            try:
                if not handle.attach(sandbox.container_id):
                    return ExecutionOutcome(exit_code=None, stdout="", stderr="", killed=True)
                return await self._engine.call(
                    sandboxes.execute,
                    self._engine,
                    sandbox,
                    request.code,
                    request.files,
                    request.timeout,
                    handle,
                    emit,
                    request.environment,
                    request.list_files,
                    stream_output=request.stream_output,
                    max_output_bytes=request.max_output_bytes,
                    collect=request.collect,
                )
            except SandboxBroken as exc:
                # A pooled container can die while idle (engine restarted): nothing ran
                # yet, so one retry with another container is safe.
                if attempt == 2:
                    raise
                log.warning("a warm sandbox was gone (%s); retrying with a fresh one", exc)
            finally:
                self._pool.discard(sandbox)
        raise AssertionError("unreachable")

    async def _acquire(self, request: ExecutionRequest) -> sandboxes.Sandbox:
        if request.borrow_from is not None:
            sandbox = await self._pool.acquire(request.borrow_from)
            try:
                await self._engine.call(sandboxes.resize, self._engine, sandbox, request.spec)
                return sandbox
            except Exception as exc:  # e.g. a limit below what the runner already uses
                log.warning("could not change a warm sandbox's limits (%s); making one", exc)
                self._pool.discard(sandbox)
        return await self._pool.acquire(request.spec, keep_warm=False)

    async def kill(self, handle: ExecutionHandle) -> None:
        container_id = handle.request_kill()
        if container_id is not None:
            await self._engine.call(self._engine.kill, container_id)

    async def drain(self) -> None:
        """Destroy idle containers and wait for pending removals (at shutdown)."""
        await self._pool.close()
