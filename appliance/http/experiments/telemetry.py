"""`/api/v1/telemetry`: ingest, query, aggregate, export and delete events
(experiments-api.md, Telemetry Endpoints; docs/experiments-api.md#telemetry)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import File, Response, Stream

from appliance.core.clock import iso_z
from appliance.core.errors import ValidationError, invalid_fields
from appliance.core.identity import Identity
from appliance.core.listing import Filter, FilterOp
from appliance.core.telemetry import (
    DEFAULT_EXPORT_FIELDS,
    AggregateAnswer,
    Aggregation,
    ExportFormat,
    ExportSpec,
    GroupBy,
    Interval,
    export_field_problem,
    interval_text,
    parse_group_by,
)
from appliance.http.error_docs import errors
from appliance.http.experiments.envelope import Item, Page
from appliance.http.experiments.listing import ListRequest, list_parameters, parse_filters
from appliance.http.experiments.telemetry_openapi import DeleteEventsOperation, ExportOperation, IngestOperation
from appliance.http.experiments.telemetry_schemas import (
    AGGREGATE_FILTERS,
    DELETE_FILTERS,
    EVENT_LIST,
    AggregateBody,
    AggregateMeta,
    EventBody,
    ExportJobBody,
    ExportRequest,
    IngestAnswer,
    event_body,
    export_job_body,
    point_body,
)
from appliance.http.identity import TELEMETRY_EVENTS, charge
from appliance.services.telemetry.export import TelemetryExports
from appliance.services.telemetry.ingest import TelemetryIngest
from appliance.services.telemetry.service import (
    EVENT_NAME,
    EXPERIMENT_ID,
    TIMESTAMP,
    AggregateRequest,
    TelemetryService,
    event_filter,
)

Problems = dict[str, list[str]]
MAX_POINTS_PARAM = 10_000


def _choice(text: str | None, name: str, kind: type[Aggregation] | type[Interval], problems: Problems) -> Any:
    if text is None:
        return None
    try:
        return kind(text.strip())
    except ValueError:
        problems[name] = [f"must be one of {', '.join(k.value for k in kind)}, not {text!r}"]
        return None


def _group(text: str | None, problems: Problems) -> GroupBy | None:
    if text is None or not text.strip():
        return None
    found = parse_group_by(text)
    if found is None:
        problems["group_by"] = [f"{text!r}: group by event_name, experiment_id or a metadata key (metadata.model)"]
    return found


def _metric(text: str | None, name: str, problems: Problems) -> str | None:
    if text is None or not text.strip():
        return None
    value = text.strip().removeprefix("measurements.")
    if not value or "." in value or '"' in value or len(value) > 64:
        problems[name] = [f"{text!r} is not a measurement name"]
        return None
    return value


def _filters(request: Request[Any, Any, Any], spec: Any, problems: Problems) -> tuple[Filter, ...]:
    return parse_filters(spec, request, problems)


def _points(text: str | None, problems: Problems) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_POINTS_PARAM:
        problems["points"] = [f"must be a whole number from 1 to {MAX_POINTS_PARAM}, not {text!r}"]
        return None
    return value


def _meta(request: AggregateRequest, answer: AggregateAnswer) -> AggregateMeta:
    return AggregateMeta(
        agg=request.agg.value,
        metric=request.metric,
        interval=None if answer.interval_seconds is None else interval_text(answer.interval_seconds),
        group_by=None if request.group_by is None else request.group_by.text,
        exact=answer.exact,
    )


def _export_time(text: str | None, name: str, problems: Problems) -> str | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        problems[name] = [f"must be an ISO 8601 time (2024-01-15T10:30:00Z), not {text!r}"]
        return None
    return iso_z(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _export_spec(data: ExportRequest, identity: Identity) -> ExportSpec:
    problems: Problems = {}
    try:
        export_format = ExportFormat(data.format.strip().lower())
    except ValueError:
        problems["format"] = [f"must be csv or jsonl, not {data.format!r}"]
        export_format = ExportFormat.CSV
    fields = tuple(data.fields) if data.fields is not None else DEFAULT_EXPORT_FIELDS
    if not fields:
        problems["fields"] = ["name at least one field"]
    wrong = [p for p in (export_field_problem(f) for f in fields) if p]
    if wrong:
        problems["fields"] = wrong
    f = data.filters
    filters: list[Filter] = []
    if f.event_name is not None:
        filters.append(Filter(EVENT_NAME, FilterOp.EQUALS, (f.event_name,)))
    if f.experiment_id is not None:
        filters.append(Filter(EXPERIMENT_ID, FilterOp.EQUALS, (f.experiment_id,)))
    for name, op in (("after", FilterOp.AT_OR_AFTER), ("before", FilterOp.BEFORE)):
        moment = _export_time(getattr(f, name), f"filters.{name}", problems)
        if moment is not None:
            filters.append(Filter(TIMESTAMP, op, (moment,)))
    if problems:
        raise invalid_fields(problems)
    try:
        scoped = event_filter(tuple(filters), identity)
    except ValidationError as exc:  # a bad event name, said as the body's field
        raise invalid_fields({"filters.event_name": [exc.detail]}) from None
    return ExportSpec(format=export_format, filter=scoped, fields=fields)


class TelemetryController(Controller):
    path = "/api/v1/telemetry"
    tags = ["telemetry"]

    @post(
        "/events",
        status_code=202,
        opt={"rate_bucket": TELEMETRY_EVENTS, **errors(403, 413, 422)},
        operation_class=IngestOperation,
        summary="Ingest a batch of events",
        description="202 once the accepted events are committed; each rejected event with its index and reason.",
    )
    async def ingest(
        self, request: Request[Any, Any, Any], identity: Identity, telemetry_ingest: TelemetryIngest
    ) -> Item[IngestAnswer]:
        body = await request.body()
        result = await telemetry_ingest.ingest(identity, body, lambda n: charge(request, identity, TELEMETRY_EVENTS, n))
        return Item(IngestAnswer(accepted=result.accepted, rejected=result.rejected, rejections=result.rejections))

    @get(
        "/events",
        dependencies={"listing": list_parameters(EVENT_LIST)},
        summary="Query events, or aggregate them (agg, agg_field, group_by)",
        opt=errors(403),
    )
    async def query(
        self,
        telemetry: TelemetryService,
        identity: Identity,
        listing: ListRequest,
        agg: Annotated[str | None, Parameter(description="count, avg, sum, min, max (p50, p95, p99)")] = None,
        agg_field: Annotated[str | None, Parameter(description="the measurement to aggregate")] = None,
        group_by: Annotated[str | None, Parameter(description="event_name, experiment_id or a metadata key")] = None,
    ) -> Page[EventBody] | AggregateBody:
        if agg is None and (agg_field is not None or group_by is not None):
            raise invalid_fields({"agg": ["name the aggregation (count, avg, sum, min, max) for agg_field/group_by"]})
        if agg is None:
            return listing.page(await telemetry.list_events(identity, listing.query), event_body)
        problems: Problems = {}
        aggregation = _choice(agg, "agg", Aggregation, problems)
        request = AggregateRequest(
            agg=aggregation or Aggregation.COUNT,
            metric=_metric(agg_field, "agg_field", problems),
            filters=listing.query.filters,
            group_by=_group(group_by, problems),
        )
        if problems:
            raise invalid_fields(problems)
        answer = await telemetry.aggregate(identity, request)
        return AggregateBody(data=[point_body(p) for p in answer.points], meta=_meta(request, answer))

    @get("/aggregate", summary="Aggregate a measurement over time buckets", opt=errors(403))
    async def aggregate(
        self,
        request: Request[Any, Any, Any],
        telemetry: TelemetryService,
        identity: Identity,
        agg: Annotated[str, Parameter(description="count, avg, sum, min, max, p50, p95, p99")],
        metric: Annotated[str | None, Parameter(description="the measurement (not needed for count)")] = None,
        group_by: Annotated[str | None, Parameter(description="event_name, experiment_id or a metadata key")] = None,
        interval: Annotated[str | None, Parameter(description="1m, 5m, 1h or 1d (default 1h)")] = None,
        points: Annotated[str | None, Parameter(description="at most this many buckets over the range")] = None,
    ) -> AggregateBody:
        problems: Problems = {}
        aggregation = _choice(agg, "agg", Aggregation, problems)
        step = _choice(interval, "interval", Interval, problems)
        wanted = AggregateRequest(
            agg=aggregation or Aggregation.COUNT,
            metric=_metric(metric, "metric", problems),
            filters=_filters(request, AGGREGATE_FILTERS, problems),
            interval_seconds=step.seconds if step is not None else (None if points else Interval.HOUR.seconds),
            points=_points(points, problems),
            group_by=_group(group_by, problems),
        )
        if problems:
            raise invalid_fields(problems)
        answer = await telemetry.aggregate(identity, wanted)
        return AggregateBody(data=[point_body(p) for p in answer.points], meta=_meta(wanted, answer))

    @delete(
        "/events",
        status_code=204,
        summary="Delete an experiment's events (filter[experiment_id])",
        opt=errors(403, 422),
        operation_class=DeleteEventsOperation,
    )
    async def delete_events(
        self, request: Request[Any, Any, Any], telemetry: TelemetryService, identity: Identity
    ) -> None:
        problems: Problems = {}
        filters = _filters(request, DELETE_FILTERS, problems)
        if problems:
            raise invalid_fields(problems)
        experiment = next((str(f.values[0]) for f in filters if f.field == EXPERIMENT_ID and f.values), None)
        if experiment is None:
            raise invalid_fields({"filter[experiment_id]": ["name the experiment whose events to delete"]})
        await telemetry.delete_experiment_events(identity, experiment)

    @post(
        "/export",
        status_code=200,
        opt={"rate_bucket": "export", **errors(403)},
        operation_class=ExportOperation,
        responses={
            202: ResponseSpec(
                data_container=Item[ExportJobBody],
                description="The export became a job: its status (Location) and, once completed, its download.",
                generate_examples=False,
            )
        },
        summary="Export events as CSV or JSON lines (large exports become a job)",
        response_headers=[
            ResponseHeader(
                name="X-Export-Rows", description="events the export holds (estimate)", documentation_only=True
            )
        ],
    )
    async def export(
        self, telemetry_exports: TelemetryExports, identity: Identity, data: ExportRequest
    ) -> Stream | Response[Item[ExportJobBody]]:
        spec = _export_spec(data, identity)
        started = await telemetry_exports.begin(identity, spec, data.run_async)
        if started.job is not None:
            body = export_job_body(started.job)
            return Response(
                Item(body),
                status_code=202,
                headers={"Location": body.status_url, "X-Export-Rows": str(started.estimated_rows)},
            )
        return Stream(
            telemetry_exports.stream(spec),
            media_type=started.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{started.filename}"',
                "X-Export-Rows": str(started.estimated_rows),
            },
        )

    @get("/export/{export_id:str}", summary="An export job's status", opt=errors(403, 404))
    async def export_status(
        self, telemetry_exports: TelemetryExports, identity: Identity, export_id: str
    ) -> Item[ExportJobBody]:
        return Item(export_job_body(await telemetry_exports.job(identity, export_id)))

    @get("/export/{export_id:str}/download", summary="An export job's file", opt=errors(403, 404))
    async def export_download(self, telemetry_exports: TelemetryExports, identity: Identity, export_id: str) -> File:
        job, path = await telemetry_exports.download(identity, export_id)
        media = "text/csv" if job.format is ExportFormat.CSV else "application/x-ndjson"
        return File(path=path, filename=f"telemetry-{job.id}.{path.suffix.lstrip('.')}", media_type=media)
