"""The bodies of `/api/v1/runs` (experiments-api.md, Run Endpoints): runs, their metric
history, log lines and checkpoints, and what the logging calls of a run tracked from
outside send."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from appliance.core.clock import iso_z
from appliance.core.experiments import Checkpoint, LogLevel, MetricPoint, Run, RunLogLine
from appliance.http.experiments.envelope import Timestamp

# --- requests --------------------------------------------------------------------------------


class RunInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    hyperparameters: dict[str, Any] | None = None
    # Up to 32 tags, each 1 to 64 letters, digits or _ . : / = + @ - ("model:gpt4").
    tags: list[str] | None = None


class RunCreateBody(msgspec.Struct, forbid_unknown_fields=True):
    run: RunInput = msgspec.field(default_factory=RunInput)


class ParamsBody(msgspec.Struct, forbid_unknown_fields=True):
    # Names to values; a param already logged keeps its value (another is a 422).
    params: dict[str, Any]


class MetricsLine(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    metrics: dict[str, Any]  # metric name -> finite number
    step: int | None = None  # default: the step after the run's latest


class MetricsBody(msgspec.Struct, forbid_unknown_fields=True):
    metrics: list[MetricsLine]  # 1 to 1000 lines, in order


class LogInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    message: str
    level: LogLevel = LogLevel.INFO


class LogsBody(msgspec.Struct, forbid_unknown_fields=True):
    logs: list[LogInput]  # 1 to 1000 lines, in order


class ProgressBody(msgspec.Struct, forbid_unknown_fields=True):
    progress: float  # 0 to 1


class RunEndBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: str = "completed"  # completed, failed or cancelled
    error: str | None = None


# --- responses -------------------------------------------------------------------------------


class CheckpointBody(msgspec.Struct, kw_only=True):
    id: str
    run_id: str
    name: str
    # From the run's latest metrics line when it was written: its `epoch` metric, else
    # that line's step; the step; and that line's metrics.
    epoch: int | None
    step: int | None
    metrics: dict[str, float]
    size: int
    sha256: str
    path: str  # its download URL
    created_at: Timestamp


class RunBody(msgspec.Struct, kw_only=True):
    id: str
    experiment_id: str
    source: str  # plan (run by the appliance) or external (reported over the API)
    position: int
    status: str
    attempt: int
    progress: float
    hyperparameters: dict[str, Any]
    tags: list[str]  # from the config's run_tags, given at creation, or added by its program
    metrics: dict[str, float]  # the latest value of each metric
    step: int | None
    seed: int | None
    code_sha256: str | None
    image: str | None
    engine: str | None
    language: str | None
    exit_code: int | None
    reason: str | None
    error: str | None
    duration_seconds: float | None
    started_at: Timestamp | None
    completed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class RunDetailBody(RunBody, kw_only=True):
    checkpoints: list[CheckpointBody]


class MetricPointBody(msgspec.Struct, kw_only=True):
    step: int
    value: float
    timestamp: Timestamp


class LogLineBody(msgspec.Struct, kw_only=True):
    timestamp: Timestamp
    level: str
    message: str


class LoggedBody(msgspec.Struct, kw_only=True):
    accepted: int


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else iso_z(moment)


def checkpoint_url(run_id: str, checkpoint_id: str) -> str:
    return f"/api/v1/runs/{run_id}/checkpoints/{checkpoint_id}/download"


def checkpoint_body(checkpoint: Checkpoint) -> CheckpointBody:
    return CheckpointBody(
        id=checkpoint.id,
        run_id=checkpoint.run_id,
        name=checkpoint.name,
        epoch=checkpoint.epoch,
        step=checkpoint.step,
        metrics=checkpoint.metrics,
        size=checkpoint.size,
        sha256=checkpoint.sha256,
        path=checkpoint_url(checkpoint.run_id, checkpoint.id),
        created_at=iso_z(checkpoint.created_at),
    )


def _run_fields(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "experiment_id": run.experiment_id,
        "source": run.source.value,
        "position": run.position,
        "status": run.status.value,
        "attempt": run.attempt,
        "progress": run.progress,
        "hyperparameters": run.hyperparameters,
        "tags": run.tags,
        "metrics": run.metrics,
        "step": run.step,
        "seed": run.seed,
        "code_sha256": run.code_sha256,
        "image": run.image,
        "engine": run.engine,
        "language": run.language,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "error": run.error,
        "duration_seconds": run.duration_seconds,
        "started_at": _when(run.started_at),
        "completed_at": _when(run.completed_at),
        "created_at": iso_z(run.created_at),
        "updated_at": iso_z(run.updated_at),
    }


def run_body(run: Run) -> RunBody:
    return RunBody(**_run_fields(run))


def run_detail_body(run: Run, checkpoints: list[Checkpoint]) -> RunDetailBody:
    return RunDetailBody(**_run_fields(run), checkpoints=[checkpoint_body(c) for c in checkpoints])


def history_body(history: dict[str, list[MetricPoint]]) -> dict[str, list[MetricPointBody]]:
    return {
        name: [MetricPointBody(step=p.step, value=p.value, timestamp=iso_z(p.timestamp)) for p in points]
        for name, points in history.items()
    }


def log_line_body(line: RunLogLine) -> LogLineBody:
    return LogLineBody(timestamp=iso_z(line.timestamp), level=line.level.value, message=line.message)
