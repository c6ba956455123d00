"""The evaluation queue: workers that take stored submissions and run them.

Submissions are in SQLite before they are queued here, so this in-memory queue is only
an index of what waits; after a restart it is rebuilt from the table, and whatever was
running when the process died is marked failed.

Synchronous executions (POST /api/execute, /ws/execute) are rows of the same table run by
the same workers; their environment variables travel beside them in memory only
(`enqueue(..., environment=)`), so a queued execution cannot outlive a restart.

Experiment runs are jobs (`enqueue_job`) the same workers run in the same sandboxes, on
two terms that keep interactive work ahead of them: a free worker always takes a waiting
evaluation or execution before any job, and jobs hold at most `job_workers` workers at
once (by default one fewer than there are), so an evaluation submitted during a large
experiment starts before any run queued after it. A job keeps its own state (the runs
table): the queue only gives it a worker and a way to run a sandbox request, which
`kill_job` stops; nothing of a job goes into the evaluations table or onto the bus.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from appliance.core.clock import iso_z, utc_now
from appliance.core.evaluations import EvalStatus, Evaluation, ExecutionOutcome
from appliance.core.events import (
    Completed,
    CompletedData,
    ErrorData,
    EvaluationError,
    EvaluationEvent,
    EventBus,
    OutputChunk,
    OutputData,
    RunningData,
    StatusUpdate,
)
from appliance.runtime.batch_lanes import BatchLanes
from appliance.runtime.executor import ExecutionHandle, ExecutionRequest, OutputCallback, SandboxExecutor
from appliance.store.evaluations import EvaluationStore

log = logging.getLogger(__name__)

PROGRESS_FLUSH_SECONDS = 1.0


LIMIT_MESSAGES = {
    "memory_limit": "killed: the program exceeded its memory limit",
    "output_limit": "killed: the program kept writing far past the output limit",
    "pids_limit": "the program hit the process limit: some forks were refused",
    "work_dir_full": "the work dir (or /tmp, /dev/shm) filled up",
    "file_size_limit": "a file reached the file-size limit",
    "timeout": "killed: the wall-clock timeout passed",
}


# What a job calls to run one sandbox request on the worker it was given.
ExecuteFn = Callable[[ExecutionRequest, OutputCallback], Awaitable[ExecutionOutcome]]


class QueueJob(Protocol):
    """Background work (an experiment run) that waits behind interactive evaluations."""

    @property
    def job_id(self) -> str: ...

    async def run(self, execute: ExecuteFn) -> None:
        """Called on a worker; `execute` runs a sandbox request that `kill_job` can stop."""

    def dropped(self) -> None:
        """Taken out of the line by `kill_job` before a worker took it."""


class RunningEvaluation:
    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self.handle = ExecutionHandle()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.dirty = False
        # False while it waits for a node's slot (cluster mode): still `queued`.
        self.started = True

    def stdout_text(self) -> str:
        return "".join(self.stdout)

    def stderr_text(self) -> str:
        return "".join(self.stderr)


# Limits that ran out inside the sandbox, most telling first: when the wall clock also
# ran out, one of these explains why the program got nowhere.
RESOURCE_REASONS = ("output_limit", "memory_limit", "pids_limit", "work_dir_full", "file_size_limit")


def limits_hit(outcome: ExecutionOutcome) -> list[str]:
    """Every sandbox limit the execution ran into."""
    flags = (
        ("timeout", outcome.timed_out),
        ("output_limit", outcome.flooded),
        ("memory_limit", outcome.oom_killed),
        ("pids_limit", outcome.pids_limited),
        ("work_dir_full", outcome.disk_full),
        ("file_size_limit", outcome.file_too_large),
        ("output_truncated", outcome.stdout_truncated or outcome.stderr_truncated),
    )
    return [name for name, hit in flags if hit]


def error_with_limit_notes(outcome: ExecutionOutcome) -> str:
    """The run's stderr, then a line saying what each limit it ran into did."""
    error = outcome.stderr
    for hit in limits_hit(outcome):
        if hit in LIMIT_MESSAGES:
            error += "\n[appliance] " + LIMIT_MESSAGES[hit]
    return error


def outcome_status(outcome: ExecutionOutcome) -> tuple[EvalStatus, str | None]:
    """The documented status, and a reason when the program did not just exit."""
    if outcome.killed:
        return EvalStatus.FAILED, "killed"
    hits = limits_hit(outcome)
    resource = next((reason for reason in RESOURCE_REASONS if reason in hits), None)
    if outcome.timed_out:
        return EvalStatus.TIMEOUT, resource or "timeout"
    if resource:  # a sandbox limit the program ran into: it failed, whatever its exit code
        return EvalStatus.FAILED, resource
    if outcome.exit_code is None:
        return EvalStatus.FAILED, "engine_error"
    if "output_truncated" in hits:
        return EvalStatus.COMPLETED, "output_truncated"
    return EvalStatus.COMPLETED, None


class EvaluationQueue:
    def __init__(
        self,
        store: EvaluationStore,
        executor: SandboxExecutor,
        bus: EventBus,
        build_request: Callable[[Evaluation, dict[str, str]], ExecutionRequest],
        workers: int,
        lanes: BatchLanes | None = None,
        lane_engines: tuple[str, ...] = ("docker",),
        job_workers: int | None = None,
    ) -> None:
        self._store = store
        self._executor = executor
        self._bus = bus
        self._build_request = build_request
        self._worker_count = workers
        # Set whenever a worker may find something to take (an item queued, a job's
        # worker freed); workers clear it only when they found nothing.
        self._wake = asyncio.Event()
        self._queued: dict[str, None] = {}  # insertion-ordered: the waiting line
        self._jobs: dict[str, QueueJob] = {}  # jobs waiting, in order
        self._job_handles: dict[str, ExecutionHandle] = {}  # jobs on a worker
        self._job_cap = max(1, job_workers if job_workers else workers - 1)
        self._running: dict[str, RunningEvaluation] = {}
        # Environment variables of queued executions: memory only, never stored.
        self._environments: dict[str, dict[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # The batch lane: which waiting or running evaluations use it, and how many of
        # each batch are left, so a batch's sandbox goes when its last item is done.
        self._lanes = lanes
        self._finish_listeners: list[Callable[[Evaluation], None]] = []
        self._lane_engines = lane_engines
        self._lane_of: dict[str, tuple[str, str, str]] = {}
        self._lane_left: collections.Counter[tuple[str, str]] = collections.Counter()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        failed = await self._store.fail_interrupted("appliance_restart", utc_now())
        if failed:
            log.warning(
                "%d evaluation(s) were running (or executions queued) when the appliance stopped: marked failed", failed
            )
        for evaluation in await self._store.queued_in_order():
            self.enqueue(evaluation)
        self._tasks = [asyncio.create_task(self._work(), name=f"eval-worker-{n}") for n in range(self._worker_count)]
        self._tasks.append(asyncio.create_task(self._flush_progress(), name="eval-progress"))

    async def stop(self) -> None:
        # One still waiting for a node's slot is only cancelled: it stays queued for the next start.
        for eval_id in [e for e, r in self._running.items() if r.started]:
            await self._kill_running(eval_id)
        for handle in list(self._job_handles.values()):
            await self._executor.kill(handle)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._lanes is not None:
            await self._lanes.close()

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    # --- queue ------------------------------------------------------------------------

    def enqueue(self, evaluation: Evaluation, environment: dict[str, str] | None = None) -> int:
        eval_id = evaluation.eval_id
        if environment:
            self._environments[eval_id] = dict(environment)
        batch_id = self._lane_batch(evaluation)
        if batch_id is not None:
            self._lane_of[eval_id] = (evaluation.owner, batch_id, evaluation.engine)
            self._lane_left[(evaluation.owner, batch_id)] += 1
        self._queued[eval_id] = None
        self._wake.set()
        return len(self._queued)

    def enqueue_job(self, job: QueueJob) -> None:
        self._jobs[job.job_id] = job
        self._wake.set()

    async def kill_job(self, job_id: str) -> bool:
        """Take a waiting job out of the line (its `dropped` is called) or kill the sandbox
        of a running one; False when the queue does not hold it."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            job.dropped()
            return True
        handle = self._job_handles.get(job_id)
        if handle is None:
            return False
        await self._executor.kill(handle)
        return True

    def _lane_batch(self, evaluation: Evaluation) -> str | None:
        """The batch whose lane runs `evaluation`, or None when it does not use the lane:
        Python items of a batch, without files, on an engine the lane serves."""
        uses_lane = (
            self._lanes is not None
            and evaluation.language == "python"
            and not evaluation.files
            and evaluation.engine in self._lane_engines
        )
        return evaluation.batch_id if uses_lane else None

    async def _lane_item_done(self, eval_id: str) -> None:
        key = self._lane_of.pop(eval_id, None)
        if key is None or self._lanes is None:
            return
        batch = key[:2]
        self._lane_left[batch] -= 1
        if self._lane_left[batch] <= 0:
            del self._lane_left[batch]
            await self._lanes.release(*batch)

    @property
    def queued_count(self) -> int:
        """Waiting for a worker, or (cluster mode) on one but waiting for a node's slot."""
        return len(self._queued) + sum(1 for r in self._running.values() if not r.started)

    @property
    def running_count(self) -> int:
        """Evaluations, executions and jobs running now."""
        return sum(1 for r in self._running.values() if r.started) + len(self._job_handles)

    @property
    def queued_jobs(self) -> int:
        return len(self._jobs)

    @property
    def running_jobs(self) -> int:
        return len(self._job_handles)

    @property
    def job_workers(self) -> int:
        """How many workers jobs may hold at once."""
        return self._job_cap

    def running(self, eval_id: str) -> RunningEvaluation | None:
        return self._running.get(eval_id)

    def is_pending(self, eval_id: str) -> bool:
        """Waiting for a worker or running (a moment between the two answers False)."""
        return eval_id in self._queued or eval_id in self._running

    async def kill(self, eval_id: str) -> bool:
        if eval_id in self._queued:
            del self._queued[eval_id]
            self._environments.pop(eval_id, None)
            evaluation = await self._store.get(eval_id)
            if evaluation is None:
                return False
            now = utc_now()
            final = msgspec.structs.replace(
                evaluation,
                status=EvalStatus.FAILED,
                reason="killed",
                completed_at=now,
                error="[appliance] killed before it started",
            )
            await self._lane_item_done(eval_id)
            if await self._store.finish(final):
                self._publish_final(final)
                return True
            return False
        return await self._kill_running(eval_id)

    async def _kill_running(self, eval_id: str) -> bool:
        running = self._running.get(eval_id)
        if running is None:
            return False
        if eval_id in self._lane_of and self._lanes is not None:
            await self._lanes.kill(running.handle)
        else:
            await self._executor.kill(running.handle)
        return True

    # --- workers ----------------------------------------------------------------------

    async def _take(self) -> str | QueueJob:
        """The next evaluation id, or a job when no evaluation waits and jobs hold fewer
        workers than their cap."""
        while True:
            if self._queued:
                eval_id = next(iter(self._queued))
                del self._queued[eval_id]
                return eval_id
            if self._jobs and len(self._job_handles) < self._job_cap:
                job_id = next(iter(self._jobs))
                job = self._jobs.pop(job_id)
                self._job_handles[job_id] = ExecutionHandle()  # counts against the cap from now
                return job
            self._wake.clear()
            await self._wake.wait()

    async def _work(self) -> None:
        while True:
            taken = await self._take()
            if not isinstance(taken, str):
                await self._run_job(taken)
                continue
            eval_id = taken
            try:
                await self._run_one(eval_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one run must not stop the worker
                log.exception("evaluation %s failed unexpectedly", eval_id)
            finally:
                self._environments.pop(eval_id, None)
                await self._lane_item_done(eval_id)

    async def _run_job(self, job: QueueJob) -> None:
        handle = self._job_handles[job.job_id]

        async def execute(request: ExecutionRequest, on_output: OutputCallback) -> ExecutionOutcome:
            return await self._executor.run(request, handle, on_output)

        try:
            await job.run(execute)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one job must not stop the worker
            log.exception("job %s failed unexpectedly", job.job_id)
        finally:
            self._job_handles.pop(job.job_id, None)
            self._wake.set()  # a job's worker is free

    async def _start(self, eval_id: str) -> Evaluation | None:
        """Queued -> running, stored and told; None when it was no longer queued."""
        started = utc_now()
        evaluation = await self._store.claim(eval_id, started)
        if evaluation is None:
            log.warning("evaluation %s was dequeued but is no longer queued", eval_id)
            return None
        self._publish(
            evaluation,
            StatusUpdate(
                eval_id=eval_id, data=RunningData(status=EvalStatus.RUNNING.value, output="", started_at=iso_z(started))
            ),
        )
        return evaluation

    async def _run_one(self, eval_id: str) -> None:
        # Cluster mode: a run may wait for a node's slot once on a worker; it stays
        # `queued` until it has one (the executor calls its handle's `placed`).
        placed_later = getattr(self._executor, "waits_for_slots", False) and eval_id not in self._lane_of
        evaluation = await (self._store.get(eval_id) if placed_later else self._start(eval_id))
        if evaluation is None or evaluation.status is not (EvalStatus.QUEUED if placed_later else EvalStatus.RUNNING):
            if placed_later:
                log.warning("evaluation %s was dequeued but is no longer queued", eval_id)
            return
        running = RunningEvaluation(evaluation)
        self._running[eval_id] = running
        if placed_later:
            running.started = False

            async def placed() -> bool:
                started = await self._start(eval_id)
                if started is None:
                    return False
                running.evaluation, running.started = started, True
                return True

            running.handle.on_placed = placed

        def on_output(stream: str, text: str) -> None:
            (running.stdout if stream == "stdout" else running.stderr).append(text)
            running.dirty = True
            self._publish(evaluation, OutputChunk(eval_id=eval_id, data=OutputData(stream=stream, output=text)))

        try:
            lane = self._lane_of.get(eval_id)
            if lane is not None and self._lanes is not None:
                outcome = await self._lanes.run(lane, evaluation.code, evaluation.timeout, running.handle)
                for stream, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
                    if text:  # the lane answers once, at the end
                        on_output(stream, text)
            else:
                request = self._build_request(evaluation, self._environments.pop(eval_id, {}))
                outcome = await self._executor.run(request, running.handle, on_output)
            status, reason = outcome_status(outcome)
            error = error_with_limit_notes(outcome)
            final = msgspec.structs.replace(
                running.evaluation,
                status=status,
                reason=reason,
                completed_at=utc_now(),
                output=outcome.stdout,
                error=error,
                exit_code=outcome.exit_code,
                output_truncated=outcome.stdout_truncated,
                error_truncated=outcome.stderr_truncated,
                execution_time=outcome.execution_time,
                memory_used=outcome.memory_used,
                limits_hit=limits_hit(outcome),
                files_created=outcome.files_created or [],
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # engine down, image missing: the platform failed, not the code
            log.warning("evaluation %s could not run: %s", eval_id, exc)
            message = f"[appliance] the sandbox could not run this evaluation: {exc}"
            self._publish(evaluation, EvaluationError(eval_id=eval_id, data=ErrorData(error=message)))
            final = msgspec.structs.replace(
                running.evaluation,
                status=EvalStatus.FAILED,
                reason="engine_error",
                completed_at=utc_now(),
                output=running.stdout_text(),
                error=message,
            )
        finally:
            self._running.pop(eval_id, None)
        if await self._store.finish(final):
            self._publish_final(final)

    async def _flush_progress(self) -> None:
        """Keep partial output of long runs in the database, for `kill -9` and readers."""
        while True:
            await asyncio.sleep(PROGRESS_FLUSH_SECONDS)
            for eval_id, running in list(self._running.items()):
                if running.dirty:
                    running.dirty = False
                    try:
                        await self._store.save_progress(eval_id, running.stdout_text(), running.stderr_text())
                    except Exception:
                        log.exception("could not save progress of %s", eval_id)

    # --- events -----------------------------------------------------------------------

    def _publish(self, evaluation: Evaluation, event: EvaluationEvent) -> None:
        self._bus.publish(event, owner=evaluation.owner)

    def add_finish_listener(self, listener: Callable[[Evaluation], None]) -> None:
        """Called with every evaluation that reaches its final status (for metrics)."""
        self._finish_listeners.append(listener)

    def _publish_final(self, e: Evaluation) -> None:
        for listener in self._finish_listeners:
            try:
                listener(e)
            except Exception:  # an observer's bug must not lose the event
                log.exception("finish listener failed")
        self._publish(
            e,
            Completed(
                eval_id=e.eval_id,
                data=CompletedData(
                    status=e.status.value,
                    success=e.success,
                    exit_code=e.exit_code,
                    reason=e.reason,
                    output=e.output,
                    error=e.error,
                    completed_at=iso_z(e.completed_at),
                    execution_time=e.execution_time,
                ),
            ),
        )
