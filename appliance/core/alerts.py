"""Alert rules and alerts: what the appliance watches in itself, as plain types.

A rule reads one figure (CPU in use, queue depth, ...) and holds while the figure is at
or above its threshold (or below it, for rules like "the engine answers"). Once it has
held for the rule's `for_seconds` without a break, an alert opens. A rule has at most
one open alert (active or acknowledged) at a time; the alert resolves itself when the
rule stops holding, or an operator resolves it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TypeVar, overload

import msgspec

from appliance.core.clock import iso_z


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


class AlertStatus(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED)
# Who resolved an alert whose condition cleared by itself.
SYSTEM = "system"


def new_alert_id() -> str:
    return f"alert_{secrets.token_hex(6)}"


class AlertRule(msgspec.Struct, frozen=True, kw_only=True):
    rule: str  # stable key, e.g. "cpu_usage"; one open alert per key
    name: str  # what operators read, e.g. "High CPU Usage"
    severity: Severity
    reading: str  # the figure it reads (a /ws/monitor metric name)
    threshold: float
    for_seconds: float = 0.0
    # True: holds at or above the threshold; False: holds below it.
    above: bool = True
    # (reading, least): the rule cannot hold while that other figure is below `least`,
    # e.g. a failure rate means nothing over two executions.
    requires: tuple[str, float] | None = None
    enabled: bool = True
    # str.format template with {value}, {threshold} and {for_seconds}
    message: str = "{value:g} reached the threshold {threshold:g}"

    def holds(self, readings: Mapping[str, float | None]) -> bool | None:
        """Whether the condition holds now; None when the figure is not measured yet
        (an open alert then stays as it is)."""
        if self.requires is not None:
            count = readings.get(self.requires[0])
            if count is None or count < self.requires[1]:
                return False
        value = readings.get(self.reading)
        if value is None:
            return None
        return value >= self.threshold if self.above else value < self.threshold

    def describe(self, value: float) -> str:
        return self.message.format(value=value, threshold=self.threshold, for_seconds=self.for_seconds)


class Alert(msgspec.Struct, kw_only=True):
    alert_id: str
    rule: str
    rule_name: str
    severity: Severity
    status: AlertStatus
    message: str
    triggered_at: datetime
    value: float | None
    threshold: float | None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_comment: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolved_comment: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class AlertBody(msgspec.Struct, frozen=True, kw_only=True):
    """An alert as the API, the event bus and /ws/monitor show it: times as ISO 8601
    with ms and `Z`, severity and status as their values."""

    alert_id: str
    rule: str
    rule_name: str
    severity: str
    status: str
    message: str
    triggered_at: str
    value: float | None
    threshold: float | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    acknowledged_comment: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolved_comment: str | None


B = TypeVar("B", bound=AlertBody)


@overload
def alert_body(alert: Alert) -> AlertBody: ...
@overload
def alert_body(alert: Alert, kind: type[B]) -> B: ...
def alert_body(alert: Alert, kind: type[AlertBody] = AlertBody) -> AlertBody:
    """`alert` as an AlertBody, or as one of its subclasses (the bus's alert events)."""
    return kind(
        alert_id=alert.alert_id,
        rule=alert.rule,
        rule_name=alert.rule_name,
        severity=alert.severity.value,
        status=alert.status.value,
        message=alert.message,
        triggered_at=iso_z(alert.triggered_at),
        value=alert.value,
        threshold=alert.threshold,
        acknowledged_at=iso_z(alert.acknowledged_at),
        acknowledged_by=alert.acknowledged_by,
        acknowledged_comment=alert.acknowledged_comment,
        resolved_at=iso_z(alert.resolved_at),
        resolved_by=alert.resolved_by,
        resolved_comment=alert.resolved_comment,
    )


class RuleTracker:
    """Since when each rule has held without a break, so an alert opens only after the
    rule's `for_seconds`. Times are monotonic seconds, passed in by the caller."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def due(self, rule: AlertRule, holds: bool, now: float) -> bool:
        if not holds:
            self._since.pop(rule.rule, None)
            return False
        since = self._since.setdefault(rule.rule, now)
        return now - since >= rule.for_seconds

    def restart(self, rule_key: str, now: float) -> None:
        """After an operator resolves an alert whose condition still holds: a new one
        opens only once it has held for the full `for_seconds` again."""
        self._since[rule_key] = now
