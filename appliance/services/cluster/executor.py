"""The head's executor in cluster mode: the queue's requests run on node actors.

It is the queue's `SandboxExecutor`, so the queue, its workers, the store and the bus
work exactly as on one machine; only where a container runs changes. A request takes a
slot of its engine on the node with the most free ones (placement.py), streams its
output back as it comes, and gives the slot back. A request with files to collect or
with network access stays on this machine (its files and its network are here). While
a request waits for a slot, the queue keeps its evaluation `queued` (`waits_for_slots`).

A node that dies or stops answering mid-run is lost: the run goes back in line once and
runs on another node (a note on stderr says it may have started on the first); lost a
second time, it fails. The queue stores whatever comes back once, so nothing is
reported twice. Discovery polls Ray's named actors: a node that comes back under its
name rejoins; a draining one gets nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import ray
import ray.exceptions
import ray.util

from appliance.core.cluster import NODE_ACTOR_PREFIX, ClusterView, NodeOffer
from appliance.core.evaluations import ExecutionOutcome
from appliance.runtime.executor import ExecutionHandle, ExecutionRequest, OutputCallback, SandboxExecutor
from appliance.runtime.sandbox import SandboxSpec
from appliance.services.cluster import ray_setup
from appliance.services.cluster.node import NodeRefused, stream_run
from appliance.services.cluster.placement import NoNodeFor, PlacedNode, Placement

log = logging.getLogger(__name__)

ActorHandle = Any  # ray.actor.ActorHandle: untyped
Node = PlacedNode[ActorHandle]


class NodeLost(Exception):
    """The node of a run went away before the run's outcome came back."""


class ClusterSettings:
    def __init__(
        self,
        address: str,
        node_ip: str = "",
        unplaceable_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        node_timeout_seconds: float = 10.0,
    ) -> None:
        self.address = address
        self.node_ip = node_ip
        self.unplaceable_seconds = unplaceable_seconds
        self.poll_seconds = poll_seconds
        self.node_timeout_seconds = node_timeout_seconds


class ClusterExecutor:
    # A run may wait for a node's slot: the queue keeps it `queued` until `handle.placed()`.
    waits_for_slots = True

    def __init__(
        self, settings: ClusterSettings, local: SandboxExecutor, warm_specs: Callable[[], list[SandboxSpec]]
    ) -> None:
        self._settings = settings
        self._local = local
        self._warm_specs = warm_specs
        self.placement: Placement[ActorHandle] = Placement(settings.unplaceable_seconds)
        self._actors: dict[str, tuple[str, ActorHandle]] = {}  # name -> (actor id, handle)
        self._remote: dict[str, Node] = {}  # exec id -> node it runs on
        self._gone: dict[str, asyncio.Event] = {}  # node name -> set when lost
        self._waiting: dict[ExecutionHandle, asyncio.Future[Node]] = {}  # runs waiting for a slot
        self._discovery: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(ray_setup.join, self._settings.address, self._settings.node_ip)
        await self.discover()
        self._discovery = asyncio.create_task(self._discover_forever(), name="cluster-discovery")

    async def drain(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery
            self._discovery = None
        await self._local.drain()
        await asyncio.to_thread(ray.shutdown)

    # --- discovery ----------------------------------------------------------------------

    async def _discover_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_seconds)
            try:
                await self.discover()
            except Exception:  # one failed look must not end the looking
                log.exception("looking for cluster nodes failed")

    async def discover(self) -> None:
        names = [n for n in await asyncio.to_thread(ray.util.list_named_actors) if n.startswith(NODE_ACTOR_PREFIX)]
        for name in names:
            handle = await asyncio.to_thread(_actor_or_none, name)
            if handle is None:
                continue
            actor_id = handle._actor_id.hex()
            known = self._actors.get(name)
            if known is None or known[0] != actor_id:
                self._actors[name] = (actor_id, handle)
            await self._look_at(name)
        for name in set(self._actors) - set(names):
            await self._lose(self._actors[name][1], name, "its actor is gone")

    async def _look_at(self, name: str) -> None:
        actor_id, handle = self._actors[name]
        try:
            offer: NodeOffer = await asyncio.wait_for(handle.offer.remote(), self._settings.node_timeout_seconds)
        except (ray.exceptions.RayActorError, TimeoutError) as exc:
            await self._lose(handle, name, f"it does not answer ({type(exc).__name__})")
            return
        node_name = offer.name
        fresh = all(n.handle is not handle for n in self.placement.live())
        await self.placement.join(offer, handle)
        if fresh:
            self._gone[node_name] = asyncio.Event()
            log.warning("cluster node %s joined: slots %s, languages %s", node_name, offer.slots, offer.languages)
            specs = [s for s in self._warm_specs() if offer.serves(s.language, s.engine)]
            handle.warm.remote(specs)

    async def _lose(self, handle: ActorHandle, actor_name: str, why: str) -> None:
        name = actor_name.removeprefix(NODE_ACTOR_PREFIX)
        self._actors.pop(actor_name, None)
        if await self.placement.lose(name, handle):
            log.warning("cluster node %s was lost: %s", name, why)
            gone = self._gone.get(name)
            if gone is not None:
                gone.set()

    # --- SandboxExecutor ----------------------------------------------------------------

    async def run(
        self, request: ExecutionRequest, handle: ExecutionHandle, on_output: OutputCallback
    ) -> ExecutionOutcome:
        if request.collect is not None or request.spec.limits.network:
            if not await handle.placed():
                return _killed()
            return await self._local.run(request, handle, on_output)
        language, engine = request.spec.language, request.spec.engine
        avoid: frozenset[str] = frozenset()
        lost: str | None = None
        while True:
            try:
                node = await self._acquire(language, engine, avoid, handle)
            except NoNodeFor as exc:
                raise RuntimeError(str(exc)) from exc
            if node is None:
                return _killed("[appliance] killed while it waited for a node's slot\n")
            exec_id = uuid.uuid4().hex
            if not await handle.placed() or not handle.attach(f"{node.name}/{exec_id}"):
                await self.placement.release(node, engine, completed=False)
                return _killed()
            self._remote[exec_id] = node
            completed = False
            try:
                outcome = await self._run_on(node, exec_id, request, on_output)
                completed = True
                if lost is not None:
                    outcome.stderr = f"[appliance] {lost}\n" + outcome.stderr
                return outcome
            except NodeRefused:
                avoid = avoid | {node.name}  # draining: nothing ran, not a second chance used
            except (NodeLost, ray.exceptions.RayActorError) as exc:
                await self._lose(node.handle, NODE_ACTOR_PREFIX + node.name, f"a run failed with {type(exc).__name__}")
                if lost is not None:
                    raise NodeLost(f"{lost}; node {node.name} was lost too") from exc
                lost = f"node {node.name} was lost while this ran (it may have started there); it ran again elsewhere"
                on_output("stderr", f"[appliance] node {node.name} was lost; this runs again on another node\n")
                self.placement.requeued += 1
                avoid = avoid | {node.name}
            finally:
                self._remote.pop(exec_id, None)
                await self.placement.release(node, engine, completed)

    async def _acquire(self, language: str, engine: str, avoid: frozenset[str], handle: ExecutionHandle) -> Node | None:
        """A slot, or None when the run was killed while it waited for one."""
        waiting = asyncio.ensure_future(self.placement.acquire(language, engine, avoid))
        self._waiting[handle] = waiting
        try:
            return await waiting
        except asyncio.CancelledError:
            if handle.killed and waiting.cancelled():
                return None
            raise
        finally:
            self._waiting.pop(handle, None)

    async def _run_on(
        self, node: Node, exec_id: str, request: ExecutionRequest, on_output: OutputCallback
    ) -> ExecutionOutcome:
        gone = self._gone.get(node.name) or asyncio.Event()
        stream = asyncio.ensure_future(self._stream(node, exec_id, request, on_output))
        waiting_gone = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait({stream, waiting_gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting_gone.cancel()
        if not stream.done():
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream
            raise NodeLost(f"node {node.name} was lost")
        return stream.result()

    async def _stream(
        self, node: Node, exec_id: str, request: ExecutionRequest, on_output: OutputCallback
    ) -> ExecutionOutcome:
        outcome = await stream_run(node.handle, exec_id, request, on_output)
        if outcome is None:
            raise NodeLost(f"node {node.name} ended the run without an outcome")
        return outcome

    async def kill(self, handle: ExecutionHandle) -> None:
        target = handle.request_kill()
        if target is None:
            waiting = self._waiting.get(handle)
            if waiting is not None:
                waiting.cancel()
            return
        name, _, exec_id = target.partition("/")
        if not exec_id:
            await self._local.kill(handle)
            return
        node = self._remote.get(exec_id)
        if node is not None:
            with contextlib.suppress(ray.exceptions.RayError):
                await node.handle.kill.remote(exec_id)

    # --- status --------------------------------------------------------------------------

    def view(self) -> ClusterView:
        return ClusterView(
            address=self._settings.address,
            nodes=self.placement.loads(),
            nodes_lost=len(self.placement.lost_names),
            requeued=self.placement.requeued,
        )


def _killed(why: str = "") -> ExecutionOutcome:
    return ExecutionOutcome(exit_code=None, stdout="", stderr=why, killed=True)


def _actor_or_none(name: str) -> ActorHandle | None:
    try:
        return ray.get_actor(name)
    except ValueError:  # gone between the listing and the look-up
        return None
