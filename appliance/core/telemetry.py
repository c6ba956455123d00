"""Telemetry (experiments-api.md, Telemetry Endpoints): events, what a query of them
asks, and the names of the events the appliance records itself.

An event is a name as a list of segments (stored dotted: "crucible.model.inference"),
measurements (finite numbers by name), metadata (any JSON object; a string
`experiment_id` in it ties the event to an experiment) and a timestamp.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from appliance.core.clock import iso_z

EVENT_ID_PREFIX = "evt_"
EXPORT_ID_PREFIX = "texp_"

# A name segment and a measurement name: no dots, which join segments and paths.
NAME_SEGMENT = re.compile(r"^[A-Za-z0-9_\-:]{1,64}$")
MEASUREMENT_NAME = re.compile(r"^[A-Za-z0-9_\-:]{1,64}$")
# A metadata key a query names (group_by, export fields): dot-separated plain keys.
METADATA_PATH = re.compile(r"^[A-Za-z0-9_\-:]{1,128}(\.[A-Za-z0-9_\-:]{1,128}){0,7}$")
MAX_NAME_SEGMENTS = 8
MAX_METADATA_KEY_CHARS = 256
EXPERIMENT_KEY = "experiment_id"

MS_PER_SECOND = 1000
HOUR_SECONDS = 3600


def event_id(rowid: int) -> str:
    return f"{EVENT_ID_PREFIX}{rowid}"


def event_rowid(text: str) -> int | None:
    if not text.startswith(EVENT_ID_PREFIX) or not text[len(EVENT_ID_PREFIX) :].isdigit():
        return None
    return int(text[len(EVENT_ID_PREFIX) :])


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the API speaks UTC
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_of_ms(ms: int) -> str:
    return iso_z(from_ms(ms))


class Aggregation(StrEnum):
    COUNT = "count"
    AVG = "avg"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    P50 = "p50"
    P95 = "p95"
    P99 = "p99"

    @property
    def quantile(self) -> float | None:
        return {"p50": 0.5, "p95": 0.95, "p99": 0.99}.get(self.value)


class Interval(StrEnum):
    MINUTE = "1m"
    FIVE_MINUTES = "5m"
    HOUR = "1h"
    DAY = "1d"

    @property
    def seconds(self) -> int:
        return {"1m": 60, "5m": 300, "1h": 3600, "1d": 86_400}[self.value]


def interval_text(seconds: int) -> str:
    """`1h`, `90m`, `2d`, `45s`: a bucket width as the answer names it."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class TelemetryLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one ingest may hold (settings telemetry_*)."""

    max_batch_events: int = 5000
    max_event_bytes: int = 64 * 1024  # measurements and metadata as JSON, together
    max_metadata_depth: int = 8
    max_measurements: int = 100
    max_past_seconds: int = 365 * 86_400
    max_future_seconds: int = 300


# The shapes the decoder itself checks (in C, for every event of a batch).
NameSegment = Annotated[str, msgspec.Meta(pattern=NAME_SEGMENT.pattern)]
MeasurementName = Annotated[str, msgspec.Meta(pattern=MEASUREMENT_NAME.pattern)]
NAME_RULE = "1 to 64 letters, digits, '_', '-' or ':'"


class EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One event of POST /telemetry/events, as decoded. JSON has no NaN or infinity, and
    the decoder refuses a number past a double's range, so every measurement is finite."""

    event_name: Annotated[list[NameSegment], msgspec.Meta(min_length=1, max_length=MAX_NAME_SEGMENTS)]
    # int | float: whole numbers stay whole when read back.
    measurements: dict[MeasurementName, int | float] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: datetime | None = None  # absent: when it arrived


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """An event of a batch that was not stored: its place in the batch and why."""

    index: int
    reason: str
    field: str | None = None


class IngestBatch(msgspec.Struct, kw_only=True):
    """Accepted events ready to store: rows (ts ms, dotted name, owner, experiment id,
    measurements JSON, metadata JSON) and each row's measurements (for the rollups)."""

    rows: list[tuple[int, str, str, str | None, str, str]]
    values: list[dict[str, int | float]]
    # Set by the store once inserted: the rowid of the first row (the rest follow it, one
    # writer inserting them together), so what was stored can be told with its ids.
    first_rowid: int | None = None


class IngestResult(msgspec.Struct, kw_only=True):
    accepted: int
    rejected: int
    rejections: list[Rejection]


class StoredEvent(msgspec.Struct, kw_only=True):
    """An event as read back; measurements and metadata stay the stored JSON."""

    id: str
    event_name: list[str]
    measurements: msgspec.Raw
    metadata: msgspec.Raw
    timestamp: datetime


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a query covers. Names are dotted; a prefix matches the name and
    every name under it ("crucible.model" takes "crucible.model.inference")."""

    names: tuple[str, ...] = ()
    name_prefixes: tuple[str, ...] = ()
    experiment_id: str | None = None
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # exclusive
    owner: str | None = None  # None: every owner's (an admin)

    @property
    def by_name(self) -> bool:
        return bool(self.names or self.name_prefixes)


def parse_name_filter(text: str) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """`filter[event_name]`: dotted names, comma-separated; `a.b.*` takes `a.b` and every
    name under it. Returns (names, prefixes, problem)."""
    names: list[str] = []
    prefixes: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        prefix = part.endswith(".*")
        dotted = part[:-2] if prefix else part
        segments = dotted.split(".")
        if not 1 <= len(segments) <= MAX_NAME_SEGMENTS or not all(NAME_SEGMENT.match(s) for s in segments):
            return (), (), f"{part[:80]!r} is not a dotted event name (crucible.model.inference, or crucible.model.*)"
        (prefixes if prefix else names).append(dotted)
    if not names and not prefixes:
        return (), (), "must not be empty"
    return tuple(names), tuple(prefixes), None


class GroupKind(StrEnum):
    EVENT_NAME = "event_name"
    EXPERIMENT = "experiment_id"
    METADATA = "metadata"


class GroupBy(msgspec.Struct, frozen=True):
    kind: GroupKind
    path: str = ""  # metadata: the dotted path inside metadata

    @property
    def text(self) -> str:
        return f"metadata.{self.path}" if self.kind is GroupKind.METADATA else self.kind.value


def parse_group_by(text: str) -> GroupBy | None:
    """`event_name`, `experiment_id`, or a metadata key (`model`, `metadata.model`,
    `metadata.run.seed`); None when it names none of them."""
    text = text.strip()
    if text in (GroupKind.EVENT_NAME.value, GroupKind.EXPERIMENT.value):
        return GroupBy(GroupKind(text))
    path = text.removeprefix("metadata.")
    if not METADATA_PATH.match(path):
        return None
    if path == EXPERIMENT_KEY:
        return GroupBy(GroupKind.EXPERIMENT)
    return GroupBy(GroupKind.METADATA, path)


class AggregateQuery(msgspec.Struct, frozen=True, kw_only=True):
    agg: Aggregation
    metric: str | None  # a measurement name; None: the events themselves (count only)
    filter: EventFilter
    interval_seconds: int | None = None  # None: one value over the whole range
    group_by: GroupBy | None = None


class AggregatePoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    timestamp: datetime | None = None  # the bucket's start; absent without an interval
    group: Any = None  # the group's value, with group_by
    value: float | None
    count: int  # how many values (events, for count) the bucket holds


class AggregateAnswer(msgspec.Struct, kw_only=True):
    points: list[AggregatePoint]
    interval_seconds: int | None
    exact: bool  # False: percentiles from the sketch (within its documented error)


# --- export ---------------------------------------------------------------------------------


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


EXPORT_BASE_FIELDS = ("id", "timestamp", "event_name", "experiment_id", "measurements", "metadata")
DEFAULT_EXPORT_FIELDS = ("id", "timestamp", "event_name", "measurements", "metadata")


def export_field_problem(field: str) -> str | None:
    """What is wrong with an export field name, or None: a base field, or a dotted
    path into measurements or metadata."""
    if field in EXPORT_BASE_FIELDS:
        return None
    head, dot, rest = field.partition(".")
    if head == "measurements" and dot and MEASUREMENT_NAME.match(rest):
        return None
    if head == "metadata" and dot and METADATA_PATH.match(rest):
        return None
    return (
        f"{field!r} is not a field: use {', '.join(EXPORT_BASE_FIELDS)}, "
        "measurements.<name> or metadata.<key>[.<key>...]"
    )


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ExportSpec(msgspec.Struct, frozen=True, kw_only=True):
    format: ExportFormat
    filter: EventFilter
    fields: tuple[str, ...]


class ExportJob(msgspec.Struct, kw_only=True):
    id: str
    owner: str
    status: ExportStatus
    format: ExportFormat
    file: str  # name inside DATA_DIR/exports
    rows: int
    bytes: int
    estimated_rows: int
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None


# --- events the appliance records itself ----------------------------------------------------

# The first segment of the appliance's own event names: POST /telemetry/events refuses
# it, so what the dashboards and model statistics read is what the appliance recorded.
RESERVED_SEGMENT = "appliance"

# Each evaluation (POST /api/eval, batches) and each execution (POST /api/execute,
# /ws/execute) that reaches its final status. Measurements: execution_time_ms,
# memory_used_bytes, queue_wait_ms (those known); metadata: language, engine, status,
# reason, owner, kind ("eval" or "execute"), eval_id.
EVALUATION_COMPLETED = ("appliance", "evaluation", "completed")
EXECUTION_COMPLETED = ("appliance", "execution", "completed")

# Each call to a model of the registry (the LLM evaluation issues record them):
# measurements latency_ms, tokens_in, tokens_out, cost; metadata model_id, provider,
# status ("ok" or "error") and, for errors, error_kind (experiments-api.md's kinds:
# "timeout", "rate_limit", "server_error", or another short word). GET
# /api/v1/models/:id/statistics reads these.
MODEL_CALL = ("appliance", "model", "call")
MODEL_CALL_NAME = ".".join(MODEL_CALL)
MODEL_CALL_OK = "ok"
