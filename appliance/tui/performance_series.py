"""Figures per stretch of a time range, from GET /api/metrics/performance.

The endpoint summarises one window ending now (samples, average and peak CPU and
memory, evaluations ended, their average run time); it serves no series. Asking for
windows of 1, 2, … n stretches and taking the differences of their totals (average ×
count) gives each stretch its own average. These are the API's figures, as precise as
it rounds them: counts exactly; averages to within half the API's rounding step (0.1
points, 1 ms) times the samples of the two windows over those of the stretch, about a
point for a stretch as full as the others. A stretch with so few samples that the
rounding could move its average further than MAX_ERROR has no figure rather than a
wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# Half the API's rounding step of an average, and the most a stretch's average may be
# off by before it is left out: percentage points, and seconds of run time.
PERCENT_HALF_STEP, MAX_PERCENT_ERROR = 0.05, 2.0
SECONDS_HALF_STEP, MAX_SECONDS_ERROR = 0.0005, 0.05
LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class TimeRange:
    duration: str  # as the API and the user say it: "1h", "24h"
    title: str
    stretch_seconds: int
    stretches: int

    @property
    def window_durations(self) -> list[str]:
        """The windows to ask for, shortest first: "300s", "600s", … the whole range."""
        return [f"{self.stretch_seconds * n}s" for n in range(1, self.stretches + 1)]

    @property
    def stretch_text(self) -> str:
        minutes = self.stretch_seconds // 60
        each = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
        return f"{self.stretches} × {each}"


HOUR = TimeRange("1h", "Last hour", 300, 12)
DAY = TimeRange("24h", "Last 24 hours", 7200, 12)
TIME_RANGES = (HOUR, DAY)


@dataclass
class RangeSeries:
    """Oldest stretch first; None where a stretch has no figure (no samples taken, or
    no evaluation ended, then)."""
    time_range: TimeRange
    summary: dict[str, Any]  # the whole range's report, as the API gave it
    cpu: list[float | None] = field(default_factory=list)
    memory: list[float | None] = field(default_factory=list)
    executions: list[int] = field(default_factory=list)
    run_time: list[float | None] = field(default_factory=list)


def _figure(report: dict[str, Any], section: str, name: str) -> float | None:
    value = (report.get(section) or {}).get(name)
    return None if value is None else float(value)


def _stretch_averages(totals: list[tuple[float, float | None]], low: float, high: float | None,
                      half_step: float, max_error: float) -> list[float | None]:
    """`totals` are (count, average) per window, shortest first; the averages of the
    stretches between consecutive windows, clamped to what the figure can be."""
    averages: list[float | None] = []
    previous_count, previous_sum = 0.0, 0.0
    for count, average in totals:
        total = previous_sum if average is None else average * count
        count = max(count, previous_count)
        in_stretch = count - previous_count
        if in_stretch > 0 and half_step * (count + previous_count) / in_stretch <= max_error:
            value = max((total - previous_sum) / in_stretch, low)
            averages.append(value if high is None else min(value, high))
        else:
            averages.append(None)
        previous_count, previous_sum = count, total
    return averages


def series_from_windows(time_range: TimeRange, reports: list[dict[str, Any]]) -> RangeSeries:
    """`reports`: the API's answers for `time_range.window_durations`, in that order."""
    samples = [float(r.get("samples") or 0) for r in reports]
    ended = [float(_figure(r, "execution_metrics", "total_executions") or 0) for r in reports]

    def percent(section: str) -> list[float | None]:
        averages = (_figure(r, section, "average") for r in reports)
        return _stretch_averages(list(zip(samples, averages)), 0, 100, PERCENT_HALF_STEP, MAX_PERCENT_ERROR)

    run_times = (_figure(r, "execution_metrics", "avg_execution_time") for r in reports)
    run_time = _stretch_averages(list(zip(ended, run_times)), 0, None, SECONDS_HALF_STEP, MAX_SECONDS_ERROR)
    cpu, memory = percent("cpu_usage"), percent("memory_usage")
    executions, previous = [], 0.0
    for count in ended:
        executions.append(int(max(count - previous, 0)))
        previous = max(count, previous)
    # The API's windows end now and grow backwards; a sparkline runs oldest first.
    return RangeSeries(time_range, reports[-1] if reports else {}, cpu=cpu[::-1], memory=memory[::-1],
                       executions=executions[::-1], run_time=run_time[::-1])


def load_range(client: Any, time_range: TimeRange) -> RangeSeries:
    """Ask for the range's windows (blocking: run it in a worker thread). They are asked
    one after another, so a sample taken or an evaluation ended in between would count
    in an older stretch: the shortest window is asked again at the end, and the lot
    again (up to LOAD_ATTEMPTS times) if it changed meanwhile."""
    durations = time_range.window_durations
    reports: list[dict[str, Any]] = []
    for _ in range(LOAD_ATTEMPTS):
        reports = [client.performance(duration) for duration in durations]
        if _fingerprint(client.performance(durations[0])) == _fingerprint(reports[0]):
            break
    return series_from_windows(time_range, reports)


def _fingerprint(report: dict[str, Any]) -> tuple:
    return (report.get("samples"), _figure(report, "cpu_usage", "current"),
            _figure(report, "memory_usage", "current"), _figure(report, "execution_metrics", "total_executions"),
            _figure(report, "execution_metrics", "avg_execution_time"))
