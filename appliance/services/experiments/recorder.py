"""What one run reports, held to its caps and written in batches.

Metric points and log lines are buffered and stored together (one transaction per
`flush`); the run's row then carries the latest value of each metric, the latest step,
the progress and the counts the caps are measured by. Past a cap the excess is dropped
and one warning line says so (that line is let past the log cap); a log line longer
than `MAX_MESSAGE_CHARS` is cut.

The recorder also remembers each metrics line (up to the metric cap) with the moment it
arrived, so a checkpoint can be given the metrics of the line before it was written.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import ValidationError
from appliance.core.experiments import LogLevel, Run
from appliance.services.experiments.config import ExperimentLimits
from appliance.services.experiments.run_tags import check_tags
from appliance.store.runs import LogRow, MetricRow, Report, RunStore

MAX_MESSAGE_CHARS = 8 * 1024
# A checkpoint file belongs to the latest metrics line that arrived before the file was
# last written, give or take this much (the line travels from the sandbox meanwhile).
CHECKPOINT_MATCH_SLACK = timedelta(seconds=0.25)


class MetricsLine(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    step: int
    values: dict[str, float]
    checkpoint: str | None = None


class CheckpointFacts(msgspec.Struct, frozen=True, kw_only=True):
    epoch: int | None
    step: int | None
    metrics: dict[str, float]


class RunRecorder:
    def __init__(self, store: RunStore, run: Run, limits: ExperimentLimits, clock: Callable[[], datetime] = utc_now):
        self._store = store
        self._run_id = run.id
        self._limits = limits
        self._clock = clock
        self._points = run.metric_points
        self._lines = run.log_lines
        self._bytes = run.log_bytes
        self._next_step = 0 if run.step is None else run.step + 1
        self._tags = list(run.tags)
        self._report = Report()
        self._warned: set[str] = set()
        self.metrics_lines: list[MetricsLine] = []

    @property
    def metrics_full(self) -> bool:
        return self._points >= self._limits.run_max_metric_points

    @property
    def logs_full(self) -> bool:
        return self._log_full(1)

    @property
    def saturated(self) -> bool:
        """Both caps reached: nothing more of metrics or logs will be kept."""
        return self.metrics_full and self.logs_full

    def _log_full(self, size: int) -> bool:
        return self._lines >= self._limits.run_max_log_lines or self._bytes + size > self._limits.run_max_log_bytes

    @property
    def pending(self) -> bool:
        r = self._report
        return bool(r.metrics or r.logs or r.progress is not None or r.tags is not None)

    def metrics(self, values: dict[str, float], step: int | None, checkpoint: str | None = None) -> None:
        if self.metrics_full:
            self._warn_once("metrics", self._metrics_cap_message)
            return
        now = self._clock()
        step = self._next_step if step is None else step
        self._next_step = step + 1
        kept: dict[str, float] = {}
        for name, value in values.items():
            if self.metrics_full:
                self._warn_once("metrics", self._metrics_cap_message)
                break
            name = name[:128]
            self._report.metrics.append(MetricRow(name, step, value, now))
            kept[name] = value
            self._points += 1
        if self.metrics_full:  # said when reached: later lines are dropped unread
            self._warn_once("metrics", self._metrics_cap_message)
        if kept:
            self._report.latest.update(kept)
            self._report.step = step
            self.metrics_lines.append(MetricsLine(at=now, step=step, values=kept, checkpoint=checkpoint))

    def progress(self, value: float) -> None:
        self._report.progress = min(1.0, max(0.0, value))

    def tags(self, tags: list[Any]) -> None:
        """Adds them to the run's tags; a line with a bad tag, or one past the cap, is
        left out whole and said once as a warning."""
        try:
            merged = check_tags(tags, "tags", self._tags)
        except ValidationError as exc:
            problem = exc.detail
            self._warn_once("tags", lambda: f"[appliance] tags left out: {problem}")
            return
        if merged != self._tags:
            self._tags = merged
            self._report.tags = list(merged)

    def log(self, level: LogLevel, message: str) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " [appliance: line cut]"
        size = len(message.encode())
        if self._log_full(size):
            self._warn_once("logs", self._logs_cap_message)
            return
        self._append_log(level, message)
        if self.logs_full:
            self._warn_once("logs", self._logs_cap_message)

    def _metrics_cap_message(self) -> str:
        return (
            f"[appliance] this run reached {self._limits.run_max_metric_points} metric points "
            "(setting experiment_run_max_metric_points); later ones are dropped"
        )

    def _logs_cap_message(self) -> str:
        return (
            f"[appliance] this run reached its log cap ({self._limits.run_max_log_lines} lines or "
            f"{self._limits.run_max_log_bytes} bytes: settings experiment_run_max_log_lines, "
            "experiment_run_max_log_bytes); later lines are dropped"
        )

    def _append_log(self, level: LogLevel, message: str) -> None:
        self._report.logs.append(LogRow(self._clock(), level, message))
        self._lines += 1
        self._bytes += len(message.encode())

    def _warn_once(self, key: str, message: Callable[[], str]) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._append_log(LogLevel.WARNING, message())

    async def flush(self) -> None:
        if not self.pending:
            return
        report, self._report = self._report, Report()
        await self._store.record(self._run_id, report, self._clock())

    def facts_for(self, name: str, modified_at: datetime) -> CheckpointFacts:
        """The metrics of a checkpoint file: of the line that names it, else of the latest
        line that arrived before it was last written; the run's metrics up to that line."""
        lines = self.metrics_lines
        index = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].checkpoint == name), None)
        if index is None:
            index = bisect.bisect_right([line.at for line in lines], modified_at + CHECKPOINT_MATCH_SLACK) - 1
        if index < 0:
            return CheckpointFacts(epoch=None, step=None, metrics={})
        metrics: dict[str, float] = {}
        for line in lines[: index + 1]:
            metrics.update(line.values)
        epoch = metrics.get("epoch")
        return CheckpointFacts(
            epoch=int(epoch) if epoch is not None else lines[index].step, step=lines[index].step, metrics=metrics
        )
