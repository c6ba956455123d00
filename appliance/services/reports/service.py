"""ReportService: an experiment's export and comparison reports across experiments, as
files. Reading needs `read`; the experiments must be ones the caller may see (another
owner's is a 404). Where an experiment's picture comes from is `ExperimentData`
(runs and their metric history; telemetry series), so rendering never depends on it.
Telemetry series are read only for what shows them (an export that includes
telemetry, an HTML comparison)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Protocol

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import NotFound, invalid_fields
from appliance.core.identity import READ, Identity
from appliance.core.reports import (
    EXPORT_PARTS,
    MAX_COMPARED,
    ComparisonOptions,
    ExportFile,
    ExportFormat,
    ExportPart,
    LatexTemplate,
    ReportExperiment,
    ReportFormat,
    TelemetryPoint,
)
from appliance.services.access.auth import require_permission
from appliance.services.reports.comparison import compare
from appliance.services.reports.exports import CSV_TABLES, experiment_json
from appliance.services.reports.html_report import comparison_html
from appliance.services.reports.latex import comparison_latex
from appliance.services.reports.tables import comparison_csv, comparison_json, comparison_markdown
from appliance.services.statistics.service import StatisticsService
from appliance.store.experiment_tables import ExperimentReports

MEDIA_TYPES = {
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.MARKDOWN: "text/markdown; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.LATEX: "application/x-latex",
}
EXTENSIONS = {
    ReportFormat.JSON: "json",
    ReportFormat.CSV: "csv",
    ReportFormat.MARKDOWN: "md",
    ReportFormat.HTML: "html",
    ReportFormat.LATEX: "tex",
}
REPORT_FORMATS = tuple(f.value for f in ReportFormat)
EXPORT_FORMATS = tuple(f.value for f in ExportFormat)
LATEX_TEMPLATES = tuple(t.value for t in LatexTemplate)


# A report's telemetry: each series (event name and measurement) in at most this many
# buckets, at most this many series (the fullest), averaged over at most about this
# many events (a sample spread over the experiment past it: a chart needs no more, and
# the export stays within a few seconds of one telemetry reader).
TELEMETRY_POINTS = 200
TELEMETRY_SERIES = 20
TELEMETRY_EVENTS = 200_000


class ExperimentData(Protocol):
    async def experiment(self, identity: Identity, experiment_id: str, telemetry: bool) -> ReportExperiment:
        """The experiment with its runs (final metrics and metric history) and, with
        `telemetry`, its telemetry series; NotFound when there is none the caller may see."""
        ...


class ExperimentTelemetry(Protocol):
    async def experiment_series(
        self, identity: Identity, experiment_id: str, points: int, max_series: int, max_events: int
    ) -> list[TelemetryPoint]:
        """The experiment's events the caller may see, as series averaged per bucket."""
        ...


def _stamp() -> str:
    return utc_now().strftime("%Y%m%d-%H%M%S")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80] or "export"


def render_comparison(
    experiments: list[ReportExperiment],
    report_format: ReportFormat,
    template: LatexTemplate,
    options: ComparisonOptions,
) -> ExportFile:
    """The comparison file itself (pure: the HTTP endpoint, the CLI and the TUI all
    produce their files through it)."""
    comparison = compare(experiments, options)
    if report_format is ReportFormat.JSON:
        content = comparison_json(comparison)
    elif report_format is ReportFormat.CSV:
        content = comparison_csv(comparison).encode()
    elif report_format is ReportFormat.MARKDOWN:
        content = comparison_markdown(comparison).encode()
    elif report_format is ReportFormat.HTML:
        content = comparison_html(comparison).encode()
    else:
        content = comparison_latex(comparison, template).encode()
    name = f"comparison-{_safe('-'.join(e.id for e in experiments[:4]))}.{EXTENSIONS[report_format]}"
    return ExportFile(filename=name, media_type=MEDIA_TYPES[report_format], content=content)


def render_export(experiment: ReportExperiment, export_format: ExportFormat, parts: set[ExportPart]) -> ExportFile:
    stem = f"{_safe(experiment.id)}-{_stamp()}"
    if export_format is ExportFormat.JSON:
        return ExportFile(
            filename=f"{stem}.json",
            media_type=MEDIA_TYPES[ReportFormat.JSON],
            content=experiment_json(experiment, parts),
        )
    (part,) = parts
    return ExportFile(
        filename=f"{stem}-{part.value}.csv",
        media_type=MEDIA_TYPES[ReportFormat.CSV],
        content=CSV_TABLES[part](experiment).encode(),
    )


def export_parts(export_format: str, include: Sequence[str] | None) -> tuple[ExportFormat, set[ExportPart]]:
    problems: dict[str, list[str]] = {}
    if export_format not in EXPORT_FORMATS:
        problems["format"] = [f"must be one of {', '.join(EXPORT_FORMATS)}"]
    unknown = [p for p in include or [] if p not in EXPORT_PARTS]
    if unknown:
        problems["include"] = [f"{', '.join(map(repr, unknown))}: not one of {', '.join(EXPORT_PARTS)}"]
    if problems:
        raise invalid_fields(problems)
    chosen = ExportFormat(export_format)
    if chosen is ExportFormat.JSON:
        return chosen, {ExportPart(p) for p in include} if include else set(ExportPart)
    tables = [ExportPart(p) for p in include or [ExportPart.RUNS.value]]
    if len(set(tables)) != 1 or tables[0] not in CSV_TABLES:
        raise invalid_fields({"include": ["csv is one table: include exactly one of runs, results, telemetry"]})
    return chosen, {tables[0]}


class ComparisonRequest(msgspec.Struct, kw_only=True):
    experiment_ids: list[str]
    format: str = ReportFormat.HTML.value
    template: str = LatexTemplate.PUBLICATION.value
    options: ComparisonOptions = msgspec.field(default_factory=ComparisonOptions)


class ReportService:
    def __init__(self, experiments: ExperimentData, statistics: StatisticsService) -> None:
        self._experiments = experiments
        self._statistics = statistics

    async def _experiment(self, identity: Identity, experiment_id: str, telemetry: bool) -> ReportExperiment:
        experiment = await self._experiments.experiment(identity, experiment_id, telemetry)
        experiment.results = list(await self._statistics.of_experiment(identity, experiment_id))
        return experiment

    async def export_experiment(
        self, identity: Identity, experiment_id: str, export_format: str, include: Sequence[str] | None
    ) -> ExportFile:
        require_permission(identity, READ)
        chosen, parts = export_parts(export_format, include)
        experiment = await self._experiment(identity, experiment_id, ExportPart.TELEMETRY in parts)
        return await asyncio.to_thread(render_export, experiment, chosen, parts)

    async def compare(self, identity: Identity, request: ComparisonRequest) -> ExportFile:
        require_permission(identity, READ)
        problems: dict[str, list[str]] = {}
        ids = request.experiment_ids
        if not 1 <= len(ids) <= MAX_COMPARED:
            problems["experiment_ids"] = [f"name 1 to {MAX_COMPARED} experiments"]
        elif len(set(ids)) != len(ids):
            problems["experiment_ids"] = ["name each experiment once"]
        if request.format not in REPORT_FORMATS:
            problems["format"] = [f"must be one of {', '.join(REPORT_FORMATS)}"]
        if request.template not in LATEX_TEMPLATES:
            problems["template"] = [f"must be one of {', '.join(LATEX_TEMPLATES)} (latex)"]
        if problems:
            raise invalid_fields(problems)
        charts = request.format == ReportFormat.HTML.value
        experiments = [await self._experiment(identity, experiment_id, charts) for experiment_id in ids]
        return await asyncio.to_thread(
            render_comparison,
            experiments,
            ReportFormat(request.format),
            LatexTemplate(request.template),
            request.options,
        )


class StoredExperiments:
    """ExperimentData from the experiments' tables (store/experiment_tables.py) and the
    telemetry store (the experiment's events the caller may see)."""

    def __init__(self, reports: ExperimentReports, telemetry: ExperimentTelemetry) -> None:
        self._reports = reports
        self._telemetry = telemetry

    async def experiment(self, identity: Identity, experiment_id: str, telemetry: bool) -> ReportExperiment:
        found = await self._reports.find(experiment_id)
        if found is None or not identity.may_see(found[0]):
            raise NotFound(f"no experiment {experiment_id}")
        experiment = found[1]
        if telemetry:
            experiment.telemetry = await self._telemetry.experiment_series(
                identity, experiment_id, TELEMETRY_POINTS, TELEMETRY_SERIES, TELEMETRY_EVENTS
            )
        return experiment
