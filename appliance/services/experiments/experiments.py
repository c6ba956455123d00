"""Experiments: create, read, list, update, delete, clone, and the actions of their state
machine (start, pause, resume, cancel).

Every method takes the caller's `Identity` first: reading needs `read`, changing and
acting needs `execute`; an owner sees and acts on their own experiments only (another
owner's is "not found"), an admin on all. An action the current status does not allow
is a ValidationError whose message names the status and the allowed actions, and
whose details carry them (`status`, `allowed_actions`). Delete is refused the same way
while the experiment is running or paused (cancel it first). Bad input stores nothing.
"""

from __future__ import annotations

import asyncio
import collections

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import NotFound, ValidationError
from appliance.core.experiments import (
    Action,
    Experiment,
    ExperimentStatus,
    JsonObject,
    Objective,
    OptimizationDirection,
    Run,
    RunSource,
    RunStatus,
    allowed_actions,
)
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.ids import new_experiment_id, new_run_id
from appliance.core.listing import ListPage, ListQuery
from appliance.services.access.auth import require_permission
from appliance.services.experiments.checkpoints import CheckpointFiles
from appliance.services.experiments.config import encode_config
from appliance.services.experiments.news import ExperimentNews, progress_and_eta
from appliance.services.experiments.runners.base import RunnerRegistry
from appliance.services.experiments.scheduler import ExperimentScheduler
from appliance.store.experiments import ExperimentStore
from appliance.store.runs import RunStore

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
MAX_TAGS = 32
MAX_TAG_CHARS = 64


class ExperimentCreate(msgspec.Struct, kw_only=True):
    name: str | None = None
    description: str | None = None
    config: JsonObject | None = None
    tags: list[str] | None = None


class ExperimentUpdate(msgspec.Struct, kw_only=True):
    """Fields left None stay as they are; `config` only while the experiment is pending."""

    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    config: JsonObject | None = None


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: RunStatus
    progress: float
    attempt: int
    source: RunSource


class ResultsSummary(msgspec.Struct, frozen=True, kw_only=True):
    """`best_value` is the best latest value of the objective's metric over completed
    runs (the surface shows it as `best_<metric>`)."""

    total_runs: int
    completed_runs: int
    failed_runs: int
    cancelled_runs: int
    running_runs: int
    pending_runs: int
    objective: Objective | None = None
    best_value: float | None = None
    best_run_id: str | None = None


class ExperimentDetail(msgspec.Struct, frozen=True, kw_only=True):
    experiment: Experiment
    runs: list[RunSummary]
    results_summary: ResultsSummary
    # Share of the planned runs done (running ones count with their own progress).
    progress: float
    # Seconds until the planned runs are done, from the mean duration of finished runs
    # and the runs that may go at once; None until one has finished, or when not running.
    eta_seconds: float | None
    allowed_actions: list[Action]


def _not_allowed(experiment: Experiment, action: Action) -> ValidationError:
    return _status_refusal(
        experiment, f"cannot {action.value} experiment {experiment.id}: it is {experiment.status.value}"
    )


def _status_refusal(experiment: Experiment, said: str) -> ValidationError:
    """A refusal for the experiment's status; its details name the status and the
    allowed actions, also in the field-level form ({field: [texts]}) a surface shows."""
    status, allowed = experiment.status.value, [a.value for a in allowed_actions(experiment.status)]
    fields = {"status": [f"is {status}"], "allowed_actions": list(allowed)}
    return ValidationError(
        f"{said}; allowed actions: {', '.join(allowed)}",
        details={"fields": fields, "field": "status", "status": status, "allowed_actions": allowed},
    )


def _field(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field, "reason": message})


class ExperimentService:
    def __init__(
        self,
        store: ExperimentStore,
        runs: RunStore,
        runners: RunnerRegistry,
        scheduler: ExperimentScheduler,
        checkpoints: CheckpointFiles,
        job_workers: int,
        news: ExperimentNews,
    ) -> None:
        self._news = news
        self._store = store
        self._runs = runs
        self._runners = runners
        self._scheduler = scheduler
        self._checkpoints = checkpoints
        self._job_workers = job_workers
        # Actions on one experiment one at a time (a start and a cancel must not cross).
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    # --- checks -----------------------------------------------------------------------

    async def owned(self, identity: Identity, experiment_id: str) -> Experiment:
        """The experiment if the caller may see it; NotFound otherwise (also for others')."""
        experiment = await self._store.get(experiment_id)
        if experiment is None or not identity.may_see(experiment.owner):
            raise NotFound(f"experiment {experiment_id} not found", details={"field": "id", "id": experiment_id})
        return experiment

    @staticmethod
    def _name(name: str | None) -> str:
        text = (name or "").strip()
        if not text:
            raise _field("name", "name can't be blank")
        if len(text) > MAX_NAME_CHARS:
            raise _field("name", f"name is longer than {MAX_NAME_CHARS} characters")
        return text

    @staticmethod
    def _description(text: str | None) -> str:
        if text is not None and len(text) > MAX_DESCRIPTION_CHARS:
            raise _field("description", f"description is longer than {MAX_DESCRIPTION_CHARS} characters")
        return text or ""

    @staticmethod
    def _tags(tags: list[str] | None) -> list[str]:
        cleaned: list[str] = []
        for tag in tags or []:
            text = tag.strip()
            if not text or len(text) > MAX_TAG_CHARS:
                raise _field("tags", f"each tag is 1 to {MAX_TAG_CHARS} characters")
            if text not in cleaned:
                cleaned.append(text)
        if len(cleaned) > MAX_TAGS:
            raise _field("tags", f"at most {MAX_TAGS} tags")
        return cleaned

    async def _config(self, identity: Identity, raw: JsonObject | None) -> JsonObject:
        if raw is None:
            raise _field("config", 'config is required: an object with a "type"')
        runner, config = self._runners.validate(raw)
        await runner.check_access(identity, config)
        return encode_config(config)

    # --- CRUD -------------------------------------------------------------------------

    async def create(self, identity: Identity, request: ExperimentCreate) -> Experiment:
        require_permission(identity, EXECUTE)
        name = self._name(request.name)
        description = self._description(request.description)
        tags = self._tags(request.tags)
        config = await self._config(identity, request.config)
        now = utc_now()
        experiment = Experiment(
            id=new_experiment_id(),
            owner=identity.owner,
            name=name,
            description=description,
            tags=tags,
            config=config,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert(experiment)
        return experiment

    async def get(self, identity: Identity, experiment_id: str) -> Experiment:
        require_permission(identity, READ)
        return await self.owned(identity, experiment_id)

    async def details(self, identity: Identity, experiment_id: str) -> ExperimentDetail:
        """The experiment with its runs, results summary, progress and ETA."""
        experiment = await self.get(identity, experiment_id)
        runs = await self._runs.of_experiment(experiment_id)
        stats = await self._runs.stats(experiment_id)
        count = stats.by_status.get
        objective = _objective(experiment)
        best = await self._runs.best(experiment_id, objective.metric, objective.direction) if objective else None
        summary = ResultsSummary(
            total_runs=sum(stats.by_status.values()),
            completed_runs=count(RunStatus.COMPLETED, 0),
            failed_runs=count(RunStatus.FAILED, 0),
            cancelled_runs=count(RunStatus.CANCELLED, 0),
            running_runs=count(RunStatus.RUNNING, 0),
            pending_runs=count(RunStatus.PENDING, 0),
            objective=objective,
            best_value=best[1] if best else None,
            best_run_id=best[0] if best else None,
        )
        progress, eta = progress_and_eta(experiment, stats, self._job_workers)
        return ExperimentDetail(
            experiment=experiment,
            runs=[
                RunSummary(id=r.id, status=r.status, progress=r.progress, attempt=r.attempt, source=r.source)
                for r in runs
            ],
            results_summary=summary,
            progress=progress,
            eta_seconds=eta,
            allowed_actions=list(allowed_actions(experiment.status)),
        )

    async def list(self, identity: Identity, query: ListQuery) -> ListPage[Experiment]:
        require_permission(identity, READ)
        return await self._store.list(query, owner=None if identity.is_admin else identity.owner)

    async def update(self, identity: Identity, experiment_id: str, request: ExperimentUpdate) -> Experiment:
        require_permission(identity, EXECUTE)
        async with self._locks[experiment_id]:
            experiment = await self.owned(identity, experiment_id)
            name = self._name(request.name) if request.name is not None else experiment.name
            description = self._description(request.description) if request.description is not None else None
            tags = self._tags(request.tags) if request.tags is not None else experiment.tags
            config = experiment.config
            if request.config is not None:
                if experiment.status is not ExperimentStatus.PENDING:
                    raise ValidationError(
                        f"config of experiment {experiment_id} can change only while it is pending; "
                        f"it is {experiment.status.value} (clone it to run another config)",
                        details={"field": "config", "status": experiment.status.value},
                    )
                config = await self._config(identity, request.config)
            only_if = ExperimentStatus.PENDING if request.config is not None else None
            changed = await self._store.update_fields(
                experiment_id,
                name=name,
                description=description if description is not None else experiment.description,
                tags=tags,
                config=config,
                updated_at=utc_now(),
                only_if=only_if,
            )
            if not changed:
                current = await self.owned(identity, experiment_id)
                raise ValidationError(
                    f"experiment {experiment_id} is {current.status.value} now; its config can no longer change",
                    details={"field": "config", "status": current.status.value},
                )
            return await self.owned(identity, experiment_id)

    async def delete(self, identity: Identity, experiment_id: str) -> None:
        require_permission(identity, EXECUTE)
        async with self._locks[experiment_id]:
            experiment = await self.owned(identity, experiment_id)
            if experiment.status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED):
                raise _status_refusal(
                    experiment, f"experiment {experiment_id} is {experiment.status.value}: cancel it before deleting it"
                )
            for run_id in await self._store.delete(experiment_id):
                await self._checkpoints.remove_run(run_id)
        self._locks.pop(experiment_id, None)

    async def clone(self, identity: Identity, experiment_id: str, name: str | None = None) -> Experiment:
        """A new pending experiment with the same description, config and tags; a new
        seed is not drawn (the same config plans the same points)."""
        require_permission(identity, EXECUTE)
        source = await self.owned(identity, experiment_id)
        now = utc_now()
        clone = Experiment(
            id=new_experiment_id(),
            owner=identity.owner,
            name=self._name(name) if name is not None else self._name(f"{source.name} (copy)"[:MAX_NAME_CHARS]),
            description=source.description,
            tags=list(source.tags),
            config=dict(source.config),
            created_at=now,
            updated_at=now,
        )
        await self._store.insert(clone)
        return clone

    # --- actions ----------------------------------------------------------------------

    async def _acting(self, identity: Identity, experiment_id: str, action: Action) -> Experiment:
        require_permission(identity, EXECUTE)
        experiment = await self.owned(identity, experiment_id)
        if action not in allowed_actions(experiment.status):
            raise _not_allowed(experiment, action)
        return experiment

    async def start(self, identity: Identity, experiment_id: str) -> Experiment:
        async with self._locks[experiment_id]:
            experiment = await self._acting(identity, experiment_id, Action.START)
            runner, config = self._runners.validate(experiment.config)
            program = await runner.prepare(identity, config)
            now = utc_now()
            runs = [
                Run(
                    id=new_run_id(),
                    experiment_id=experiment.id,
                    owner=experiment.owner,
                    position=position,
                    hyperparameters=point.hyperparameters,
                    tags=point.tags,
                    seed=point.seed,
                    code_sha256=program.sha256,
                    created_at=now,
                    updated_at=now,
                )
                for position, point in enumerate(runner.plan(config))
            ]
            if not await self._store.start(experiment.id, program.code, program.sha256, runs, now):
                raise _not_allowed(await self.owned(identity, experiment_id), Action.START)
            await self._news.tell(experiment.id)
            await self._scheduler.launch(experiment.id)
            return await self.owned(identity, experiment_id)

    async def pause(self, identity: Identity, experiment_id: str, stop_running: bool = False) -> Experiment:
        return await self._move(
            identity, experiment_id, Action.PAUSE, ExperimentStatus.PAUSED, stop_running=stop_running
        )

    async def resume(self, identity: Identity, experiment_id: str) -> Experiment:
        return await self._move(identity, experiment_id, Action.RESUME, ExperimentStatus.RUNNING)

    async def cancel(self, identity: Identity, experiment_id: str) -> Experiment:
        return await self._move(identity, experiment_id, Action.CANCEL, ExperimentStatus.CANCELLED)

    async def _move(
        self,
        identity: Identity,
        experiment_id: str,
        action: Action,
        to: ExperimentStatus,
        *,
        stop_running: bool = False,
    ) -> Experiment:
        async with self._locks[experiment_id]:
            experiment = await self._acting(identity, experiment_id, action)
            if not await self._store.move(experiment_id, (experiment.status,), to, utc_now(), completed=to.is_terminal):
                raise _not_allowed(await self.owned(identity, experiment_id), action)
            if action is Action.PAUSE:
                await self._scheduler.pause(experiment_id, stop_running)
            elif action is Action.RESUME:
                await self._scheduler.resume(experiment_id)
            elif action is Action.CANCEL:
                await self._scheduler.cancel(experiment_id)
            await self._news.tell(experiment_id)
            return await self.owned(identity, experiment_id)


def _objective(experiment: Experiment) -> Objective | None:
    raw = experiment.config.get("objective")
    if not isinstance(raw, dict) or not isinstance(raw.get("metric"), str):
        return None
    direction = raw.get("direction", OptimizationDirection.MAXIMIZE.value)
    try:
        return Objective(metric=raw["metric"], direction=OptimizationDirection(direction))
    except ValueError:
        return None
