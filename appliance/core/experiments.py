"""Experiments and their runs (experiments-api.md): the records, the state machine of an
experiment, and what their lists take.

An experiment holds a config whose `type` says what starting it does (services/
experiments/runners: type `code` runs a program once per hyperparameter point). Each
point is a run; runs can also be created and reported from outside (`source`
"external"), the way MLflow's tracking works. A run keeps a metric history (one point
per metric name and step), log lines, and checkpoint files.

Statuses beyond the document's filter lists: `paused` for an experiment and
`cancelled` for a run.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

import msgspec

from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind

# A JSON object as the caller sent it (an experiment's config, a run's hyperparameters):
# its values are any JSON, which msgspec cannot name as a recursive alias.
JsonObject: TypeAlias = dict[str, Any]


class ExperimentStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (ExperimentStatus.COMPLETED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class Action(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    CLONE = "clone"


# The state machine: what each status allows. Clone works from any status.
ALLOWED_ACTIONS: dict[ExperimentStatus, tuple[Action, ...]] = {
    ExperimentStatus.PENDING: (Action.START, Action.CANCEL, Action.CLONE),
    ExperimentStatus.RUNNING: (Action.PAUSE, Action.CANCEL, Action.CLONE),
    ExperimentStatus.PAUSED: (Action.RESUME, Action.CANCEL, Action.CLONE),
    ExperimentStatus.COMPLETED: (Action.CLONE,),
    ExperimentStatus.FAILED: (Action.CLONE,),
    ExperimentStatus.CANCELLED: (Action.CLONE,),
}


def allowed_actions(status: ExperimentStatus) -> tuple[Action, ...]:
    return ALLOWED_ACTIONS[status]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARNING: 30, LogLevel.ERROR: 40}


class RunSource(StrEnum):
    PLAN = "plan"  # a point of the experiment's config, run by the appliance
    EXTERNAL = "external"  # created and reported from outside over the API


class OptimizationDirection(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Objective(msgspec.Struct, frozen=True, kw_only=True):
    """The metric that makes a run the experiment's best, and which way is better."""

    metric: str
    direction: OptimizationDirection = OptimizationDirection.MAXIMIZE


class Experiment(msgspec.Struct, kw_only=True):
    id: str
    owner: str
    name: str
    description: str = ""
    tags: list[str] = []
    status: ExperimentStatus = ExperimentStatus.PENDING
    # The config as validated and normalized (defaults filled in, the seed chosen).
    config: JsonObject
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # The program its runs execute (type `code`), fixed when it starts, and its hash.
    program_sha256: str | None = None

    @property
    def config_type(self) -> str:
        return str(self.config.get("type", ""))


class Run(msgspec.Struct, kw_only=True):
    id: str
    experiment_id: str
    owner: str
    source: RunSource = RunSource.PLAN
    # Its place in the experiment's plan (0-based); external runs follow the plan.
    position: int = 0
    status: RunStatus = RunStatus.PENDING
    # How many times it has been started after an interruption (a restart of the
    # appliance): 1 for the first try.
    attempt: int = 1
    progress: float = 0.0
    hyperparameters: JsonObject = {}
    # Labels to find and group runs by (services/experiments/run_tags.py): from the
    # config's run_tags, given when an external run is created, or added by its program.
    tags: list[str] = []
    # The latest value of each metric, and the step of the latest metrics line.
    metrics: dict[str, float] = {}
    step: int | None = None
    seed: int | None = None
    # What ran: the program's sha256, the runtime image, the sandbox engine, the language.
    code_sha256: str | None = None
    image: str | None = None
    engine: str | None = None
    language: str | None = None
    exit_code: int | None = None
    # Why it ended the way it did when not by the program's own exit: timeout, killed,
    # output_limit, memory_limit, engine_error, interrupted, ...
    reason: str | None = None
    error: str | None = None
    # What it has stored, counted against the per-run caps.
    metric_points: int = 0
    log_lines: int = 0
    log_bytes: int = 0
    checkpoint_count: int = 0
    checkpoint_bytes: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()


class MetricPoint(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    value: float
    timestamp: datetime


class RunLogLine(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime
    level: LogLevel
    message: str


class Checkpoint(msgspec.Struct, kw_only=True):
    id: str
    run_id: str
    # Its path under the run's checkpoints/ (a code run), or the name it was uploaded as.
    name: str
    size: int
    sha256: str
    # From the run's latest metrics line when the file was written: the `epoch` metric
    # if it reports one, else that line's step; and that line's metrics.
    epoch: int | None = None
    step: int | None = None
    metrics: dict[str, float] = {}
    created_at: datetime


# --- lists ----------------------------------------------------------------------------------

# What the experiment and run lists of the API take (core/listing.py; the http layer parses
# a request against them, store/listing.py turns the query into SQL).
EXPERIMENT_LIST = ListSpec(
    name="experiments",
    sorts=("name", "created_at", "updated_at", "status", "started_at", "completed_at"),
    default_sort="-created_at",
    filters=(
        FilterField(
            param="status", field="status", kind=ValueKind.CHOICE, choices=tuple(v.value for v in ExperimentStatus)
        ),
        FilterField(param="name", field="name", op=FilterOp.CONTAINS),
        FilterField(param="type", field="type"),
        FilterField(param="created_after", field="created_at", op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
        FilterField(param="created_before", field="created_at", op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
    ),
)

# "metrics.<name>" sorts by a run's latest value of that metric, runs without it last.
METRIC_SORT_PREFIX = "metrics."

RUN_LIST = ListSpec(
    name="runs",
    sorts=("created_at", "updated_at", "started_at", "completed_at", "status", "progress", "position"),
    default_sort="-created_at",
    filters=(
        FilterField(param="status", field="status", kind=ValueKind.CHOICE, choices=tuple(v.value for v in RunStatus)),
        FilterField(param="experiment_id", field="experiment_id"),
        FilterField(param="source", field="source", kind=ValueKind.CHOICE, choices=tuple(v.value for v in RunSource)),
        FilterField(param="tag", field="tags", op=FilterOp.HAS),
        FilterField(param="created_after", field="created_at", op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
        FilterField(param="created_before", field="created_at", op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
    ),
    sort_prefixes=(METRIC_SORT_PREFIX,),
)


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`level`: this level and the more severe ones. `since`: lines at or after it.
    `tail`: only the last that many of the lines that match."""

    level: LogLevel | None = None
    since: datetime | None = None
    tail: int | None = None
