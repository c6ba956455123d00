"""Alert rules evaluated by the scheduler, and the alerts they open.

Every `alert_evaluation_seconds` the scheduler calls `evaluate`: each enabled rule reads
its figure (services/readings.py); a rule that has held for its `for_seconds` opens an
alert (one open alert per rule), and an open alert whose rule no longer holds resolves
itself (resolved_by "system"). Operators acknowledge and resolve alerts through the API.
Every transition is stored first, then published on the event bus (`AlertOpened`,
`AlertAcknowledged` or `AlertResolved`, the appliance's own) and written to the log.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import msgspec

from appliance.config import Settings
from appliance.core.alerts import (
    OPEN_STATUSES,
    SYSTEM,
    Alert,
    AlertRule,
    AlertStatus,
    RuleTracker,
    Severity,
    alert_body,
    new_alert_id,
)
from appliance.core.clock import iso_z, utc_now
from appliance.core.errors import Conflict, NotFound, ValidationError
from appliance.core.events import AlertAcknowledged, AlertEvent, AlertOpened, AlertResolved, EventBus
from appliance.core.identity import ADMIN, Identity
from appliance.core.metrics import render_gauge
from appliance.services.access.auth import require_key, require_permission
from appliance.services.monitoring.readings import SystemReadings
from appliance.store.alerts import AlertStore

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 2000
MAX_LIST_LIMIT = 1000
PRUNE_EVERY_EVALUATIONS = 500


def rules_from_settings(s: Settings) -> list[AlertRule]:
    """The built-in rules with the thresholds of `Settings` (docs/configuration.md)."""
    disabled = set(s.alert_disabled_rules)
    rules = [
        AlertRule(
            rule="cpu_usage",
            name="High CPU Usage",
            severity=Severity.WARNING,
            reading="cpu_usage",
            threshold=s.alert_cpu_percent,
            for_seconds=s.alert_cpu_for_seconds,
            message="CPU usage is {value:.1f}%, at or above the {threshold:g}% threshold",
        ),
        AlertRule(
            rule="memory_usage",
            name="High Memory Usage",
            severity=Severity.WARNING,
            reading="memory_usage",
            threshold=s.alert_memory_percent,
            for_seconds=s.alert_memory_for_seconds,
            message="Memory usage is {value:.1f}%, at or above the {threshold:g}% threshold",
        ),
        AlertRule(
            rule="disk_usage",
            name="Low Disk Space",
            severity=Severity.CRITICAL,
            reading="disk_usage",
            threshold=s.alert_disk_percent,
            for_seconds=s.alert_disk_for_seconds,
            message="The data dir's disk is {value:.1f}% full, at or above the {threshold:g}% threshold",
        ),
        AlertRule(
            rule="queue_depth",
            name="Queue Backlog",
            severity=Severity.WARNING,
            reading="queue_depth",
            threshold=s.alert_queue_depth,
            for_seconds=s.alert_queue_for_seconds,
            message="{value:g} evaluations are waiting for a worker, at or above the threshold of {threshold:g}",
        ),
        AlertRule(
            rule="failure_rate",
            name="High Failure Rate",
            severity=Severity.CRITICAL,
            reading="failure_rate",
            threshold=s.alert_failure_rate_percent,
            for_seconds=0,
            requires=("finished_executions", float(s.alert_failure_rate_min_executions)),
            message=f"{{value:.1f}}% of the evaluations that ended in the last "
            f"{s.alert_failure_rate_window_seconds:g} s failed or timed out, at or above the "
            "{threshold:g}% threshold",
        ),
        AlertRule(
            rule="engine_unreachable",
            name="Docker Engine Unreachable",
            severity=Severity.EMERGENCY,
            reading="engine_reachable",
            threshold=1,
            above=False,
            for_seconds=s.alert_engine_for_seconds,
            message="The Docker engine does not answer: evaluations cannot run until it does "
            "(check dockerd and the docker_host setting)",
        ),
    ]
    if s.cluster:
        rules.append(
            AlertRule(
                rule="cluster_node_lost",
                name="Cluster Node Lost",
                severity=Severity.CRITICAL,
                reading="cluster_nodes_lost",
                threshold=1,
                for_seconds=0,
                message="{value:g} cluster node(s) lost and not back: their runs went to other nodes "
                "(check the node's machine, its `ray start` and `appliance node`)",
            )
        )
    return [
        msgspec.structs.replace(
            r, threshold=float(r.threshold), for_seconds=float(r.for_seconds), enabled=r.rule not in disabled
        )
        for r in rules
    ]


class AlertService:
    def __init__(
        self, store: AlertStore, readings: SystemReadings, bus: EventBus, rules: list[AlertRule], retention_days: float
    ) -> None:
        self._store = store
        self.readings = readings
        self._bus = bus
        self.rules = rules
        self._retention = timedelta(days=retention_days)
        self._tracker = RuleTracker()
        self._open: dict[str, Alert] = {}  # rule key -> its open alert
        # Evaluation and operators' requests both change alerts: one at a time.
        self._lock = asyncio.Lock()
        self._evaluations = 0
        readings.add("open_alerts", "alerts active or acknowledged now", lambda: len(self._open))

    async def start(self) -> None:
        """Alerts open before a restart stay open (and are not opened twice)."""
        for alert in await self._store.open_alerts():
            self._open[alert.rule] = alert

    # --- evaluation (the scheduler's job) -------------------------------------------

    async def evaluate(self) -> None:
        enabled = [r for r in self.rules if r.enabled]
        names = {r.reading for r in enabled} | {r.requires[0] for r in enabled if r.requires}
        readings = {name: r.value for name, r in (await self.readings.read(names)).items()}
        now = time.monotonic()
        async with self._lock:
            for rule in enabled:
                holds = rule.holds(readings)
                if holds is None:  # not measured yet: leave things as they are
                    continue
                due = self._tracker.due(rule, holds, now)
                current = self._open.get(rule.rule)
                value = readings.get(rule.reading)
                if current is None and due:
                    await self._open_alert(rule, value)
                elif current is not None and not holds:
                    shown = "no figure" if value is None else f"{value:g}"
                    await self._resolve(
                        current, SYSTEM, f"condition cleared: {rule.reading} is {shown}, threshold {rule.threshold:g}"
                    )
        self._evaluations += 1
        if self._evaluations % PRUNE_EVERY_EVALUATIONS == 1:
            await self._store.forget_resolved_before(utc_now() - self._retention)

    async def _open_alert(self, rule: AlertRule, value: float | None) -> None:
        alert = Alert(
            alert_id=new_alert_id(),
            rule=rule.rule,
            rule_name=rule.name,
            severity=rule.severity,
            status=AlertStatus.ACTIVE,
            message=rule.describe(value if value is not None else 0.0),
            triggered_at=_now_ms(),
            value=value,
            threshold=rule.threshold,
        )
        await self._store.insert(alert)
        self._open[rule.rule] = alert
        log.warning("alert %s opened: %s (%s): %s", alert.alert_id, rule.name, rule.severity.value, alert.message)
        self._publish(AlertOpened, alert)

    async def _resolve(self, alert: Alert, by: str, comment: str | None) -> Alert | None:
        resolved = await self._store.resolve(alert.alert_id, _now_ms(), by, comment)
        if resolved is None:
            return None
        if self._open.get(resolved.rule) is not None and self._open[resolved.rule].alert_id == resolved.alert_id:
            del self._open[resolved.rule]
        log.warning(
            "alert %s resolved by %s: %s%s",
            resolved.alert_id,
            by,
            resolved.rule_name,
            f" ({comment})" if comment else "",
        )
        self._publish(AlertResolved, resolved)
        return resolved

    def _publish(self, kind: type[AlertEvent], alert: Alert) -> None:
        self._bus.publish(alert_body(alert, kind))

    # --- operators ------------------------------------------------------------------
    # Reading needs any key (alerts are about the appliance, not about anyone's data,
    # and /api/metrics shows the same figures without one); acknowledging and resolving
    # need admin, the operators' permission.

    def authorize_watch(self, identity: Identity) -> None:
        """Whether `identity` may follow the figures and alerts live (/ws/monitor)."""
        require_key(identity)

    def list_rules(self, identity: Identity) -> list[AlertRule]:
        require_key(identity)
        return list(self.rules)

    async def list(
        self, identity: Identity, status: str | None = None, severity: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Without `status`, the open alerts (active and acknowledged); newest first."""
        require_key(identity)
        statuses = OPEN_STATUSES if status is None else (_parse(AlertStatus, status, "status"),)
        wanted = None if severity is None else _parse(Severity, severity, "severity")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValidationError(
                f"limit must be between 1 and {MAX_LIST_LIMIT}",
                details={"field": "limit", "reason": f"{limit} is out of range"},
            )
        return await self._store.search(statuses, wanted, limit)

    async def get(self, identity: Identity, alert_id: str) -> Alert:
        require_key(identity)
        return await self._get(alert_id)

    async def _get(self, alert_id: str) -> Alert:
        alert = await self._store.get(alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}; GET /api/alerts lists them", details={"alert_id": alert_id})
        return alert

    async def acknowledge(self, identity: Identity, alert_id: str, comment: str | None) -> Alert:
        require_permission(identity, ADMIN)
        by = identity.name
        _check_comment(comment)
        async with self._lock:
            current = await self._get(alert_id)
            done = await self._store.acknowledge(alert_id, _now_ms(), by, comment)
            if done is None:
                raise Conflict(
                    _not_changeable(current, "acknowledged"),
                    details={"alert_id": alert_id, "status": current.status.value},
                )
            if done.rule in self._open:
                self._open[done.rule] = done
        log.warning(
            "alert %s acknowledged by %s: %s%s", alert_id, by, done.rule_name, f" ({comment})" if comment else ""
        )
        self._publish(AlertAcknowledged, done)
        return done

    async def resolve(self, identity: Identity, alert_id: str, comment: str | None) -> Alert:
        require_permission(identity, ADMIN)
        by = identity.name
        _check_comment(comment)
        async with self._lock:
            current = await self._get(alert_id)
            done = await self._resolve(current, by, comment)
            if done is None:
                raise Conflict(
                    _not_changeable(current, "resolved"), details={"alert_id": alert_id, "status": current.status.value}
                )
            # A condition that still holds opens a new alert only after its full duration.
            self._tracker.restart(done.rule, time.monotonic())
        return done

    # --- /api/metrics -------------------------------------------------------------------

    # builtins.list: in this class body, `list` is the method above.
    def gauges(self) -> builtins.list[str]:
        counts = {s: 0 for s in Severity}
        for alert in self._open.values():
            counts[alert.severity] += 1
        return render_gauge(
            "appliance_alerts_open",
            "Alerts active or acknowledged now, per severity.",
            [({"severity": s.value}, n) for s, n in counts.items()],
        )


def _now_ms() -> datetime:
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


E = TypeVar("E", bound=StrEnum)


def _parse(kind: type[E], text: str, field: str) -> E:
    try:
        return kind(text)
    except ValueError:
        offered = [k.value for k in kind]
        raise ValidationError(
            f"unknown {field} {text!r}; use one of: {', '.join(offered)}",
            details={"field": field, "reason": f"must be one of {', '.join(offered)}"},
        ) from None


def _check_comment(comment: str | None) -> None:
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ValidationError(
            f"comment is {len(comment)} characters long; keep it to {MAX_COMMENT_CHARS}",
            details={"field": "comment", "reason": "too long"},
        )


def _not_changeable(alert: Alert, action: str) -> str:
    if alert.status is AlertStatus.RESOLVED:
        return (
            f"alert {alert.alert_id} was resolved already (by {alert.resolved_by} at "
            f"{iso_z(alert.resolved_at)}); a resolved alert cannot be {action}"
        )
    return (
        f"alert {alert.alert_id} was acknowledged already (by {alert.acknowledged_by} at "
        f"{iso_z(alert.acknowledged_at)}); resolve it when the issue is fixed"
    )
