"""Runs: list (all the caller may see, or one experiment's), get, metric history, logs,
checkpoints and their files; and runs tracked from outside, as MLflow users expect:
create a run in an experiment, log its params (hyperparameters), metrics with steps, log
lines and checkpoint files, and end it.

Only external runs take logging calls (a planned run reports through its program).
Logging is held to the same per-run caps as a program's output: past a cap the excess
is dropped and one warning line says so. Reading needs `read`, everything else
`execute`; a caller sees the runs of the experiments it may see.
"""

from __future__ import annotations

import builtins
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import NotFound, ValidationError
from appliance.core.experiments import (
    METRIC_SORT_PREFIX,
    Checkpoint,
    ExperimentStatus,
    JsonObject,
    LogLevel,
    LogQuery,
    MetricPoint,
    Run,
    RunLogLine,
    RunSource,
    RunStatus,
)
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.ids import new_run_id
from appliance.core.listing import ListPage, ListQuery
from appliance.services.access.auth import require_permission
from appliance.services.experiments.checkpoints import CheckpointFiles
from appliance.services.experiments.config import ExperimentLimits, check_metric_name
from appliance.services.experiments.experiments import ExperimentService
from appliance.services.experiments.news import ExperimentNews
from appliance.services.experiments.output import finite_number
from appliance.services.experiments.recorder import RunRecorder
from appliance.services.experiments.run_tags import check_tags
from appliance.store.runs import RunStore

MAX_TAIL = 10_000
MAX_BATCH = 1000
MAX_PARAMS = 100


class RunCreate(msgspec.Struct, kw_only=True):
    hyperparameters: JsonObject | None = None
    tags: list[str] | None = None


class MetricsIn(msgspec.Struct, kw_only=True):
    """One metrics line: values by name, and its step (None: the one after the last)."""

    metrics: dict[str, Any]
    step: int | None = None


class LogIn(msgspec.Struct, kw_only=True):
    message: str
    level: LogLevel = LogLevel.INFO


class RunEnd(msgspec.Struct, kw_only=True):
    """How an external run ended (completed, failed or cancelled)."""

    status: RunStatus = RunStatus.COMPLETED
    error: str | None = None


class RunDetail(msgspec.Struct, frozen=True, kw_only=True):
    run: Run
    checkpoints: list[Checkpoint]


class CheckpointFile(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint's file for the handler to stream (with its Content-Length)."""

    path: Path
    size: int
    name: str  # the download's file name
    content_type: str


def _field(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field, "reason": message})


class RunService:
    def __init__(
        self,
        store: RunStore,
        experiments: ExperimentService,
        checkpoints: CheckpointFiles,
        limits: ExperimentLimits,
        news: ExperimentNews | None = None,
    ) -> None:
        self._news = news
        self._store = store
        self._experiments = experiments
        self._checkpoints = checkpoints
        self._limits = limits

    async def owned(self, identity: Identity, run_id: str) -> Run:
        run = await self._store.get(run_id)
        if run is None or not identity.may_see(run.owner):
            raise NotFound(f"run {run_id} not found", details={"field": "id", "id": run_id})
        return run

    # --- reading ----------------------------------------------------------------------

    async def list(self, identity: Identity, query: ListQuery, experiment_id: str | None = None) -> ListPage[Run]:
        """All runs the caller may see, or with `experiment_id` one experiment's (404 if
        the caller may not see that experiment)."""
        require_permission(identity, READ)
        if query.sort.field.startswith(METRIC_SORT_PREFIX):
            check_metric_name(query.sort.field.removeprefix(METRIC_SORT_PREFIX), "sort")
        if experiment_id is not None:
            await self._experiments.owned(identity, experiment_id)
        owner = None if identity.is_admin else identity.owner
        return await self._store.list(query, owner=owner, experiment_id=experiment_id)

    async def get(self, identity: Identity, run_id: str) -> RunDetail:
        require_permission(identity, READ)
        run = await self.owned(identity, run_id)
        return RunDetail(run=run, checkpoints=await self._store.checkpoints(run_id))

    async def metric_history(
        self, identity: Identity, run_id: str, name: str | None = None
    ) -> dict[str, builtins.list[MetricPoint]]:
        """Every point of every metric (or of `name`), by metric, in step order."""
        require_permission(identity, READ)
        await self.owned(identity, run_id)
        return await self._store.metric_history(run_id, name)

    async def logs(self, identity: Identity, run_id: str, query: LogQuery) -> builtins.list[RunLogLine]:
        require_permission(identity, READ)
        if query.tail is not None and not 1 <= query.tail <= MAX_TAIL:
            raise _field("tail", f"tail must be between 1 and {MAX_TAIL}")
        await self.owned(identity, run_id)
        return await self._store.logs(run_id, query)

    async def checkpoints(self, identity: Identity, run_id: str) -> builtins.list[Checkpoint]:
        require_permission(identity, READ)
        await self.owned(identity, run_id)
        return await self._store.checkpoints(run_id)

    async def checkpoint_file(self, identity: Identity, run_id: str, checkpoint_id: str) -> CheckpointFile:
        require_permission(identity, READ)
        await self.owned(identity, run_id)
        checkpoint = await self._store.checkpoint(run_id, checkpoint_id)
        if checkpoint is None:
            raise NotFound(
                f"checkpoint {checkpoint_id} of run {run_id} not found",
                details={"field": "checkpoint_id", "id": checkpoint_id},
            )
        path = self._checkpoints.path(checkpoint)
        if not path.is_file():
            raise NotFound(f"the file of checkpoint {checkpoint_id} is gone", details={"field": "checkpoint_id"})
        name = checkpoint.name.rsplit("/", 1)[-1]
        return CheckpointFile(
            path=path,
            size=checkpoint.size,
            name=name,
            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        )

    # --- external runs ----------------------------------------------------------------

    async def create(self, identity: Identity, experiment_id: str, request: RunCreate) -> Run:
        """A run of `experiment_id` tracked from outside; it is running from now until
        `end`. Any experiment but a cancelled one takes them."""
        require_permission(identity, EXECUTE)
        experiment = await self._experiments.owned(identity, experiment_id)
        if experiment.status is ExperimentStatus.CANCELLED:
            raise ValidationError(
                f"experiment {experiment_id} is cancelled; it takes no new runs",
                details={"field": "experiment_id", "status": experiment.status.value},
            )
        hyperparameters = self._params(request.hyperparameters or {}, {})
        tags = check_tags(request.tags or [], "tags")
        now = utc_now()
        run = Run(
            id=new_run_id(),
            experiment_id=experiment_id,
            owner=experiment.owner,
            source=RunSource.EXTERNAL,
            position=await self._store.next_position(experiment_id),
            status=RunStatus.RUNNING,
            hyperparameters=hyperparameters,
            tags=tags,
            created_at=now,
            updated_at=now,
            started_at=now,
        )
        await self._store.insert(run)
        return run

    async def _reporting(self, identity: Identity, run_id: str) -> Run:
        require_permission(identity, EXECUTE)
        run = await self.owned(identity, run_id)
        if run.source is not RunSource.EXTERNAL:
            raise ValidationError(
                f"run {run_id} is run by the appliance; only runs created over the API take logging calls",
                details={"field": "id", "source": run.source.value},
            )
        if run.status is not RunStatus.RUNNING:
            raise ValidationError(
                f"run {run_id} has ended ({run.status.value}); it takes no more logging calls",
                details={"field": "status", "status": run.status.value},
            )
        return run

    def _params(self, params: JsonObject, current: JsonObject) -> JsonObject:
        merged = dict(current)
        for name, value in params.items():
            if not name or len(name) > 128:
                raise _field("hyperparameters", "hyperparameter names are 1 to 128 characters")
            if name in current and current[name] != value:
                raise _field(
                    f"hyperparameters.{name}",
                    f"hyperparameter {name!r} is already {current[name]!r}; a logged param does not change",
                )
            merged[name] = value
        if len(merged) > MAX_PARAMS:
            raise _field("hyperparameters", f"a run has at most {MAX_PARAMS} hyperparameters")
        return merged

    async def log_params(self, identity: Identity, run_id: str, params: JsonObject) -> Run:
        run = await self._reporting(identity, run_id)
        merged = self._params(params, run.hyperparameters)
        await self._store.set_hyperparameters(run_id, merged, utc_now())
        return await self.owned(identity, run_id)

    async def log_metrics(self, identity: Identity, run_id: str, lines: builtins.list[MetricsIn]) -> Run:
        run = await self._reporting(identity, run_id)
        self._check_batch(lines, "metrics")
        checked: builtins.list[tuple[dict[str, float], int | None]] = []
        for i, line in enumerate(lines):
            values: dict[str, float] = {}
            for name, value in line.metrics.items():
                check_metric_name(name, f"metrics.{i}.metrics")
                number = finite_number(value)
                if number is None:
                    raise _field(f"metrics.{i}.metrics.{name}", f"metric {name!r} must be a finite number")
                values[name] = number
            if line.step is not None and line.step < 0:
                raise _field(f"metrics.{i}.step", "step must be 0 or more")
            checked.append((values, line.step))
        recorder = RunRecorder(self._store, run, self._limits)
        for values, step in checked:
            recorder.metrics(values, step)
        await recorder.flush()
        return await self.owned(identity, run_id)

    async def log_lines(self, identity: Identity, run_id: str, lines: builtins.list[LogIn]) -> int:
        """Stores the lines (within the caps); returns how many there were."""
        run = await self._reporting(identity, run_id)
        self._check_batch(lines, "logs")
        recorder = RunRecorder(self._store, run, self._limits)
        for line in lines:
            recorder.log(line.level, line.message)
        await recorder.flush()
        return len(lines)

    async def set_progress(self, identity: Identity, run_id: str, progress: float) -> Run:
        run = await self._reporting(identity, run_id)
        if finite_number(progress) is None or not 0 <= progress <= 1:
            raise _field("progress", "progress must be between 0 and 1")
        recorder = RunRecorder(self._store, run, self._limits)
        recorder.progress(progress)
        await recorder.flush()
        return await self.owned(identity, run_id)

    async def upload_checkpoint(
        self, identity: Identity, run_id: str, name: str, chunks: AsyncIterator[bytes]
    ) -> Checkpoint:
        """The file streamed to disk, never held whole; past the caps, 413 and nothing kept."""
        run = await self._reporting(identity, run_id)
        return await self._checkpoints.upload(run, name, chunks)

    async def end(self, identity: Identity, run_id: str, request: RunEnd) -> Run:
        run = await self._reporting(identity, run_id)
        if not request.status.is_terminal:
            raise _field("status", "status must be completed, failed or cancelled")
        error = (request.error or "")[:10_000] or None
        await self._store.finish(run.id, request.status, utc_now(), reason=None, error=error)
        if self._news is not None:  # a run reported from outside ends: run_completed, progress
            await self._news.tell(run.experiment_id, run_id=run.id)
        return await self.owned(identity, run_id)

    def _check_batch(self, items: builtins.list[Any], field: str) -> None:
        if not items:
            raise _field(field, f"{field} is empty")
        if len(items) > MAX_BATCH:
            raise _field(field, f"at most {MAX_BATCH} {field} entries per call")
