"""TelemetryService: reading events (lists, aggregates), deleting an experiment's, and
the model registry's call statistics.

Reading needs `read`, deleting `execute`. A key sees the events its owner sent (and
the appliance's own events about its owner's evaluations); an admin sees every event.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import msgspec

from appliance.core.errors import ValidationError, invalid_fields
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.listing import Filter, FilterOp, ListPage, ListQuery, Position
from appliance.core.models import ModelStatistics, StatisticsPeriod
from appliance.core.reports import TelemetryPoint
from appliance.core.telemetry import (
    EVENT_ID_PREFIX,
    AggregateAnswer,
    AggregateQuery,
    Aggregation,
    EventFilter,
    GroupBy,
    StoredEvent,
    event_id,
    event_rowid,
    parse_name_filter,
    to_ms,
)
from appliance.services.access.auth import require_permission
from appliance.store.telemetry.store import TelemetryStore, TooManyRows

# The list fields of GET /telemetry/events and its filters' fields.
TIMESTAMP = "timestamp"
EVENT_NAME = "event_name"
EXPERIMENT_ID = "experiment_id"


class QueryLimits(msgspec.Struct, frozen=True, kw_only=True):
    exact_max_rows: int = 1_000_000  # events an exact aggregate may read
    max_points: int = 10_000  # buckets (times groups) one aggregate may answer


class AggregateRequest(msgspec.Struct, frozen=True, kw_only=True):
    agg: Aggregation
    metric: str | None
    filters: tuple[Filter, ...]
    interval_seconds: int | None = None
    points: int | None = None
    group_by: GroupBy | None = None


def visible_owner(identity: Identity) -> str | None:
    """Whose events `identity` reads: its owner's; None (everyone's) for an admin."""
    return None if identity.is_admin else identity.owner


def event_filter(filters: tuple[Filter, ...], identity: Identity) -> EventFilter:
    """The filters of a request (fields event_name, experiment_id, timestamp), scoped to
    what `identity` may see."""
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    experiment: str | None = None
    after: int | None = None
    before: int | None = None
    for item in filters:
        value = str(item.values[0]) if item.values else ""
        if item.field == EVENT_NAME:
            names, prefixes, problem = parse_name_filter(",".join(str(v) for v in item.values))
            if problem:
                raise invalid_fields({"filter[event_name]": [problem]})
        elif item.field == EXPERIMENT_ID:
            experiment = value
        elif item.field == TIMESTAMP and item.op is FilterOp.AT_OR_AFTER:
            after = to_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        elif item.field == TIMESTAMP and item.op is FilterOp.BEFORE:
            before = to_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return EventFilter(
        names=names,
        name_prefixes=prefixes,
        experiment_id=experiment,
        after_ms=after,
        before_ms=before,
        owner=visible_owner(identity),
    )


def _too_many(exc: TooManyRows) -> ValidationError:
    return invalid_fields(
        {
            "query": [
                f"an exact answer would read {exc.rows} events, more than telemetry_exact_max_rows ({exc.limit}): "
                "narrow filter[after]/filter[before], filter[event_name] or filter[experiment_id]; "
                "intervals of 1h or more over event names are answered from rollups without this limit"
            ]
        }
    )


# Bucket widths points=N rounds up to: whole minutes, whole hours past an hour, whole
# days past a day (the rollups answer whole hours).
def bucket_width(span_seconds: float, points: int, at_least: int = 60) -> int:
    raw = max(float(at_least), span_seconds / max(1, points))
    for unit in (86_400, 3600, 60):
        if raw >= unit:
            return int(math.ceil(raw / unit) * unit)
    return 60


class TelemetryService:
    def __init__(self, store: TelemetryStore, limits: QueryLimits) -> None:
        self._store = store
        self._limits = limits

    async def list_events(self, identity: Identity, query: ListQuery) -> ListPage[StoredEvent]:
        require_permission(identity, READ)
        f = event_filter(query.filters, identity)
        after = None
        if query.after is not None:
            seq = event_rowid(query.after.id)
            if seq is None or not isinstance(query.after.value, int):
                raise ValidationError("cursor: not a cursor of this list", details={"field": "cursor"})
            after = (query.after.value, seq)
        found, total = await self._store.page(
            f, descending=query.sort.descending, per_page=query.per_page, offset=query.offset, after=after
        )
        last = None if found.last is None else Position(value=found.last[0], id=event_id(found.last[1]))
        return ListPage(
            items=found.events,
            total=total,
            per_page=query.per_page,
            page=query.page,
            has_more=found.has_more,
            last=last,
        )

    async def aggregate(self, identity: Identity, request: AggregateRequest) -> AggregateAnswer:
        require_permission(identity, READ)
        if request.metric is None and request.agg is not Aggregation.COUNT:
            raise invalid_fields({"metric": [f"name the measurement to aggregate with {request.agg.value}"]})
        f = event_filter(request.filters, identity)
        interval = request.interval_seconds
        if request.points is not None:
            span = (f.after_ms, f.before_ms)
            if span[0] is None or span[1] is None:
                found = await self._store.span(f)
                if found is None:
                    return AggregateAnswer(points=[], interval_seconds=interval, exact=True)
                span = (span[0] if span[0] is not None else found[0], span[1] if span[1] is not None else found[1] + 1)
            assert span[0] is not None and span[1] is not None
            interval = bucket_width((span[1] - span[0]) / 1000, request.points, interval or 60)
            while math.ceil(span[1] / 1000 / interval) - math.floor(span[0] / 1000 / interval) > request.points:
                interval = bucket_width(interval * 1.0001 + 1, 1, interval + 1)
        query = AggregateQuery(
            agg=request.agg, metric=request.metric, filter=f, interval_seconds=interval, group_by=request.group_by
        )
        try:
            answer = await self._store.aggregate(query, self._limits.exact_max_rows)
        except TooManyRows as exc:
            raise _too_many(exc) from None
        if len(answer.points) > self._limits.max_points:
            raise invalid_fields(
                {
                    "interval": [
                        f"{len(answer.points)} buckets, more than telemetry_max_points ({self._limits.max_points}): "
                        "use points=N, a wider interval or a narrower range"
                    ]
                }
            )
        return answer

    async def experiment_series(
        self, identity: Identity, experiment_id: str, points: int, max_series: int, max_events: int
    ) -> list[TelemetryPoint]:
        """The experiment's events the caller may see as series over time: each
        measurement of each event name averaged over at most `points` buckets, the
        `max_series` fullest series; past `max_events` events, from a sample of about
        that many spread over the whole experiment."""
        require_permission(identity, READ)
        return await self._store.experiment_series(
            experiment_id, visible_owner(identity), points, max_series, max_events
        )

    async def delete_experiment_events(self, identity: Identity, experiment_id: str) -> int:
        """An experiment's events: a key's own owner's, every owner's for an admin."""
        require_permission(identity, EXECUTE)
        if not experiment_id.strip():
            raise invalid_fields({"filter[experiment_id]": ["name the experiment whose events to delete"]})
        return await self._store.delete_experiment(experiment_id, visible_owner(identity))


class TelemetryModelStatistics:
    """Model calls (event appliance.model.call) for the model registry's statistics."""

    def __init__(self, store: TelemetryStore) -> None:
        self._store = store

    async def model_statistics(self, model_id: str, period: StatisticsPeriod, until: datetime) -> ModelStatistics:
        since = until - timedelta(seconds=period.seconds)
        figures = await self._store.model_calls(model_id, since, until)
        if figures.calls == 0:
            return ModelStatistics(period=period.value)
        return ModelStatistics(
            period=period.value,
            total_requests=figures.calls,
            success_rate=figures.ok / figures.calls,
            avg_latency_ms=figures.avg_latency_ms,
            p99_latency_ms=figures.p99_latency_ms,
            total_tokens=figures.tokens,
            error_breakdown=figures.errors,
        )


__all__ = [
    "EVENT_ID_PREFIX",
    "AggregateRequest",
    "QueryLimits",
    "TelemetryModelStatistics",
    "TelemetryService",
    "visible_owner",
]
