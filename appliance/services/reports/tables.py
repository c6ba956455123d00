"""A comparison as CSV (one row per experiment and metric), Markdown (a table, the
marks explained, the stored tests' sentences) and JSON."""

from __future__ import annotations

import csv
import io

import msgspec

from appliance.core.clock import iso_z
from appliance.core.reports import Comparison, MetricSummary
from appliance.core.statistics import result_view

CSV_COLUMNS = (
    "experiment_id",
    "experiment_name",
    "baseline",
    "metric",
    "n",
    "mean",
    "std_dev",
    "ci_low",
    "ci_high",
    "p_value",
    "adjusted_p_value",
    "significance",
    "note",
)


def number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def cell(summary: MetricSummary | None) -> str:
    """`0.892 [0.871, 0.913]**`: mean, confidence interval, mark."""
    if summary is None or summary.mean is None:
        return "–"
    text = number(summary.mean)
    if summary.confidence_interval:
        low, high = summary.confidence_interval
        text += f" [{number(low)}, {number(high)}]"
    return text + summary.mark


def legend(comparison: Comparison, baseline_name: str) -> str:
    return (
        f"Means over completed runs with {comparison.confidence_level:.0%} confidence intervals (t). "
        f"Marks: Welch's t-test against the baseline ({baseline_name}), p-values Holm-adjusted over the "
        "experiments compared per metric; * p < .05, ** p < .01, *** p < .001."
    )


def comparison_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    names = {e.id: e.name for e in comparison.experiments}
    for s in comparison.summaries:
        low, high = s.confidence_interval or (None, None)
        writer.writerow(
            [
                s.experiment_id,
                names[s.experiment_id],
                s.experiment_id == comparison.baseline,
                s.metric,
                s.n,
                number(s.mean, 10),
                number(s.std_dev, 10),
                number(low, 10),
                number(high, 10),
                number(s.p_value, 10),
                number(s.adjusted_p_value, 10),
                s.mark,
                s.note or "",
            ]
        )
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def comparison_markdown(comparison: Comparison) -> str:
    names = {e.id: e.name for e in comparison.experiments}
    lines = [f"# {_md(comparison.title)}", "", f"Generated {iso_z(comparison.generated_at)}.", ""]
    header = ["Experiment", "Runs", *comparison.metrics]
    lines += [
        "| " + " | ".join(map(_md, header)) + " |",
        "|" + "|".join(["---", "---:"] + ["---:"] * len(comparison.metrics)) + "|",
    ]
    for experiment in comparison.experiments:
        name = experiment.name + (" (baseline)" if experiment.id == comparison.baseline else "")
        completed = sum(1 for r in experiment.runs if r.status == "completed")
        cells = [cell(comparison.summary(experiment.id, m)) for m in comparison.metrics]
        lines.append("| " + " | ".join([_md(name), str(completed), *cells]) + " |")
    lines += ["", legend(comparison, names[comparison.baseline]), ""]
    results = [(e, r) for e in comparison.experiments for r in e.results]
    if results:
        lines += ["## Statistical tests", ""]
        for experiment, result in results:
            view = result_view(result)
            sentence = view.interpretation.practical_significance if view.interpretation else view.method
            lines.append(
                f"- **{_md(experiment.name)}**, {view.test_type} on {_md(view.metric or 'inline data')}: "
                f"{_md(sentence)}"
            )
        lines.append("")
    return "\n".join(lines)


class _ExperimentBrief(msgspec.Struct, kw_only=True):
    id: str
    name: str
    status: str
    config: dict[str, object]
    runs: int
    completed_runs: int


class _ComparisonDocument(msgspec.Struct, kw_only=True):
    title: str
    baseline: str
    metrics: list[str]
    alpha: float
    confidence_level: float
    generated_at: str
    experiments: list[_ExperimentBrief]
    summaries: list[MetricSummary]
    significance_marks: dict[str, str]


def comparison_json(comparison: Comparison) -> bytes:
    document = _ComparisonDocument(
        title=comparison.title,
        baseline=comparison.baseline,
        metrics=comparison.metrics,
        alpha=comparison.alpha,
        confidence_level=comparison.confidence_level,
        generated_at=iso_z(comparison.generated_at),
        experiments=[
            _ExperimentBrief(
                id=e.id,
                name=e.name,
                status=e.status,
                config=e.config,
                runs=len(e.runs),
                completed_runs=sum(1 for r in e.runs if r.status == "completed"),
            )
            for e in comparison.experiments
        ],
        summaries=comparison.summaries,
        significance_marks={"*": "p < .05", "**": "p < .01", "***": "p < .001", "test": "Welch's t vs baseline, Holm"},
    )
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
