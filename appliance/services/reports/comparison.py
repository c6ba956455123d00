"""The numbers of a comparison report: for each metric and experiment, the mean over its
completed runs with a t confidence interval, and Welch's t-test against the baseline
experiment, the p-values Holm-adjusted over the experiments compared for that metric
(marks: * p < .05, ** p < .01, *** p < .001)."""

from __future__ import annotations

import math

from appliance.core.clock import utc_now_ms
from appliance.core.errors import invalid_fields
from appliance.core.reports import MAX_METRICS, Comparison, ComparisonOptions, MetricSummary, ReportExperiment
from appliance.core.statistics import Correction
from appliance.services.statistics.numeric import num, scipy_stats
from appliance.services.statistics.pairwise import adjust

MARKS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
COMPLETED = "completed"


def mark_for(p: float | None) -> str:
    if p is None:
        return ""
    return next((mark for bound, mark in MARKS if p < bound), "")


def final_values(experiment: ReportExperiment, metric: str) -> list[float]:
    return [
        run.metrics[metric]
        for run in experiment.runs
        if run.status == COMPLETED and metric in run.metrics and math.isfinite(run.metrics[metric])
    ]


def _summary(experiment: ReportExperiment, metric: str, level: float) -> MetricSummary:
    values = final_values(experiment, metric)
    n = len(values)
    if n == 0:
        return MetricSummary(
            experiment_id=experiment.id, metric=metric, n=0, mean=None, std_dev=None, confidence_interval=None
        )
    mean = sum(values) / n
    if n == 1:
        return MetricSummary(
            experiment_id=experiment.id, metric=metric, n=1, mean=mean, std_dev=None, confidence_interval=None
        )
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = num(scipy_stats().t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)
    return MetricSummary(
        experiment_id=experiment.id,
        metric=metric,
        n=n,
        mean=mean,
        std_dev=sd,
        confidence_interval=[mean - half, mean + half],
    )


def _welch_p(first: list[float], second: list[float]) -> tuple[float | None, str | None]:
    if len(first) < 2 or len(second) < 2:
        return None, "fewer than 2 completed runs"
    if max(first) == min(first) and max(second) == min(second):
        return None, "no variance"
    result = scipy_stats().ttest_ind(first, second, equal_var=False)
    p = num(result.pvalue)
    return (p, None) if math.isfinite(p) else (None, "not computable")


def metrics_of(experiments: list[ReportExperiment]) -> list[str]:
    found: dict[str, None] = {}
    for experiment in experiments:
        for run in experiment.runs:
            for name in run.metrics:
                found.setdefault(name, None)
    return sorted(found)


def compare(experiments: list[ReportExperiment], options: ComparisonOptions) -> Comparison:
    problems: dict[str, list[str]] = {}
    ids = [e.id for e in experiments]
    baseline = options.baseline or ids[0]
    if baseline not in ids:
        problems["baseline"] = [f"must be one of the experiments compared ({', '.join(ids)})"]
    metrics = options.metrics if options.metrics is not None else metrics_of(experiments)[:MAX_METRICS]
    if options.metrics is not None and not 1 <= len(options.metrics) <= MAX_METRICS:
        problems["metrics"] = [f"name 1 to {MAX_METRICS} metrics"]
    if not 0 < options.alpha <= 0.5:
        problems["alpha"] = ["must be more than 0 and at most 0.5"]
    if not 0 < options.confidence_level < 1:
        problems["confidence_level"] = ["must be between 0 and 1"]
    if problems:
        raise invalid_fields(problems)
    summaries = [_summary(e, m, options.confidence_level) for e in experiments for m in metrics]
    reference = next(e for e in experiments if e.id == baseline)
    for metric in metrics:
        base_values = final_values(reference, metric)
        tested: list[MetricSummary] = []
        for experiment in experiments:
            if experiment.id == baseline:
                continue
            summary = next(s for s in summaries if s.experiment_id == experiment.id and s.metric == metric)
            summary.p_value, summary.note = _welch_p(final_values(experiment, metric), base_values)
            if summary.p_value is not None:
                tested.append(summary)
        for summary, adjusted in zip(tested, adjust([s.p_value or 0.0 for s in tested], Correction.HOLM), strict=True):
            summary.adjusted_p_value = adjusted
            summary.mark = mark_for(adjusted)
    title = options.title or "Comparison of " + ", ".join(e.name for e in experiments)
    return Comparison(
        title=title,
        baseline=baseline,
        metrics=metrics,
        alpha=options.alpha,
        confidence_level=options.confidence_level,
        experiments=experiments,
        summaries=summaries,
        generated_at=utc_now_ms(),
    )
