"""What happens to experiments, told on the event bus as it happens.

The experiment service and the scheduler call this after each stored change (a status
moved, a run ended or started); it reads the stored state back and publishes
`ExperimentStatusChanged`, `ExperimentProgress`, `ExperimentRunEnded` and
`ExperimentFault` with the experiment's owner, so what a subscriber sees is what a GET
would show at that moment. Progress and ETA are computed here once, for these events and
for `GET /api/v1/experiments/:id` alike.
"""

from __future__ import annotations

import logging

from appliance.core.clock import iso_z
from appliance.core.events import (
    EventBus,
    ExperimentFault,
    ExperimentProgress,
    ExperimentRunEnded,
    ExperimentStatusChanged,
)
from appliance.core.experiments import Experiment, ExperimentStatus, RunStatus
from appliance.store.experiments import ExperimentStore
from appliance.store.runs import RunStats, RunStore

log = logging.getLogger(__name__)


def max_parallel(experiment: Experiment) -> int:
    value = experiment.config.get("max_parallel", 1)
    return value if isinstance(value, int) else 1


def progress_and_eta(experiment: Experiment, stats: RunStats, job_workers: int) -> tuple[float, float | None]:
    """Share of the planned runs done (a running run counts by its own progress), and
    the seconds left at the mean duration so far, over the runs that can run at once."""
    planned = stats.planned_by_status
    total = sum(planned.values())
    ended = sum(n for status, n in planned.items() if status.is_terminal)
    progress = 1.0 if total == 0 and experiment.status.is_terminal else 0.0
    if total:
        progress = min(1.0, (ended + stats.running_progress) / total)
    eta = None
    if experiment.status is ExperimentStatus.RUNNING and stats.mean_duration is not None and total:
        parallel = max(1, min(max_parallel(experiment), job_workers))
        left = planned.get(RunStatus.PENDING, 0) + planned.get(RunStatus.RUNNING, 0) - stats.running_progress
        eta = round(max(0.0, left) * stats.mean_duration / parallel, 1)
    return round(progress, 4), eta


class ExperimentNews:
    def __init__(self, experiments: ExperimentStore, runs: RunStore, bus: EventBus, job_workers: int) -> None:
        self._experiments = experiments
        self._runs = runs
        self._bus = bus
        self._job_workers = job_workers

    async def status_changed(self, experiment_id: str) -> None:
        """The experiment's status moved (start, pause, resume, cancel, its end)."""
        experiment = await self._experiments.get(experiment_id)
        if experiment is None:
            return
        self._bus.publish(
            ExperimentStatusChanged(
                experiment_id=experiment.id,
                status=experiment.status.value,
                started_at=iso_z(experiment.started_at),
                completed_at=iso_z(experiment.completed_at),
            ),
            owner=experiment.owner,
        )
        if experiment.status is ExperimentStatus.FAILED:
            self._bus.publish(
                ExperimentFault(
                    experiment_id=experiment.id, code="experiment_failed", message="every planned run failed"
                ),
                owner=experiment.owner,
            )
        await self.progress(experiment)

    async def run_ended(self, run_id: str) -> None:
        run = await self._runs.get(run_id)
        if run is None or not run.status.is_terminal:
            return
        self._bus.publish(
            ExperimentRunEnded(
                experiment_id=run.experiment_id,
                run_id=run.id,
                status=run.status.value,
                metrics=dict(run.metrics),
                reason=run.reason,
            ),
            owner=run.owner,
        )
        if run.status is RunStatus.FAILED:
            message = run.error or f"run {run.id} failed"
            self._bus.publish(
                ExperimentFault(experiment_id=run.experiment_id, code=run.reason or "run_failed", message=message),
                owner=run.owner,
            )
        experiment = await self._experiments.get(run.experiment_id)
        if experiment is not None:
            await self.progress(experiment)

    async def progress(self, experiment: Experiment) -> None:
        stats = await self._runs.stats(experiment.id)
        progress, eta = progress_and_eta(experiment, stats, self._job_workers)
        planned = stats.planned_by_status
        self._bus.publish(
            ExperimentProgress(
                experiment_id=experiment.id,
                progress=progress,
                eta_seconds=eta,
                completed_runs=sum(n for status, n in planned.items() if status.is_terminal),
                total_runs=sum(planned.values()),
            ),
            owner=experiment.owner,
        )

    async def tell(self, experiment_id: str, *, run_id: str | None = None) -> None:
        """For callers on a path that must not fail because telling failed."""
        try:
            if run_id is not None:
                await self.run_ended(run_id)
            else:
                await self.status_changed(experiment_id)
        except Exception:
            log.exception("could not publish news of experiment %s", experiment_id)
