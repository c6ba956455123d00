"""The node actor: one machine's Docker engine, images and warm pool, offered to the head.

`appliance node` creates it as a detached, named Ray actor pinned to its machine (a
NodeAffinitySchedulingStrategy that is not soft: it dies with its node rather than
moving to another, where it would hold the wrong Docker socket). It runs the same
ContainerExecutor and WarmPool as a single machine does, so limits, reasons and
accounting are those of a local run; only the transport differs. Output goes back to
the head as it comes, through a Ray streaming generator: a stream of `OutputPiece`s,
then the `ExecutionOutcome`.

Imported only in cluster mode: it imports Ray.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import msgspec
import psutil
import ray
import ray.exceptions

from appliance import __version__
from appliance.core.cluster import NodeOffer, OutputPiece
from appliance.core.evaluations import ExecutionOutcome
from appliance.core.languages import LANGUAGES
from appliance.runtime.engine import DockerEngine
from appliance.runtime.executor import ContainerExecutor, ExecutionHandle, ExecutionRequest
from appliance.runtime.images import image_ref
from appliance.runtime.pool import PoolSettings, WarmPool
from appliance.runtime.sandbox import SandboxSpec

log = logging.getLogger(__name__)

Method = TypeVar("Method", bound=Callable[..., Any])


def _streaming(method: Method) -> Method:
    """Ray's streaming generator: each `yield` reaches the caller as it happens."""
    return cast(Method, ray.method(num_returns="streaming")(method))


class NodeRefused(Exception):
    """The node is draining: nothing ran, the head places the request elsewhere."""


async def stream_run(
    handle: Any, exec_id: str, request: ExecutionRequest, on_output: Callable[[str, str], None] | None = None
) -> ExecutionOutcome | None:
    """The caller's side of `SandboxNode.run`: each output piece to `on_output` as it
    comes, then the run's outcome; None when the stream ended without one (the node went
    away). A draining node's refusal comes out as NodeRefused, not wrapped by Ray."""
    outcome: ExecutionOutcome | None = None
    try:
        async for ref in handle.run.remote(exec_id, request):
            item = await ref
            if not isinstance(item, OutputPiece):
                outcome = item
            elif on_output is not None:
                on_output(item.stream, item.text)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, NodeRefused):
            raise exc.cause from None
        raise
    return outcome


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    docker_host: str = ""
    # engine -> slots; an engine the Docker engine cannot run (no runsc) is dropped
    slots: dict[str, int] = msgspec.field(default_factory=lambda: {"docker": 2})
    gvisor_runtime: str = "runsc"
    pool: PoolSettings = PoolSettings(min_idle=1, max_idle=4, max_containers=16)


class SandboxNode:
    """Lives in a Ray worker process of its machine; async, so runs overlap."""

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._engine = DockerEngine(base_url=config.docker_host, threads=max(8, 2 * sum(config.slots.values()) + 4))
        # Its own label on containers: a node that comes back removes what it left.
        self._engine.instance_id = f"node-{config.name}"
        self._pool = WarmPool(self._engine, config.pool)
        self._executor = ContainerExecutor(self._engine, self._pool)
        self._handles: dict[str, ExecutionHandle] = {}
        self._offer: NodeOffer | None = None
        self._draining = False
        self._warmed: set[SandboxSpec] = set()
        # The node keeps its own slots: the head places within them, but users' Ray jobs
        # (direct.py) call it too, so a run beyond them waits here for one.
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._busy: dict[str, int] = {}

    async def start(self) -> NodeOffer:
        if self._offer is not None:
            return self._offer
        engine = self._engine
        if not await engine.call(engine.ping):
            raise RuntimeError(
                f"the Docker engine at {self._config.docker_host or 'the default socket'} does not answer"
            )
        removed = await engine.call(engine.remove_instance_containers)
        if removed:
            log.info("removed %d container(s) this node left behind", removed)
        slots = dict(self._config.slots)
        if slots.get("gvisor") and not await engine.call(engine.has_runtime, self._config.gvisor_runtime):
            del slots["gvisor"]  # never offered, so never placed here
        languages = [
            name
            for name, language in LANGUAGES.items()
            if await engine.call(engine.image_present, image_ref(language.image))
        ]
        self._pool.start()
        self._slots = {kind: asyncio.Semaphore(count) for kind, count in slots.items()}
        self._offer = NodeOffer(
            name=self._config.name,
            ray_node_id=ray.get_runtime_context().get_node_id(),
            slots=slots,
            languages=languages,
            memory_mb=psutil.virtual_memory().total // (1024 * 1024),
            appliance_version=__version__,
            ray_version=ray.__version__,
            python_version=platform.python_version(),
        )
        return self._offer

    async def offer(self) -> NodeOffer:
        offer = self._offer or await self.start()
        return msgspec.structs.replace(offer, draining=self._draining, busy=dict(self._busy))

    async def ping(self) -> None:
        """An empty call: the baseline the benchmark measures dispatch against."""

    async def warm(self, specs: list[SandboxSpec]) -> None:
        """Keep idle containers of these specs (the head's limits) ready."""
        for spec in specs:
            if spec not in self._warmed:
                self._warmed.add(spec)
                self._pool.warm(spec)

    async def drain(self) -> NodeOffer:
        """Take no new runs; the ones running finish. The head stops placing here."""
        self._draining = True
        return await self.offer()

    def running(self) -> int:
        return len(self._handles)

    @_streaming
    async def run(self, exec_id: str, request: ExecutionRequest) -> AsyncIterator[Any]:
        if self._draining:
            raise NodeRefused(f"node {self._config.name} is draining")
        if request.borrow_from is None and request.spec.purpose == "" and request.spec not in self._warmed:
            await self.warm([request.spec])
        handle = ExecutionHandle()
        self._handles[exec_id] = handle
        pieces: asyncio.Queue[OutputPiece | None] = asyncio.Queue()

        def on_output(stream: str, text: str) -> None:
            pieces.put_nowait(OutputPiece(stream, text))

        engine = request.spec.engine
        slot = self._slots.setdefault(engine, asyncio.Semaphore(1))

        async def execute() -> ExecutionOutcome:
            try:
                async with slot:
                    self._busy[engine] = self._busy.get(engine, 0) + 1
                    try:
                        return await self._executor.run(request, handle, on_output)
                    finally:
                        self._busy[engine] -= 1
            finally:
                pieces.put_nowait(None)

        task = asyncio.create_task(execute())
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            yield await task
        finally:
            self._handles.pop(exec_id, None)
            if not task.done():  # the head went away mid-run: stop the program
                await self._executor.kill(handle)
                await asyncio.gather(task, return_exceptions=True)

    async def kill(self, exec_id: str) -> bool:
        handle = self._handles.get(exec_id)
        if handle is None:
            return False
        await self._executor.kill(handle)
        return True

    async def close(self) -> None:
        await self._executor.drain()
        self._engine.close()


SandboxNodeActor: Any = ray.remote(SandboxNode)
