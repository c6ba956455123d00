"""Experiments and their runs (experiments-api.md): the records, the state machine of an
experiment, and the typed queries their lists take.

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
from typing import Any, Generic, TypeAlias, TypeVar

import msgspec

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

T = TypeVar("T")

# A value a list can be sorted by, as the store compares it.
SortValue: TypeAlias = str | int | float | None


class ListCursor(msgspec.Struct, frozen=True, kw_only=True):
    """Where the previous page ended: the sort key and id of its last item (keyset
    pagination). The HTTP layer encodes it as the opaque `cursor`."""

    value: SortValue
    id: str


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    total: int  # every item the filters match, across pages
    has_more: bool
    # Set when `has_more`: the cursor of the next page.
    next_cursor: ListCursor | None = None


class ExperimentSort(StrEnum):
    NAME = "name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    STATUS = "status"


class ExperimentQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters, order and page of an experiment list. `owner=None`: every owner (the
    services set it to the caller's own unless the caller is an admin)."""

    owner: str | None = None
    status: ExperimentStatus | None = None
    name_contains: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: ExperimentSort = ExperimentSort.CREATED_AT
    descending: bool = True
    limit: int = 25
    offset: int = 0
    # Keyset pagination: with a cursor, `offset` is ignored.
    after: ListCursor | None = None


class RunSort(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    STARTED_AT = "started_at"
    COMPLETED_AT = "completed_at"
    STATUS = "status"
    PROGRESS = "progress"
    POSITION = "position"


class RunQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters, order and page of a run list. `sort_metric` (a metric name) sorts by the
    run's latest value of that metric, runs without it last; it overrides `sort`."""

    owner: str | None = None
    experiment_id: str | None = None
    status: RunStatus | None = None
    source: RunSource | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: RunSort = RunSort.CREATED_AT
    sort_metric: str | None = None
    descending: bool = True
    limit: int = 25
    offset: int = 0
    after: ListCursor | None = None


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`level`: this level and the more severe ones. `since`: lines at or after it.
    `tail`: only the last that many of the lines that match."""

    level: LogLevel | None = None
    since: datetime | None = None
    tail: int | None = None
