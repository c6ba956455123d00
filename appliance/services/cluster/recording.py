"""Runs that users' Ray jobs make on the nodes directly (appliance.cluster), recorded by the head.

A Ray driver cannot host an actor, so the head keeps a mailbox: a named, detached actor
(`RunMailbox`, pinned to the head's Ray node) that holds the head's sandbox settings
for the jobs to read, and the finished runs they drop off. The head takes them every
`cluster_poll_seconds` and stores each as an evaluation of the key the job presented
(`owner` "ray" without a valid key), with `batch_id` `ray:<source>` as the marker of
where it came from. A run leaves the mailbox only once it is stored; while the head is
down they wait there. A mailbox lost with its node is made again on the next look (what
it held then is lost with it).

Imported only in cluster mode: it imports Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from appliance.core.cluster import RAY_NAMESPACE, RECORDER_ACTOR
from appliance.core.evaluations import EvalStatus, Evaluation
from appliance.runtime.sandbox import SandboxSpec
from appliance.store.evaluations import EvaluationStore

log = logging.getLogger(__name__)

# The owner of a direct run whose job presented no valid API key: admins see it.
NO_KEY_OWNER = "ray"
# At most this many runs are taken per look (the rest at the next one).
TAKE_AT_ONCE = 1000


class DirectSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a direct run takes from the head: the sandbox per (language, engine) with
    the head's limits, and its limits on what a request may ask."""

    specs: list[SandboxSpec]
    default_timeout: float
    max_timeout: float
    max_code_bytes: int


class DirectRun(msgspec.Struct, frozen=True, kw_only=True):
    """A finished direct run: the evaluation as stored (its owner still to be found
    from `api_key`) and the node that ran it."""

    evaluation: Evaluation
    api_key: str = ""
    node: str = ""


class RunMailbox:
    """Lives in a Ray worker on the head's node; plain lists, one caller at a time."""

    def __init__(self) -> None:
        self._settings: DirectSettings | None = None
        self._runs: list[DirectRun] = []

    def publish(self, settings: DirectSettings) -> None:
        self._settings = settings

    def settings(self) -> DirectSettings | None:
        return self._settings

    def put(self, run: DirectRun) -> None:
        self._runs.append(run)

    def peek(self, at_most: int) -> list[DirectRun]:
        return self._runs[:at_most]

    def drop(self, eval_ids: list[str]) -> None:
        """Stored by the head: only now do they leave the mailbox."""
        gone = set(eval_ids)
        self._runs = [r for r in self._runs if r.evaluation.eval_id not in gone]

    def waiting(self) -> int:
        return len(self._runs)


RunMailboxActor: Any = ray.remote(RunMailbox)


def mailbox() -> Any:
    """The head's mailbox, made when it is not there (blocking: off the event loop)."""
    return RunMailboxActor.options(
        name=RECORDER_ACTOR,
        namespace=RAY_NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
        max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True),
    ).remote()


class RunRecorder:
    """The head's side: publishes its settings and stores what the jobs dropped off."""

    def __init__(
        self,
        store: EvaluationStore,
        settings: DirectSettings,
        owner_of: Callable[[str], Awaitable[str | None]],
        poll_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._settings = settings
        self._owner_of = owner_of
        self._poll_seconds = poll_seconds
        self._mailbox: Any = None
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0

    async def start(self) -> None:
        await self._open()
        self._task = asyncio.create_task(self._record_forever(), name="cluster-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # the last runs the jobs left, if Ray still answers
            await self.record_waiting()

    async def _open(self) -> None:
        self._mailbox = await asyncio.to_thread(mailbox)
        await self._mailbox.publish.remote(self._settings)

    async def _record_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.record_waiting()
            except ray.exceptions.RayActorError:
                log.warning("the mailbox of direct runs was lost; making it again")
                with contextlib.suppress(Exception):
                    await self._open()
            except Exception:  # one failed look must not end the recording
                log.exception("recording direct runs failed")

    async def record_waiting(self) -> int:
        """Store every run waiting in the mailbox; how many there were."""
        stored = 0
        while True:
            runs: list[DirectRun] = await self._mailbox.peek.remote(TAKE_AT_ONCE)
            if not runs:
                return stored
            for run in runs:
                await self._record(run)
            await self._mailbox.drop.remote([r.evaluation.eval_id for r in runs])
            stored += len(runs)
            self.recorded += len(runs)

    async def _record(self, run: DirectRun) -> None:
        owner = (await self._owner_of(run.api_key) if run.api_key else None) or NO_KEY_OWNER
        final = msgspec.structs.replace(run.evaluation, owner=owner)
        if await self._store.get(final.eval_id) is not None:
            return  # the head stopped between storing and dropping it: stored once
        await self._store.insert_many([msgspec.structs.replace(final, status=EvalStatus.QUEUED)])
        await self._store.finish(final)
