"""One run the scheduler started: the `RunContext` its runner executes with, the queue job
its sandbox request becomes, and why the scheduler is stopping it (if it is)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.core.clock import utc_now
from appliance.core.evaluations import CollectedFile, ExecutionOutcome
from appliance.core.experiments import Experiment, LogLevel, Run
from appliance.runtime.executor import ExecutionRequest, OutputCallback
from appliance.services.evaluation.queue import EvaluationQueue, ExecuteFn
from appliance.services.experiments.checkpoints import CheckpointFiles
from appliance.services.experiments.recorder import RunRecorder
from appliance.services.experiments.runners.base import Program, SandboxInfo
from appliance.store.runs import RunStore

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5


class StopReason(StrEnum):
    CANCEL = "cancel"  # the experiment was cancelled: the run ends cancelled
    PAUSE = "pause"  # paused with stop_running (or not started yet): back in line
    SHUTDOWN = "shutdown"  # the appliance stops: left running, recovered at the next start


class ActiveRun:
    def __init__(
        self,
        run: Run,
        experiment: Experiment,
        program: Program,
        recorder: RunRecorder,
        queue: EvaluationQueue,
        store: RunStore,
        checkpoints: CheckpointFiles,
    ) -> None:
        self._run = run
        self._experiment = experiment
        self._program = program
        self.recorder = recorder
        self._queue = queue
        self._store = store
        self._checkpoints = checkpoints
        self.stop_reason: StopReason | None = None
        self.started = False  # a worker took it and it is marked running
        self.task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    # --- RunContext -------------------------------------------------------------------

    @property
    def run(self) -> Run:
        return self._run

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    @property
    def program(self) -> Program:
        return self._program

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    async def execute(
        self, request: ExecutionRequest, on_output: OutputCallback, sandbox: SandboxInfo
    ) -> ExecutionOutcome | None:
        if self.stop_reason is not None:
            return None
        job = _RunJob(self, request, on_output, sandbox)
        self._queue.enqueue_job(job)
        return await job.result

    def metrics(self, values: dict[str, float], step: int | None, checkpoint: str | None = None) -> None:
        self.recorder.metrics(values, step, checkpoint)

    def progress(self, value: float) -> None:
        self.recorder.progress(value)

    def tags(self, tags: list[Any]) -> None:
        self.recorder.tags(tags)

    def log(self, level: LogLevel, message: str) -> None:
        self.recorder.log(level, message)

    @property
    def metrics_full(self) -> bool:
        return self.recorder.metrics_full

    @property
    def logs_full(self) -> bool:
        return self.recorder.logs_full

    def staging_dir(self) -> Path:
        return self._checkpoints.staging_dir(self._run.id)

    async def add_checkpoints(self, files: list[CollectedFile]) -> None:
        await self.recorder.flush()
        facts = {item.name: self.recorder.facts_for(item.name, item.modified_at) for item in files}
        _, refused = await self._checkpoints.add_collected(self._run, files, facts)
        for line in refused:
            self.recorder.log(LogLevel.WARNING, line)

    # --- the scheduler's side ---------------------------------------------------------

    def begin(self) -> None:
        self._flusher = asyncio.create_task(self._flush_often(), name=f"run-flush-{self._run.id}")

    async def close(self) -> None:
        # Asked to end, not cancelled: a flush cut off inside its transaction would leave
        # the writer's transaction open.
        self._closed.set()
        if self._flusher is not None:
            await self._flusher
        await self.recorder.flush()

    async def stop(self, reason: StopReason) -> None:
        """Stop it: out of the queue's line if it waits there, its sandbox killed if it
        runs. The first reason given stands."""
        if self.stop_reason is None:
            self.stop_reason = reason
        await self._queue.kill_job(self._run.id)

    async def mark_started(self, sandbox: SandboxInfo) -> bool:
        if self.stop_reason is not None:
            return False
        # Started from here on, before the row says so: a pause that reads the row as
        # running must find the run started too (it lets started runs finish).
        self.started = True
        self.started = await self._store.mark_running(
            self._run.id,
            utc_now(),
            image=sandbox.image,
            engine=sandbox.engine,
            language=sandbox.language,
            code_sha256=sandbox.code_sha256,
        )
        return self.started

    async def _flush_often(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), FLUSH_SECONDS)
                return
            try:
                await self.recorder.flush()
            except Exception:  # the next flush tries again; the run goes on
                log.exception("could not store what run %s reported", self._run.id)


class _RunJob:
    """The run's sandbox request as a job of the evaluation queue."""

    def __init__(
        self, active: ActiveRun, request: ExecutionRequest, on_output: OutputCallback, sandbox: SandboxInfo
    ) -> None:
        self._active = active
        self._request = request
        self._on_output = on_output
        self._sandbox = sandbox
        self.result: asyncio.Future[ExecutionOutcome | None] = asyncio.get_running_loop().create_future()

    @property
    def job_id(self) -> str:
        return self._active.run.id

    async def run(self, execute: ExecuteFn) -> None:
        try:
            if not await self._active.mark_started(self._sandbox):
                self._settle(None)
                return
            self._settle(await execute(self._request, self._on_output))
        except asyncio.CancelledError:
            self.result.cancel()
            raise
        except Exception as exc:
            if not self.result.done():
                self.result.set_exception(exc)

    def dropped(self) -> None:
        self._settle(None)

    def _settle(self, outcome: ExecutionOutcome | None) -> None:
        if not self.result.done():
            self.result.set_result(outcome)
