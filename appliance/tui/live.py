"""What a feed delivers to the TUI, whichever way it is attached.

Plain structs, not Textual messages: the feeds do not depend on Textual, and the app
wraps each item in a `LiveUpdate` message for the screens that show it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from appliance.core.events import AlertEvent, Completed, EvaluationEvent, ExperimentEvent
from appliance.tui.execution_history import ExecutionHistory
from appliance.tui.experiment_channels import ExperimentPushes

# Figures the feed asks for (the names /ws/monitor serves; see docs/api.md).
FEED_METRICS = (
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "active_containers",
    "pool_idle",
    "queue_depth",
    "running_executions",
    "finished_executions",
    "failure_rate",
    "engine_reachable",
)
FEED_INTERVAL_SECONDS = 2.0
HISTORY_POINTS = 1800  # an hour of samples at FEED_INTERVAL_SECONDS


@dataclass(frozen=True)
class Connected:
    """The feed reaches the appliance (again)."""


@dataclass(frozen=True)
class Disconnected:
    reason: str
    retry_in: float  # seconds until the next attempt


@dataclass(frozen=True)
class MetricSample:
    metric: str
    value: float | None
    timestamp: str  # UTC ISO 8601 with Z


# Evaluation and alert events are the bus's own (appliance/core/events.py), whether they
# came from the bus or were decoded from /ws and /ws/monitor.
FeedItem = Connected | Disconnected | EvaluationEvent | AlertEvent | ExperimentEvent | ExperimentPushes | MetricSample


@dataclass
class LiveData:
    """The app's memory of the feed: the latest figures and their recent history, kept
    while screens come and go so a screen opened late still has its sparklines."""

    connected: bool = False
    experiment_pushes: bool = False  # experiment events arrive as they happen (no need to poll)
    status_text: str = "connecting…"
    latest: dict[str, float | None] = field(default_factory=dict)
    history: dict[str, deque[tuple[str, float]]] = field(default_factory=dict)
    # Kept here, not by the dashboard: feed items reach only the screens on show, and
    # the dashboard's per-minute counts must include what ended while it was hidden.
    executions: ExecutionHistory = field(default_factory=ExecutionHistory)

    def apply(self, item: FeedItem) -> None:
        if isinstance(item, Connected):
            self.connected, self.status_text = True, "connected"
        elif isinstance(item, Disconnected):
            self.connected = False
            self.status_text = f"connection lost ({item.reason}); retrying in {item.retry_in:.0f} s"
        elif isinstance(item, ExperimentPushes):
            self.experiment_pushes = item.on
        elif isinstance(item, Completed):
            self.executions.record(item.data.execution_time)
        elif isinstance(item, MetricSample):
            self.latest[item.metric] = item.value
            if item.value is not None:
                points = self.history.setdefault(item.metric, deque(maxlen=HISTORY_POINTS))
                points.append((item.timestamp, float(item.value)))

    def series(self, metric: str) -> list[float]:
        return [value for _, value in self.history.get(metric, ())]
