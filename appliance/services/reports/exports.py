"""One experiment as a file: JSON with the parts asked for (config, results, runs with
their metric history, telemetry), or CSV, one table: runs (one row per run, a column per
hyperparameter and metric), results or telemetry."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from appliance.core.clock import iso_z, utc_now_ms
from appliance.core.reports import ExportPart, ReportExperiment, ReportRun, TelemetryPoint
from appliance.core.statistics import StatisticalResultView, result_view


class _Header(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str
    status: str
    # iso_z, as the API writes times (msgspec would drop a zero fraction)
    created_at: str
    started_at: str | None
    completed_at: str | None


class _TelemetryRow(msgspec.Struct, kw_only=True):
    timestamp: str  # iso_z, as above
    series: str
    value: float
    count: int | None


class ExperimentDocument(msgspec.Struct, kw_only=True, omit_defaults=True):
    experiment: _Header
    exported_at: str
    config: dict[str, Any] | None = None
    results: list[StatisticalResultView] | None = None
    runs: list[ReportRun] | None = None
    telemetry: list[_TelemetryRow] | None = None


def _telemetry_row(point: TelemetryPoint) -> _TelemetryRow:
    return _TelemetryRow(timestamp=iso_z(point.timestamp), series=point.series, value=point.value, count=point.count)


def experiment_json(experiment: ReportExperiment, parts: set[ExportPart]) -> bytes:
    document = ExperimentDocument(
        experiment=_Header(
            id=experiment.id,
            name=experiment.name,
            description=experiment.description,
            status=experiment.status,
            created_at=iso_z(experiment.created_at),
            started_at=iso_z(experiment.started_at),
            completed_at=iso_z(experiment.completed_at),
        ),
        exported_at=iso_z(utc_now_ms()),
        config=experiment.config if ExportPart.CONFIG in parts else None,
        results=[result_view(r) for r in experiment.results] if ExportPart.RESULTS in parts else None,
        runs=experiment.runs if ExportPart.RUNS in parts else None,
        telemetry=[_telemetry_row(p) for p in experiment.telemetry] if ExportPart.TELEMETRY in parts else None,
    )
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return str(value)
    return msgspec.json.encode(value).decode()


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def runs_csv(experiment: ReportExperiment) -> str:
    parameters = sorted({k for run in experiment.runs for k in run.hyperparameters})
    metrics = sorted({k for run in experiment.runs for k in run.metrics})
    header = [
        "run_id",
        "status",
        "started_at",
        "completed_at",
        *(f"hyperparameters.{k}" for k in parameters),
        "tags",
        *(f"metrics.{k}" for k in metrics),
    ]
    rows = [
        [
            run.id,
            run.status,
            iso_z(run.started_at) or "",
            iso_z(run.completed_at) or "",
            *(_scalar(run.hyperparameters.get(k)) for k in parameters),
            " ".join(run.tags),  # a tag holds no space, so one cell keeps them all
            *(_scalar(run.metrics.get(k)) for k in metrics),
        ]
        for run in experiment.runs
    ]
    return _table(header, rows)


def results_csv(experiment: ReportExperiment) -> str:
    header = [
        "id",
        "test_type",
        "metric",
        "groups",
        "p_value",
        "effect_size",
        "effect_size_type",
        "ci_low",
        "ci_high",
        "significance",
        "effect_magnitude",
        "created_at",
    ]
    rows = []
    for result in experiment.results:
        view = result_view(result)
        low, high = view.confidence_interval or (None, None)
        rows.append(
            [
                view.id,
                view.test_type,
                view.metric or "",
                ";".join(view.groups),
                _scalar(view.p_value),
                _scalar(view.effect_size),
                view.effect_size_type,
                _scalar(low),
                _scalar(high),
                view.interpretation.significance if view.interpretation else "",
                view.interpretation.effect_magnitude if view.interpretation else "",
                view.created_at,
            ]
        )
    return _table(header, rows)


def telemetry_csv(experiment: ReportExperiment) -> str:
    rows = [[iso_z(p.timestamp), p.series, _scalar(p.value), _scalar(p.count)] for p in experiment.telemetry]
    return _table(["timestamp", "series", "value", "count"], rows)


CSV_TABLES = {ExportPart.RUNS: runs_csv, ExportPart.RESULTS: results_csv, ExportPart.TELEMETRY: telemetry_csv}
