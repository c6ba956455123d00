"""Rows of the `alerts` table.

Transitions are conditional updates (`WHERE status ...`), so an alert that changed
under the caller is reported as unchanged (None) instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from appliance.core.alerts import Alert, AlertStatus, Severity
from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.store.database import Database, SqlValue

_COLUMNS = (
    "alert_id",
    "rule",
    "rule_name",
    "severity",
    "status",
    "message",
    "triggered_at",
    "value",
    "threshold",
    "acknowledged_at",
    "acknowledged_by",
    "acknowledged_comment",
    "resolved_at",
    "resolved_by",
    "resolved_comment",
)


def _real(value: float | int | None) -> float | None:
    # SQLite may hand back a whole REAL as an int (seen with RETURNING).
    return None if value is None else float(value)


def _from_row(row: aiosqlite.Row) -> Alert:
    return Alert(
        alert_id=row["alert_id"],
        rule=row["rule"],
        rule_name=row["rule_name"],
        severity=Severity(row["severity"]),
        status=AlertStatus(row["status"]),
        message=row["message"],
        triggered_at=parse_iso_required(row["triggered_at"]),
        value=_real(row["value"]),
        threshold=_real(row["threshold"]),
        acknowledged_at=parse_iso(row["acknowledged_at"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_comment=row["acknowledged_comment"],
        resolved_at=parse_iso(row["resolved_at"]),
        resolved_by=row["resolved_by"],
        resolved_comment=row["resolved_comment"],
    )


class AlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, a: Alert) -> None:
        await self._db.write_one(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (
                a.alert_id,
                a.rule,
                a.rule_name,
                a.severity.value,
                a.status.value,
                a.message,
                iso_z(a.triggered_at),
                a.value,
                a.threshold,
                iso_z(a.acknowledged_at),
                a.acknowledged_by,
                a.acknowledged_comment,
                iso_z(a.resolved_at),
                a.resolved_by,
                a.resolved_comment,
            ),
        )

    async def get(self, alert_id: str) -> Alert | None:
        row = await self._db.fetch_one("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,))
        return None if row is None else _from_row(row)

    async def open_alerts(self) -> list[Alert]:
        rows = await self._db.fetch_all("SELECT * FROM alerts WHERE status != 'resolved' ORDER BY triggered_at")
        return [_from_row(r) for r in rows]

    async def search(self, statuses: Sequence[AlertStatus], severity: Severity | None, limit: int) -> list[Alert]:
        """Newest first."""
        sql = f"SELECT * FROM alerts WHERE status IN ({', '.join('?' * len(statuses))})"
        params: list[SqlValue] = [s.value for s in statuses]
        if severity is not None:
            sql += " AND severity = ?"
            params.append(severity.value)
        sql += " ORDER BY triggered_at DESC, alert_id LIMIT ?"
        params.append(limit)
        return [_from_row(r) for r in await self._db.fetch_all(sql, params)]

    async def acknowledge(self, alert_id: str, at: datetime, by: str, comment: str | None) -> Alert | None:
        """Active -> acknowledged; None when the alert is not active."""
        _, rows = await self._db.write_one(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?, "
            "acknowledged_comment = ? WHERE alert_id = ? AND status = 'active' RETURNING *",
            (iso_z(at), by, comment, alert_id),
        )
        return _from_row(rows[0]) if rows else None

    async def resolve(self, alert_id: str, at: datetime, by: str, comment: str | None) -> Alert | None:
        """Active or acknowledged -> resolved; None when it is resolved already."""
        _, rows = await self._db.write_one(
            "UPDATE alerts SET status = 'resolved', resolved_at = ?, resolved_by = ?, resolved_comment = ? "
            "WHERE alert_id = ? AND status != 'resolved' RETURNING *",
            (iso_z(at), by, comment, alert_id),
        )
        return _from_row(rows[0]) if rows else None

    async def forget_resolved_before(self, cutoff: datetime) -> int:
        changed, _ = await self._db.write_one(
            "DELETE FROM alerts WHERE status = 'resolved' AND resolved_at < ?", (iso_z(cutoff),)
        )
        return changed
