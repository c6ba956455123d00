"""`POST /api/v1/experiments/:id/export` and `POST /api/v1/export/comparison`
(experiments-api.md, Export Endpoints): the file itself as the answer (with
Content-Disposition), counted against the export rate limit."""

from __future__ import annotations

import dataclasses

import msgspec
from litestar import Controller, Response, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema

from appliance.core.identity import Identity
from appliance.core.reports import ComparisonOptions, ExportFile
from appliance.http.error_docs import errors
from appliance.services.reports.service import ComparisonRequest, ReportService

EXPORT_ERRORS = {"rate_bucket": "export", **errors(403, 404)}


class ExportInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: str = "json"  # json or csv
    # json: any of config, results, runs, telemetry (default all); csv: one table,
    # runs (default), results or telemetry.
    include: list[str] | None = None


class ComparisonInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    experiment_ids: list[str]
    format: str = "html"  # json, csv, markdown, html or latex
    template: str = "publication"  # latex: publication (a whole document) or table
    metrics: list[str] | None = None  # default: every metric the runs report
    baseline: str | None = None  # the experiment the others are tested against; default the first
    alpha: float = 0.05
    confidence_level: float = 0.95
    title: str | None = None


def file_response(found: ExportFile) -> Response[bytes]:
    return Response(
        found.content,
        # Litestar adds "; charset=utf-8" to a text/ type itself.
        media_type=found.media_type.split(";")[0],
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


JSON_FILE = Schema(type=OpenAPIType.OBJECT, description="the export as one JSON document")
TEXT_FILE = Schema(type=OpenAPIType.STRING, description="the file's text")


def _file_content(*text_types: str) -> dict[str, OpenAPIMediaType]:
    return {
        "application/json": OpenAPIMediaType(schema=JSON_FILE),
        **{media_type: OpenAPIMediaType(schema=TEXT_FILE) for media_type in text_types},
    }


@dataclasses.dataclass
class ExperimentExportOperation(Operation):
    """The 200 is the file: a JSON document or CSV text, as `format` asks."""

    def __post_init__(self) -> None:
        found = (self.responses or {}).get("200")
        if isinstance(found, OpenAPIResponse):
            found.content = _file_content("text/csv")


@dataclasses.dataclass
class ComparisonOperation(Operation):
    """The 200 is the report: JSON, or CSV, Markdown, HTML or LaTeX text."""

    def __post_init__(self) -> None:
        found = (self.responses or {}).get("200")
        if isinstance(found, OpenAPIResponse):
            found.content = _file_content("text/csv", "text/markdown", "text/html", "application/x-latex")


class ExperimentExportController(Controller):
    path = "/api/v1/experiments/{experiment_id:str}/export"
    tags = ["exports"]

    @post(
        "/",
        status_code=200,
        opt=EXPORT_ERRORS,
        summary="Export an experiment (json or csv)",
        operation_class=ExperimentExportOperation,
    )
    async def export_experiment(
        self, reports: ReportService, identity: Identity, experiment_id: str, data: ExportInput
    ) -> Response[bytes]:
        return file_response(await reports.export_experiment(identity, experiment_id, data.format, data.include))


class ComparisonController(Controller):
    path = "/api/v1/export/comparison"
    tags = ["exports"]

    @post(
        "/",
        status_code=200,
        opt=EXPORT_ERRORS,
        summary="A comparison report across experiments",
        operation_class=ComparisonOperation,
    )
    async def export_comparison(
        self, reports: ReportService, identity: Identity, data: ComparisonInput
    ) -> Response[bytes]:
        request = ComparisonRequest(
            experiment_ids=data.experiment_ids,
            format=data.format,
            template=data.template,
            options=ComparisonOptions(
                metrics=data.metrics,
                baseline=data.baseline,
                alpha=data.alpha,
                confidence_level=data.confidence_level,
                title=data.title,
            ),
        )
        return file_response(await reports.compare(identity, request))
