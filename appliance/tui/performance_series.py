"""Figures per stretch of a time range, from GET /api/metrics/performance?points=N.

One request gives the whole range's summary and its `series`: the range cut into N
equal stretches, oldest first, each with its own samples and evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TimeRange:
    duration: str  # as the API and the user say it: "1h", "24h"
    title: str
    stretches: int

    @property
    def stretch_text(self) -> str:
        minutes = duration_seconds(self.duration) // 60 // self.stretches
        each = f"{minutes} min" if minutes < 60 else f"{minutes / 60:g} h"
        return f"{self.stretches} × {each}"


HOUR = TimeRange("1h", "Last hour", 30)
DAY = TimeRange("24h", "Last 24 hours", 48)
TIME_RANGES = (HOUR, DAY)


def duration_seconds(duration: str) -> int:
    unit = {"m": 60, "h": 3600, "d": 86400}[duration[-1]]
    return int(duration[:-1]) * unit


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


def series_from_report(time_range: TimeRange, report: dict[str, Any]) -> RangeSeries:
    stretches = report.get("series") or []
    return RangeSeries(
        time_range,
        report,
        cpu=[s.get("cpu_average") for s in stretches],
        memory=[s.get("memory_average") for s in stretches],
        executions=[int(s.get("executions") or 0) for s in stretches],
        run_time=[s.get("avg_execution_time") for s in stretches],
    )


def load_range(client: Any, time_range: TimeRange) -> RangeSeries:
    """Blocking (run it in a worker thread): one request for the whole range."""
    return series_from_report(time_range, client.performance(time_range.duration, points=time_range.stretches))
