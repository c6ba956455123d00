"""A telemetry series for the metrics screen: how many events (all of them, or of one
event name) per stretch of the screen's time range, from GET /api/v1/telemetry/aggregate
with points=N, and the event names the range holds (to choose from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.tui.performance_series import TimeRange, duration_seconds

ALL_EVENTS = None  # the series of every event name together


@dataclass
class TelemetrySeries:
    time_range: TimeRange
    event_name: str | None  # ALL_EVENTS, or one dotted name
    interval: str  # the width of one point, as the API named it ("2m", "30m")
    values: list[float] = field(default_factory=list)  # events per stretch, oldest first
    names: list[str] = field(default_factory=list)  # the event names seen in the range

    @property
    def title(self) -> str:
        return f"Events · {self.event_name or 'all names'} · per {self.interval}"

    @property
    def total(self) -> int:
        return int(sum(self.values))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seconds(interval: str) -> int:
    return int(interval[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86_400}[interval[-1]]


def load_telemetry(client: Any, time_range: TimeRange, event_name: str | None) -> TelemetrySeries:
    """Blocking (run it in a worker thread): two requests, the series and the names."""
    now = datetime.now(UTC)
    start = now - timedelta(seconds=duration_seconds(time_range.duration))
    window = {"after": _iso(start), "before": _iso(now)}
    filters = {**window, **({"event_name": event_name} if event_name else {})}
    # One more than the stretches: the range's ends rarely fall on a bucket's edge.
    answer = client.aggregate_events("count", points=time_range.stretches + 1, filters=filters)
    interval = answer["meta"]["interval"] or time_range.duration
    width = _seconds(interval)
    first = int(start.timestamp()) // width * width
    slots = (int(now.timestamp()) - first) // width + 1
    values = [0.0] * slots
    for point in answer["data"]:
        stamp = datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00")).timestamp()
        slot = (int(stamp) - first) // width
        if 0 <= slot < slots:
            values[slot] += point["value"]
    names = client.aggregate_events("count", group_by="event_name", filters=window)["data"]
    return TelemetrySeries(time_range, event_name, interval, values, sorted({str(p["group"]) for p in names}))
