"""Drives running experiments: starts their runs, at most `max_parallel` of each at once,
and decides what happens to each run when it ends.

State lives in the database; this holds only what is moving: per experiment, the runs
waiting their turn (by place in the plan) and the runs started (`ActiveRun`). A run
started here becomes a job of the evaluation queue, so interactive evaluations go first
and runs hold at most the queue's job workers.

- pause: no new run starts; runs not yet on a worker go back in line; with
  `stop_running`, running ones are killed and go back in line too (what they reported
  is cleared, their log lines stay; `attempt` does not change).
- resume: runs start again, the interrupted ones first (plan order).
- cancel: every run still waiting is cancelled and running sandboxes are killed.
- end: once no run waits or runs, the experiment is `completed`, or `failed` when every
  planned run failed (a cancelled experiment stays cancelled).
- restart: at start, a `running` experiment resumes and a `paused` one stays paused;
  finished runs stay as they are, and a run that was running goes back in line once as
  `attempt` 2; a run interrupted on its second attempt fails with reason `interrupted`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging

from appliance.core.clock import utc_now
from appliance.core.experiments import Experiment, ExperimentStatus, LogLevel, Run, RunStatus
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.services.experiments.checkpoints import CheckpointFiles
from appliance.services.experiments.config import BaseConfig, ExperimentLimits
from appliance.services.experiments.context import ActiveRun, StopReason
from appliance.services.experiments.news import ExperimentNews
from appliance.services.experiments.recorder import RunRecorder
from appliance.services.experiments.runners.base import ExperimentRunner, Program, RunnerRegistry, RunResult
from appliance.store.experiments import ExperimentStore
from appliance.store.runs import LogRow, Report, RunStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
SHUTDOWN_WAIT_SECONDS = 30.0


class _Driven:
    """An experiment the scheduler is driving."""

    def __init__(self, experiment: Experiment, runner: ExperimentRunner, config: BaseConfig, program: Program) -> None:
        self.experiment = experiment
        self.runner = runner
        self.config = config
        self.program = program
        self.paused = experiment.status is ExperimentStatus.PAUSED
        self.cancelled = False
        self.waiting: list[tuple[int, str]] = []  # (position, run id), sorted
        self.active: dict[str, ActiveRun] = {}
        # Runs taken off `waiting` whose row is still being read: they hold room and keep
        # the experiment from ending, as if already active.
        self.claiming = 0


class ExperimentScheduler:
    def __init__(
        self,
        experiments: ExperimentStore,
        runs: RunStore,
        queue: EvaluationQueue,
        runners: RunnerRegistry,
        checkpoints: CheckpointFiles,
        limits: ExperimentLimits,
        news: ExperimentNews,
    ) -> None:
        self._news = news
        self._experiments = experiments
        self._runs = runs
        self._queue = queue
        self._runners = runners
        self._checkpoints = checkpoints
        self._limits = limits
        self._driven: dict[str, _Driven] = {}
        self._stopping = False

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a stop or crash left: running experiments resume, paused ones wait."""
        self._stopping = False
        for experiment in await self._experiments.in_status(ExperimentStatus.RUNNING, ExperimentStatus.PAUSED):
            try:
                await self._recover(experiment)
            except Exception:  # one experiment's trouble must not keep the others down
                log.exception("could not resume experiment %s", experiment.id)

    async def stop(self) -> None:
        """Stop every run for the shutdown; they stay `running` in the database and the
        next start puts them back in line."""
        self._stopping = True
        tasks = []
        for driven in list(self._driven.values()):
            for active in list(driven.active.values()):
                await active.stop(StopReason.SHUTDOWN)
                if active.task is not None:
                    tasks.append(active.task)
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        self._driven.clear()

    def active_runs(self, experiment_id: str) -> int:
        driven = self._driven.get(experiment_id)
        return len(driven.active) if driven else 0

    # --- what the experiment service asks --------------------------------------------

    async def launch(self, experiment_id: str) -> None:
        """Start driving an experiment that just moved to running (its runs stored)."""
        experiment = await self._experiments.get(experiment_id)
        if experiment is not None:
            await self._drive(experiment)

    async def pause(self, experiment_id: str, stop_running: bool) -> None:
        driven = self._driven.get(experiment_id)
        if driven is None:
            return
        driven.paused = True
        for active in list(driven.active.values()):
            if stop_running or not active.started:
                await active.stop(StopReason.PAUSE)

    async def resume(self, experiment_id: str) -> None:
        driven = self._driven.get(experiment_id)
        if driven is None:
            experiment = await self._experiments.get(experiment_id)
            if experiment is not None:
                await self._drive(experiment)
            return
        driven.paused = False
        await self._fill(driven)
        await self._end_if_done(driven)

    async def cancel(self, experiment_id: str) -> None:
        """The experiment is already `cancelled`: stop its runs and cancel the rest."""
        driven = self._driven.get(experiment_id)
        if driven is not None:
            driven.cancelled = True
            driven.waiting.clear()
            for active in list(driven.active.values()):
                await active.stop(StopReason.CANCEL)
        await self._runs.cancel_unfinished(experiment_id, utc_now())
        if driven is not None and not driven.active:
            self._driven.pop(experiment_id, None)

    # --- driving ----------------------------------------------------------------------

    async def _recover(self, experiment: Experiment) -> None:
        now = utc_now()
        for run in await self._runs.planned_in_status(experiment.id, RunStatus.RUNNING):
            if run.attempt >= MAX_ATTEMPTS:
                await self._runs.finish(
                    run.id,
                    RunStatus.FAILED,
                    now,
                    reason="interrupted",
                    error=f"the appliance stopped while this run was running, on attempt {run.attempt}",
                )
                continue
            if await self._runs.requeue(run.id, run.attempt + 1, now):
                await self._checkpoints.remove_run(run.id)
                await self._note(
                    run.id,
                    f"[appliance] the appliance stopped while this run was running; it goes back in line as "
                    f"attempt {run.attempt + 1}",
                )
        await self._drive(experiment)

    async def _drive(self, experiment: Experiment) -> None:
        if experiment.id in self._driven or self._stopping:
            return
        runner, config = self._runners.validate(experiment.config)
        if not runner.runs_planned:
            return
        code = await self._experiments.program(experiment.id)
        driven = _Driven(experiment, runner, config, Program(code=code, sha256=experiment.program_sha256))
        driven.waiting = [
            (run.position, run.id) for run in await self._runs.planned_in_status(experiment.id, RunStatus.PENDING)
        ]
        self._driven[experiment.id] = driven
        await self._fill(driven)
        await self._end_if_done(driven)

    def _room(self, driven: _Driven) -> bool:
        return (
            not driven.paused
            and not driven.cancelled
            and not self._stopping
            and len(driven.active) + driven.claiming < driven.config.max_parallel
        )

    async def _fill(self, driven: _Driven) -> None:
        while driven.waiting and self._room(driven):
            waiting = driven.waiting.pop(0)
            driven.claiming += 1
            try:
                run = await self._runs.get(waiting[1])
            finally:
                driven.claiming -= 1
            if run is None or run.status is not RunStatus.PENDING:
                continue
            # A pause or cancel may have come while the run was read.
            if not self._room(driven):
                bisect.insort(driven.waiting, waiting)
                return
            active = ActiveRun(
                run,
                driven.experiment,
                driven.program,
                RunRecorder(self._runs, run, self._limits),
                self._queue,
                self._runs,
                self._checkpoints,
            )
            driven.active[run.id] = active
            active.begin()
            active.task = asyncio.create_task(self._execute(driven, active), name=f"run-{run.id}")

    async def _execute(self, driven: _Driven, active: ActiveRun) -> None:
        run = active.run
        result: RunResult | None = None
        try:
            result = await driven.runner.execute(driven.config, active)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the runner's bug: this run fails, the others go on
            log.exception("run %s failed in its runner", run.id)
            result = RunResult(status=RunStatus.FAILED, reason="runner_error", error=f"[appliance] {exc}")
        finally:
            try:
                await active.close()
            except Exception:
                log.exception("could not store the last of what run %s reported", run.id)
        try:
            await self._settle(driven, active, result)
        except Exception:
            log.exception("could not settle run %s", run.id)
        finally:
            driven.active.pop(run.id, None)
        if self._stopping:
            return
        await self._news.tell(run.experiment_id, run_id=run.id)
        await self._fill(driven)
        await self._end_if_done(driven)

    async def _settle(self, driven: _Driven, active: ActiveRun, result: RunResult | None) -> None:
        run, now = active.run, utc_now()
        reason = active.stop_reason
        if reason is StopReason.CANCEL:
            await self._runs.finish(run.id, RunStatus.CANCELLED, now, reason="cancelled")
            return
        # A run whose program ended by itself just before the stop keeps its result.
        ended_itself = active.started and result is not None and result.reason not in ("killed", "stopped")
        if reason is StopReason.SHUTDOWN and not ended_itself:
            return  # left running: the next start puts it back in line
        if reason is StopReason.PAUSE and not ended_itself:
            if active.started and await self._runs.requeue(run.id, run.attempt, now):
                await self._checkpoints.remove_run(run.id)
                await self._note(run.id, "[appliance] stopped by a pause; back in line, to run again from the start")
            bisect.insort(driven.waiting, (run.position, run.id))
            return
        if result is None:
            result = RunResult(status=RunStatus.FAILED, reason="engine_error", error="[appliance] the run did not run")
        await self._runs.finish(
            run.id, result.status, now, exit_code=result.exit_code, reason=result.reason, error=result.error
        )

    async def _end_if_done(self, driven: _Driven) -> None:
        if driven.waiting or driven.active or driven.claiming or self._stopping:
            return
        self._driven.pop(driven.experiment.id, None)
        if driven.cancelled:
            return
        stats = await self._runs.stats(driven.experiment.id)
        planned = stats.planned_by_status
        all_failed = planned.get(RunStatus.FAILED, 0) > 0 and not planned.get(RunStatus.COMPLETED, 0)
        final = ExperimentStatus.FAILED if all_failed else ExperimentStatus.COMPLETED
        moved = await self._experiments.move(
            driven.experiment.id,
            (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED),
            final,
            utc_now(),
            completed=True,
        )
        if moved:
            log.info("experiment %s %s", driven.experiment.id, final.value)
            await self._news.tell(driven.experiment.id)

    async def _note(self, run_id: str, message: str) -> None:
        """A log line from the appliance on a run that is not running."""
        await self._runs.record(run_id, Report(logs=[LogRow(utc_now(), LogLevel.INFO, message)]), utc_now())


__all__ = ["ExperimentScheduler", "Run"]
