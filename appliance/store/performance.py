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


class Stretch(msgspec.Struct, kw_only=True):
    """One stretch of a series: the samples and the evaluations that ended in it."""

    index: int
    samples: int
    cpu_average: float | None
    cpu_peak: float | None
    memory_average: float | None
    containers_average: float | None
    queue_depth_peak: int | None
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
            (
                iso_z(s.taken_at),
                s.cpu_percent,
                s.memory_percent,
                s.disk_percent,
                s.queue_depth,
                s.running,
                s.containers,
            ),
        )

    async def forget_before(self, cutoff: datetime) -> int:
        changed, _ = await self._db.write_one("DELETE FROM performance_samples WHERE taken_at < ?", (iso_z(cutoff),))
        return changed

    async def summary(self, since: datetime) -> WindowSummary:
        # ISO 8601 UTC strings of one format sort as the times they name.
        start = iso_z(since)
        agg = await self._db.fetch_one(
            "SELECT COUNT(*), AVG(cpu_percent), MAX(cpu_percent), AVG(memory_percent), "
            "MAX(memory_percent) FROM performance_samples WHERE taken_at >= ?",
            (start,),
        )
        last = await self._db.fetch_one(
            "SELECT cpu_percent, memory_percent FROM performance_samples WHERE taken_at >= ? "
            "ORDER BY taken_at DESC LIMIT 1",
            (start,),
        )
        runs = await self._db.fetch_one(
            "SELECT COUNT(*), AVG(execution_time), "
            "SUM(CASE WHEN status = 'completed' AND exit_code = 0 THEN 1 ELSE 0 END) "
            "FROM evaluations WHERE completed_at >= ?",
            (start,),
        )
        assert agg is not None and runs is not None, "an aggregate without GROUP BY answers one row"
        return WindowSummary(
            samples=agg[0],
            cpu_average=agg[1],
            cpu_peak=agg[2],
            memory_average=agg[3],
            memory_peak=agg[4],
            cpu_current=last[0] if last else None,
            memory_current=last[1] if last else None,
            executions=runs[0],
            average_execution_time=runs[1],
            successes=runs[2] or 0,
        )

    async def series(self, since: datetime, stretch_seconds: float, count: int) -> list[Stretch]:
        """`count` stretches of `stretch_seconds` from `since`, oldest first; a stretch
        without samples or evaluations is there with nulls and zeros."""
        start = iso_z(since)
        # The stretch a row falls in, from its ISO time: julianday is in days.
        bucket = "CAST((julianday({col}) - julianday(?)) * 86400.0 / ? AS INTEGER)"
        samples = await self._db.fetch_all(
            f"SELECT {bucket.format(col='taken_at')} AS b, COUNT(*), AVG(cpu_percent), MAX(cpu_percent), "
            "AVG(memory_percent), AVG(containers), MAX(queue_depth) FROM performance_samples "
            "WHERE taken_at >= ? GROUP BY b",
            (start, stretch_seconds, start),
        )
        runs = await self._db.fetch_all(
            f"SELECT {bucket.format(col='completed_at')} AS b, COUNT(*), AVG(execution_time), "
            "SUM(CASE WHEN status = 'completed' AND exit_code = 0 THEN 1 ELSE 0 END) "
            "FROM evaluations WHERE completed_at >= ? GROUP BY b",
            (start, stretch_seconds, start),
        )
        stretches = [
            Stretch(
                index=i,
                samples=0,
                cpu_average=None,
                cpu_peak=None,
                memory_average=None,
                containers_average=None,
                queue_depth_peak=None,
                executions=0,
                average_execution_time=None,
                successes=0,
            )
            for i in range(count)
        ]
        for b, n, cpu_avg, cpu_peak, mem_avg, containers, queue_peak in samples:
            if 0 <= b < count:
                stretches[b] = msgspec.structs.replace(
                    stretches[b],
                    samples=n,
                    cpu_average=cpu_avg,
                    cpu_peak=cpu_peak,
                    memory_average=mem_avg,
                    containers_average=containers,
                    queue_depth_peak=queue_peak,
                )
        for b, n, avg_time, successes in runs:
            if 0 <= b < count:
                stretches[b] = msgspec.structs.replace(
                    stretches[b], executions=n, average_execution_time=avg_time, successes=successes or 0
                )
        return stretches
