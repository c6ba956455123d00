"""Run and grade code on the nodes' pools from a user's own Ray job (appliance.cluster).

No round trip through the head's HTTP API: a call reads the nodes' offers (their slots
and what holds them now, whoever asked), takes the node with the largest share of its
slots free (placement.freest, as the head does) and streams the run from its actor.
The node keeps its own slots, so a run beyond them waits there. Limits are the head's:
it publishes its sandbox settings in its mailbox (recording.py), and each finished run
goes back to that mailbox for the head to store as an evaluation.

A node lost mid-run: the run goes to another node once, as on the head. Imports Ray.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import msgspec
import ray
import ray.exceptions
import ray.util

from appliance.core.clock import utc_now
from appliance.core.cluster import NODE_ACTOR_PREFIX, RAY_NAMESPACE, RECORDER_ACTOR, NodeOffer
from appliance.core.evaluations import Evaluation, ExecutionOutcome
from appliance.core.languages import LANGUAGES
from appliance.runtime.executor import ExecutionRequest
from appliance.services.cluster import ray_setup
from appliance.services.cluster.node import NodeRefused, stream_run
from appliance.services.cluster.placement import PlacedNode, freest
from appliance.services.cluster.recording import DirectRun, DirectSettings
from appliance.services.evaluation.queue import error_with_limit_notes, limits_hit, outcome_status

ActorHandle = Any  # ray.actor.ActorHandle: untyped
Result = TypeVar("Result")
NODES_SEEN_SECONDS = 5.0  # how long the list of node actors is trusted before looking again
OFFER_TIMEOUT_SECONDS = 10.0  # a node that does not answer in time is left out of this call


class SandboxResult(msgspec.Struct, frozen=True, kw_only=True):
    """One run, as the head records it (GET /api/eval-status/{eval_id})."""

    eval_id: str
    status: str  # completed, failed or timeout
    passed: bool  # completed with exit code 0: the program and its tests ran through
    exit_code: int | None
    output: str
    error: str
    reason: str | None
    execution_time: float | None
    node: str


class Sandboxes:
    """Code runs on the cluster's nodes, recorded by the head.

    `address`: the Ray cluster to join when this process is not in one yet (inside a
    Ray task or actor it already is). `api_key`: an appliance key; its owner owns the
    runs at the head (without one, or with a wrong one, they are the admins' only).
    `source`: shown as the runs' `batch_id`, `ray:<source>`.
    """

    def __init__(self, address: str = "", *, api_key: str = "", source: str = "ray", node_ip: str = "") -> None:
        self._address = address
        self._node_ip = node_ip
        self._api_key = api_key
        self._batch_id = f"ray:{source}"
        self._mailbox: ActorHandle = None
        self._settings: DirectSettings | None = None
        self._nodes: dict[str, ActorHandle] = {}
        self._nodes_seen = 0.0

    # --- the API ------------------------------------------------------------------------

    def run(
        self,
        code: str,
        language: str = "python",
        *,
        tests: str = "",
        engine: str = "docker",
        timeout: float | None = None,
        files: dict[str, str] | None = None,
    ) -> SandboxResult:
        """Run `code` (then `tests`, appended to it: it passes when both run through)."""
        return _wait(self.run_async(code, language, tests=tests, engine=engine, timeout=timeout, files=files))

    def map(
        self,
        codes: Sequence[str],
        language: str = "python",
        *,
        tests: str | Sequence[str] = "",
        engine: str = "docker",
        timeout: float | None = None,
    ) -> list[SandboxResult]:
        """Every program, at most as many at once as the nodes have slots; results in order."""
        return _wait(self.map_async(codes, language, tests=tests, engine=engine, timeout=timeout))

    async def run_async(
        self,
        code: str,
        language: str = "python",
        *,
        tests: str = "",
        engine: str = "docker",
        timeout: float | None = None,
        files: dict[str, str] | None = None,
    ) -> SandboxResult:
        nodes = await self._look(language, engine)
        return await self._run(nodes, code, language, tests, engine, timeout, files or {})

    async def map_async(
        self,
        codes: Sequence[str],
        language: str = "python",
        *,
        tests: str | Sequence[str] = "",
        engine: str = "docker",
        timeout: float | None = None,
    ) -> list[SandboxResult]:
        all_tests = [tests] * len(codes) if isinstance(tests, str) else list(tests)
        if len(all_tests) != len(codes):
            raise ValueError(f"{len(codes)} programs but {len(all_tests)} tests")
        nodes = await self._look(language, engine)
        at_once = asyncio.Semaphore(max(1, sum(n.offer.slots.get(engine, 0) for n in nodes)))

        async def one(code: str, test: str) -> SandboxResult:
            async with at_once:
                return await self._run(nodes, code, language, test, engine, timeout, {})

        return list(await asyncio.gather(*(one(c, t) for c, t in zip(codes, all_tests, strict=True))))

    # --- one run --------------------------------------------------------------------------

    async def _run(
        self,
        nodes: list[PlacedNode[ActorHandle]],
        code: str,
        language: str,
        tests: str,
        engine: str,
        timeout: float | None,
        files: dict[str, str],
    ) -> SandboxResult:
        settings = self._settings
        assert settings is not None  # _look read it
        program = f"{code}\n\n{tests}" if tests else code
        if len(program.encode()) > settings.max_code_bytes:
            raise ValueError(f"the program is over the head's limit of {settings.max_code_bytes} bytes")
        seconds = settings.default_timeout if timeout is None else timeout
        if not 0 < seconds <= settings.max_timeout:
            raise ValueError(f"timeout must be more than 0 and at most {settings.max_timeout} seconds")
        spec = next(s for s in settings.specs if (s.language, s.engine) == (language, engine))
        request = ExecutionRequest(spec=spec, code=program, timeout=seconds, files=files)
        created = utc_now()
        avoid: frozenset[str] = frozenset()
        lost = ""
        while True:
            node = freest(nodes, engine, avoid)
            if node is None:
                raise RuntimeError(f"no node of the cluster runs {language} on {engine}")
            node.busy[engine] = node.busy.get(engine, 0) + 1
            try:
                started = utc_now()
                outcome = await _outcome(node.handle, request)
                break
            except NodeRefused:
                avoid |= {node.name}  # draining: nothing ran there
            except ray.exceptions.RayActorError:
                if lost:
                    raise
                lost = (
                    f"[appliance] node {node.name} was lost while this ran (it may have started there); "
                    "it ran again elsewhere\n"
                )
                avoid |= {node.name}
                node.lost = True
            finally:
                node.busy[engine] -= 1
            if all(n.name in avoid for n in nodes):
                nodes = await self._look(language, engine)
        status, reason = outcome_status(outcome)
        error = lost + error_with_limit_notes(outcome)
        evaluation = Evaluation(
            eval_id=f"eval_{created.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(6)}",
            owner="",
            language=language,
            engine=engine,
            code=program,
            timeout=seconds,
            status=status,
            created_at=created,
            started_at=started,
            completed_at=utc_now(),
            output=outcome.stdout,
            error=error,
            exit_code=outcome.exit_code,
            reason=reason,
            output_truncated=outcome.stdout_truncated,
            error_truncated=outcome.stderr_truncated,
            execution_time=outcome.execution_time,
            memory_used=outcome.memory_used,
            limits_hit=limits_hit(outcome),
            files=files,
            batch_id=self._batch_id,
        )
        await self._mailbox.put.remote(DirectRun(evaluation=evaluation, api_key=self._api_key, node=node.name))
        return SandboxResult(
            eval_id=evaluation.eval_id,
            status=status.value,
            passed=evaluation.success,
            exit_code=outcome.exit_code,
            output=outcome.stdout,
            error=error,
            reason=reason,
            execution_time=outcome.execution_time,
            node=node.name,
        )

    # --- the cluster ------------------------------------------------------------------------

    async def _look(self, language: str, engine: str) -> list[PlacedNode[ActorHandle]]:
        """The nodes that run `language` on `engine`, with what holds their slots now."""
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; one of {', '.join(sorted(LANGUAGES))}")
        if self._settings is None or time.monotonic() - self._nodes_seen > NODES_SEEN_SECONDS:
            await asyncio.to_thread(self._find)
        settings = self._settings
        assert settings is not None
        if not any((s.language, s.engine) == (language, engine) for s in settings.specs):
            raise ValueError(f"the appliance does not run {language} on {engine}")
        answers = await asyncio.gather(
            *(asyncio.wait_for(h.offer.remote(), OFFER_TIMEOUT_SECONDS) for h in self._nodes.values()),
            return_exceptions=True,
        )
        able = []
        for handle, offer in zip(self._nodes.values(), answers, strict=True):
            if isinstance(offer, NodeOffer):
                node = PlacedNode(offer, handle)
                node.busy = dict(offer.busy)
                if node.takes(language, engine):
                    able.append(node)
        if not able:
            raise RuntimeError(f"no node of the cluster runs {language} on {engine}")
        return able

    def _find(self) -> None:
        """Blocking: the head's mailbox and settings, and the node actors' names."""
        if not ray.is_initialized():
            if not self._address:
                raise RuntimeError("not in a Ray cluster: give Sandboxes the cluster's address (HOST:PORT)")
            ray_setup.join(self._address, self._node_ip)
        if self._mailbox is None:
            try:
                self._mailbox = ray.get_actor(RECORDER_ACTOR, namespace=RAY_NAMESPACE)
            except ValueError:
                raise RuntimeError("no appliance head runs on this cluster (its recorder is not there)") from None
            self._settings = ray.get(self._mailbox.settings.remote(), timeout=30)
            if self._settings is None:
                raise RuntimeError("the appliance head has not published its settings yet")
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == RAY_NAMESPACE and a["name"].startswith(NODE_ACTOR_PREFIX)
        ]
        found = {}
        for name in names:
            try:
                found[name] = ray.get_actor(name, namespace=RAY_NAMESPACE)
            except ValueError:  # gone between the listing and the look-up
                continue
        self._nodes = found
        self._nodes_seen = time.monotonic()


async def _outcome(handle: ActorHandle, request: ExecutionRequest) -> ExecutionOutcome:
    outcome = await stream_run(handle, uuid.uuid4().hex, request)
    if outcome is None:
        raise ray.exceptions.RayActorError()
    return outcome


def _wait(work: Coroutine[Any, Any, Result]) -> Result:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    work.close()
    raise RuntimeError("inside an event loop (an async actor): await run_async / map_async instead")
