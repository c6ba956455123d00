"""Programs that graders run in the appliance's sandboxes (the `code` and `python`
graders), gathered into batches: never in the server's process.

`SandboxRunner.run` takes one program and answers its finished evaluation. Programs
that arrive together (a suite's grading phase hands over all of them at once) are
submitted together through `EvaluationService.submit_batches`: split into as many
batches as the queue has workers (each batch at most the batch size), items queued in
turn, so the batch lane runs them side by side, one sandbox per batch, each program a
fresh process in a wiped work dir. They run as evaluations of the caller: they show in
its GET /api/evaluations, and count against the queue's limits like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

from appliance.core.errors import AppError, ValidationError
from appliance.core.evaluations import Evaluation
from appliance.core.identity import Identity
from appliance.services.evaluation.evaluations import EvalRequest, EvaluationService
from appliance.services.evaluation.waiting import FinishedEvaluations

log = logging.getLogger(__name__)

# How long a program waits for others to share its submission, and the fewest programs
# worth a sandbox of their own when a submission is split.
LINGER_SECONDS = 0.02
MIN_PER_BATCH = 8


class _Job:
    def __init__(self, request: EvalRequest) -> None:
        self.request = request
        self.future: asyncio.Future[Evaluation] = asyncio.get_running_loop().create_future()


class SandboxRunner:
    def __init__(
        self, evaluations: EvaluationService, finished: FinishedEvaluations, lanes: int, batch_size: int
    ) -> None:
        self._evaluations = evaluations
        self._finished = finished
        self._lanes = max(1, lanes)
        self._batch_size = max(1, batch_size)
        self._pending: dict[str, tuple[Identity, list[_Job]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, identity: Identity, request: EvalRequest) -> Evaluation:
        """The program's evaluation once it ended; AppError when it could not be queued."""
        job = _Job(request)
        who = identity.key_id or identity.name
        _, jobs = self._pending.setdefault(who, (identity, []))
        jobs.append(job)
        if len(jobs) >= self._lanes * self._batch_size:
            self._flush(who)
        elif who not in self._timers:
            self._timers[who] = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._flush, who)
        return await job.future

    def _flush(self, who: str) -> None:
        timer = self._timers.pop(who, None)
        if timer is not None:
            timer.cancel()
        identity, jobs = self._pending.pop(who, (None, []))
        if identity is None:
            return
        while jobs:
            taken, jobs = jobs[: self._lanes * self._batch_size], jobs[self._lanes * self._batch_size :]
            task = asyncio.create_task(self._submit(identity, taken), name="llm-grading-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _groups(self, jobs: list[_Job]) -> list[list[_Job]]:
        count = max(1, min(self._lanes, len(jobs) // MIN_PER_BATCH), math.ceil(len(jobs) / self._batch_size))
        size = math.ceil(len(jobs) / count)
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]

    async def _submit(self, identity: Identity, jobs: list[_Job]) -> None:
        groups = self._groups(jobs)
        try:
            batches = await self._evaluations.submit_batches(identity, [[j.request for j in g] for g in groups])
        except ValidationError as exc:
            if len(jobs) == 1:
                _fail(jobs, exc)
                return
            # One bad program (too long, say) must not fail the rest: each on its own.
            await asyncio.gather(*(self._submit(identity, [job]) for job in jobs))
            return
        except AppError as exc:
            _fail(jobs, exc)
            return
        except Exception:
            log.exception("grading programs could not be submitted")
            _fail(jobs, AppError("the grading programs could not be queued; the appliance's log says why"))
            return
        pairs = [
            (job, evaluation)
            for group, batch in zip(groups, batches, strict=True)
            for job, evaluation in zip(group, batch, strict=True)
        ]
        self._finished.expect([evaluation.eval_id for _, evaluation in pairs])
        await asyncio.gather(*(self._resolve(job, evaluation.eval_id) for job, evaluation in pairs))

    async def _resolve(self, job: _Job, eval_id: str) -> None:
        try:
            evaluation = await self._finished.wait(eval_id)
        except Exception as exc:  # the job's caller learns why
            if not job.future.done():
                job.future.set_exception(exc)
            return
        if not job.future.done():
            job.future.set_result(evaluation)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _fail(jobs: list[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
