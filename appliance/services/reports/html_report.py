"""A comparison as one self-contained HTML file: the table of means, confidence intervals
and marks, the charts a reader wants (each metric per experiment with error bars, each
metric over steps, each telemetry series over time) as inline SVG, and the stored
tests' results. No script and no external reference: it opens offline, anywhere."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from appliance.core.clock import iso_z
from appliance.core.reports import Comparison, ReportExperiment
from appliance.core.statistics import result_view
from appliance.services.reports import svg
from appliance.services.reports.tables import cell, legend

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; } th, td { padding: .3rem .7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; } tbody tr:last-child td { border-bottom: 2px solid #444; }
.legend-note, .meta { color: #555; font-size: .9rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
svg.chart { max-width: 100%; height: auto; background: #fff; border: 1px solid #eee; }
.chart-title { font-size: 14px; font-weight: 600; } .tick, .legend { font-size: 11px; fill: #444; }
.axis-name { font-size: 12px; fill: #222; } .grid { stroke: #eee; } .axis { stroke: #444; }
.error-bar { stroke: #111; stroke-width: 1.5; fill: none; } .line { fill: none; stroke-width: 2; }
"""


def _steps(experiment: ReportExperiment, metric: str) -> list[svg.Point]:
    """The metric's mean over the experiment's runs at each step."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in experiment.runs:
        for point in run.history.get(metric, []):
            by_step[point.step].append(point.value)
    return [(float(step), sum(v) / len(v)) for step, v in sorted(by_step.items())]


def _telemetry(experiment: ReportExperiment, series: str) -> list[svg.Point]:
    return [(p.timestamp.timestamp(), p.value) for p in experiment.telemetry if p.series == series]


def _table(comparison: Comparison) -> str:
    head = "".join(f"<th>{escape(m)}</th>" for m in comparison.metrics)
    rows = []
    for experiment in comparison.experiments:
        name = escape(experiment.name) + (" <em>(baseline)</em>" if experiment.id == comparison.baseline else "")
        completed = sum(1 for r in experiment.runs if r.status == "completed")
        cells = "".join(f"<td>{escape(cell(comparison.summary(experiment.id, m)))}</td>" for m in comparison.metrics)
        rows.append(f"<tr><td>{name}</td><td>{completed}</td>{cells}</tr>")
    return (
        f"<table><thead><tr><th>Experiment</th><th>Runs</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _charts(comparison: Comparison) -> list[str]:
    sections = []
    bars = []
    for metric in comparison.metrics:
        points = []
        for experiment in comparison.experiments:
            summary = comparison.summary(experiment.id, metric)
            if summary is not None and summary.mean is not None:
                points.append((experiment.name, summary.mean, summary.confidence_interval))
        if points:
            bars.append(svg.bar_chart(f"{metric} per experiment", metric, points))
    if bars:
        sections.append(f"<h2>Each metric per experiment</h2><div class='charts'>{''.join(bars)}</div>")
    lines = []
    for metric in comparison.metrics:
        series = [(e.name, _steps(e, metric)) for e in comparison.experiments]
        series = [(name, points) for name, points in series if points]
        if series:
            lines.append(svg.line_chart(f"{metric} over steps", metric, "step", series, time_axis=False))
    if lines:
        sections.append(f"<h2>Metrics over steps</h2><div class='charts'>{''.join(lines)}</div>")
    names = sorted({p.series for e in comparison.experiments for p in e.telemetry})
    telemetry = []
    for name in names:
        series = [(e.name, _telemetry(e, name)) for e in comparison.experiments]
        series = [(label, points) for label, points in series if points]
        telemetry.append(svg.line_chart(f"{name} over time", name, "time (UTC)", series, time_axis=True))
    if telemetry:
        sections.append(f"<h2>Telemetry over time</h2><div class='charts'>{''.join(telemetry)}</div>")
    return sections


def _results(comparison: Comparison) -> str:
    items = []
    for experiment in comparison.experiments:
        for result in experiment.results:
            view = result_view(result)
            sentence = view.interpretation.practical_significance if view.interpretation else view.method
            items.append(
                f"<li><strong>{escape(experiment.name)}</strong>, {escape(view.test_type)} on "
                f"{escape(view.metric or 'inline data')} ({escape(', '.join(view.groups))}): {escape(sentence)}</li>"
            )
    return f"<h2>Statistical tests</h2><ul>{''.join(items)}</ul>" if items else ""


def comparison_html(comparison: Comparison) -> str:
    names = {e.id: e.name for e in comparison.experiments}
    configs = "".join(
        f"<li><strong>{escape(e.name)}</strong> ({escape(e.id)}, {escape(e.status)}): {len(e.runs)} runs</li>"
        for e in comparison.experiments
    )
    body = [
        f"<h1>{escape(comparison.title)}</h1>",
        f"<p class='meta'>Generated {iso_z(comparison.generated_at)}.</p>",
        f"<ul>{configs}</ul>",
        "<h2>Results</h2>",
        _table(comparison),
        f"<p class='legend-note'>{escape(legend(comparison, names[comparison.baseline]))}</p>",
        *_charts(comparison),
        _results(comparison),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{escape(comparison.title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(part for part in body if part) + "\n</body></html>\n"
    )
