"""Rows of `performance_samples`, and the evaluation figures of a time window."""

from __future__ import annotations

from datetime import datetime

import msgspec

from appliance.core.clock import iso_z
from appliance.store.database import Database


class PerformanceSample(msgspec.Struct, kw_only=True):
    taken_at: datetime
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    queue_depth: int
    running: int
    containers: int


class WindowSummary(msgspec.Struct, kw_only=True):
    samples: int
    cpu_current: float | None
    cpu_average: float | None
    cpu_peak: float | None
    memory_current: float | None
    memory_average: float | None
    memory_peak: float | None
    executions: int
    average_execution_time: float | None
    successes: int


class PerformanceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, s: PerformanceSample) -> None:
        await self._db.write_one(
            "INSERT OR REPLACE INTO performance_samples (taken_at, cpu_percent, memory_percent, "
            "disk_percent, queue_depth, running, containers) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (iso_z(s.taken_at), s.cpu_percent, s.memory_percent, s.disk_percent, s.queue_depth,
             s.running, s.containers),
        )

    async def forget_before(self, cutoff: datetime) -> int:
        changed, _ = await self._db.write_one(
            "DELETE FROM performance_samples WHERE taken_at < ?", (iso_z(cutoff),))
        return changed

    async def summary(self, since: datetime) -> WindowSummary:
        # ISO 8601 UTC strings of one format sort as the times they name.
        start = iso_z(since)
        agg = await self._db.fetch_one(
            "SELECT COUNT(*), AVG(cpu_percent), MAX(cpu_percent), AVG(memory_percent), "
            "MAX(memory_percent) FROM performance_samples WHERE taken_at >= ?", (start,))
        last = await self._db.fetch_one(
            "SELECT cpu_percent, memory_percent FROM performance_samples WHERE taken_at >= ? "
            "ORDER BY taken_at DESC LIMIT 1", (start,))
        runs = await self._db.fetch_one(
            "SELECT COUNT(*), AVG(execution_time), "
            "SUM(CASE WHEN status = 'completed' AND exit_code = 0 THEN 1 ELSE 0 END) "
            "FROM evaluations WHERE completed_at >= ?", (start,))
        return WindowSummary(
            samples=agg[0], cpu_average=agg[1], cpu_peak=agg[2], memory_average=agg[3], memory_peak=agg[4],
            cpu_current=last[0] if last else None, memory_current=last[1] if last else None,
            executions=runs[0], average_execution_time=runs[1], successes=runs[2] or 0,
        )
