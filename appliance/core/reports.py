"""Exports and reports (experiments-api.md, Export Endpoints): what an export or a
comparison report is made from, and the file it becomes.

Reports are made from a typed picture of each experiment (`ReportExperiment`: its
config, its runs with their final metrics and metric history, its telemetry series,
its stored statistical results), whoever supplies it, so the same rendering serves the
HTTP endpoints, the CLI and the TUI.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from appliance.core.statistics import StatisticalResult

MAX_COMPARED = 20  # experiments in one comparison report
MAX_METRICS = 20


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"
    HTML = "html"
    LATEX = "latex"


class LatexTemplate(StrEnum):
    PUBLICATION = "publication"  # a whole document: compiles with pdflatex as it is
    TABLE = "table"  # the table environment alone, to \input into a paper


class ExportPart(StrEnum):
    CONFIG = "config"
    RESULTS = "results"
    RUNS = "runs"
    TELEMETRY = "telemetry"


EXPORT_PARTS = tuple(p.value for p in ExportPart)


class MetricPoint(msgspec.Struct, frozen=True):
    step: int
    value: float


class ReportRun(msgspec.Struct, kw_only=True):
    id: str
    status: str
    hyperparameters: dict[str, Any] = {}
    tags: list[str] = []
    metrics: dict[str, float] = {}  # each metric's final value
    history: dict[str, list[MetricPoint]] = {}  # each metric over steps
    started_at: datetime | None = None
    completed_at: datetime | None = None


class TelemetryPoint(msgspec.Struct, frozen=True):
    """One value of a telemetry series: a measurement of an event name, averaged over
    the events of a time bucket starting at `timestamp`."""

    timestamp: datetime
    series: str  # "<event name>.<measurement>": "crucible.model.inference.duration_ms"
    value: float
    count: int | None = None  # the events averaged; None when not from stored events


class ReportExperiment(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str = ""
    status: str
    config: dict[str, Any] = {}
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runs: list[ReportRun] = []
    telemetry: list[TelemetryPoint] = []
    results: list[StatisticalResult] = []


class ComparisonOptions(msgspec.Struct, kw_only=True):
    metrics: list[str] | None = None  # default: every metric the experiments' runs report
    baseline: str | None = None  # the experiment the others are tested against; default the first
    alpha: float = 0.05
    confidence_level: float = 0.95
    title: str | None = None


class MetricSummary(msgspec.Struct, kw_only=True):
    """One metric of one experiment over its completed runs, and how it compares with
    the baseline's (Welch's t-test, Holm-adjusted over the experiments compared)."""

    experiment_id: str
    metric: str
    n: int
    mean: float | None
    std_dev: float | None
    confidence_interval: list[float] | None
    p_value: float | None = None  # None for the baseline, or when a test does not apply
    adjusted_p_value: float | None = None
    mark: str = ""  # "*" p < .05, "**" p < .01, "***" p < .001 (adjusted), "" else
    note: str | None = None  # why there is no test


class Comparison(msgspec.Struct, kw_only=True):
    title: str
    baseline: str
    metrics: list[str]
    alpha: float
    confidence_level: float
    experiments: list[ReportExperiment]
    summaries: list[MetricSummary]  # experiment-major, metric-minor
    generated_at: datetime

    def summary(self, experiment_id: str, metric: str) -> MetricSummary | None:
        return next((s for s in self.summaries if s.experiment_id == experiment_id and s.metric == metric), None)


class ExportFile(msgspec.Struct, kw_only=True):
    filename: str
    media_type: str
    content: bytes
