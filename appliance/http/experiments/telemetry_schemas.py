"""Request and response bodies of /api/v1/telemetry (experiments-api.md, Telemetry
Endpoints), field for field as documented, plus what the appliance adds (each ingest
rejection with its index and reason; an aggregate's `meta`; export jobs)."""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.core.clock import iso_z
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.telemetry import AggregatePoint, ExportJob, Rejection, StoredEvent
from appliance.http.experiments.envelope import Timestamp
from appliance.services.telemetry.service import EVENT_NAME, EXPERIMENT_ID, TIMESTAMP

EVENT_FILTERS = (
    FilterField(param="event_name", field=EVENT_NAME),
    FilterField(param="experiment_id", field=EXPERIMENT_ID),
    FilterField(param="after", field=TIMESTAMP, op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
    FilterField(param="before", field=TIMESTAMP, op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
)
EVENT_LIST = ListSpec(name="telemetry-events", sorts=(TIMESTAMP,), default_sort=f"-{TIMESTAMP}", filters=EVENT_FILTERS)
# GET /telemetry/aggregate takes the same filters (no list parameters).
AGGREGATE_FILTERS = ListSpec(
    name="telemetry-aggregate", sorts=(TIMESTAMP,), default_sort=TIMESTAMP, filters=EVENT_FILTERS
)
# DELETE /telemetry/events takes filter[experiment_id] alone.
DELETE_FILTERS = ListSpec(
    name="telemetry-delete", sorts=(TIMESTAMP,), default_sort=TIMESTAMP, filters=(EVENT_FILTERS[1],)
)


class IngestAnswer(msgspec.Struct, kw_only=True):
    accepted: int
    rejected: int
    # Each rejected event: its index in the batch, why, and the field at fault if one is.
    rejections: list[Rejection]


class EventBody(msgspec.Struct, kw_only=True):
    id: str
    event_name: list[str]
    measurements: msgspec.Raw  # as stored: the JSON object the event was sent with
    metadata: msgspec.Raw
    timestamp: Timestamp


def event_body(event: StoredEvent) -> EventBody:
    return EventBody(
        id=event.id,
        event_name=event.event_name,
        measurements=event.measurements,
        metadata=event.metadata,
        timestamp=iso_z(event.timestamp),
    )


class PointBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    timestamp: Timestamp | None = None  # the bucket's start; absent without an interval
    group: Any = None  # the group's value, with group_by
    value: float | None
    count: int  # how many values (events, for count) the bucket holds


def point_body(point: AggregatePoint) -> PointBody:
    return PointBody(
        timestamp=None if point.timestamp is None else iso_z(point.timestamp),
        group=point.group,
        value=point.value,
        count=point.count,
    )


class AggregateMeta(msgspec.Struct, kw_only=True):
    agg: str
    metric: str | None
    interval: str | None  # the bucket width (points=N picks it), e.g. "1h", "3h"
    group_by: str | None
    # False when percentiles come from the hourly sketches (within 0.5% of the value);
    # count, sum, avg, min and max are always exact.
    exact: bool


class AggregateBody(msgspec.Struct, kw_only=True):
    data: list[PointBody]
    meta: AggregateMeta


class ExportFilters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    event_name: str | None = None
    experiment_id: str | None = None
    after: str | None = None
    before: str | None = None


class ExportRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: str = "csv"
    filters: ExportFilters = msgspec.field(default_factory=ExportFilters)
    fields: list[str] | None = None
    # true: always a job; false: always streamed; absent: a job past telemetry_export_sync_max_rows
    run_async: bool | None = msgspec.field(default=None, name="async")


class ExportJobBody(msgspec.Struct, kw_only=True):
    id: str
    status: str
    format: str
    rows: int  # written so far
    estimated_rows: int
    progress: float  # rows / estimated_rows, 0..1 (1 once completed)
    bytes: int
    error: str | None
    created_at: Timestamp
    completed_at: Timestamp | None
    expires_at: Timestamp | None
    status_url: str
    download_url: str | None  # once completed


def export_job_body(job: ExportJob) -> ExportJobBody:
    done = job.status.value == "completed"
    progress = 1.0 if done else (min(0.99, job.rows / job.estimated_rows) if job.estimated_rows else 0.0)
    base = f"/api/v1/telemetry/export/{job.id}"
    return ExportJobBody(
        id=job.id,
        status=job.status.value,
        format=job.format.value,
        rows=job.rows,
        estimated_rows=job.estimated_rows,
        progress=progress,
        bytes=job.bytes,
        error=job.error,
        created_at=iso_z(job.created_at),
        completed_at=None if job.completed_at is None else iso_z(job.completed_at),
        expires_at=None if job.expires_at is None else iso_z(job.expires_at),
        status_url=base,
        download_url=f"{base}/download" if done else None,
    )
