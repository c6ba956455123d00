"""Rows of `runs`, and of what runs report: `run_metrics`, `run_logs`, `checkpoints`."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.experiments import (
    METRIC_SORT_PREFIX,
    Checkpoint,
    LogLevel,
    LogQuery,
    MetricPoint,
    OptimizationDirection,
    Run,
    RunLogLine,
    RunSource,
    RunStatus,
)
from appliance.core.listing import ListPage, ListQuery
from appliance.store.database import Database, SqlValue
from appliance.store.listing import Condition, ListTable, fetch_page

_COLUMNS = (
    "id, experiment_id, owner, source, position, status, attempt, progress, hyperparameters, tags, metrics, step, "
    "seed, code_sha256, image, engine, language, exit_code, reason, error, metric_points, log_lines, log_bytes, "
    "checkpoint_count, checkpoint_bytes, created_at, updated_at, started_at, completed_at"
)

_METRIC = "json_extract(metrics, ?)"

# The fields of core's RUN_LIST; "metrics.<name>" sorts by the latest value of a metric.
RUN_TABLE = ListTable(
    table="runs",
    id_column="id",
    columns={
        "id": "id",
        "experiment_id": "experiment_id",
        "status": "status",
        "source": "source",
        "progress": "progress",
        "position": "position",
        "tags": "tags",
        "created_at": "created_at",
        "updated_at": "updated_at",
        "started_at": "started_at",
        "completed_at": "completed_at",
    },
    prefix_columns={METRIC_SORT_PREFIX: _METRIC},
)


def metric_path(name: str) -> str:
    """The JSON path of a metric in a run's `metrics` (the name quoted, so dots and
    spaces in it are no path syntax)."""
    return '$."' + name.replace('"', "") + '"'


def _from_row(row: aiosqlite.Row) -> Run:
    return Run(
        id=row["id"],
        experiment_id=row["experiment_id"],
        owner=row["owner"],
        source=RunSource(row["source"]),
        position=row["position"],
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        progress=row["progress"],
        hyperparameters=json.loads(row["hyperparameters"]),
        tags=json.loads(row["tags"]),
        metrics=json.loads(row["metrics"]),
        step=row["step"],
        seed=row["seed"],
        code_sha256=row["code_sha256"],
        image=row["image"],
        engine=row["engine"],
        language=row["language"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        error=row["error"],
        metric_points=row["metric_points"],
        log_lines=row["log_lines"],
        log_bytes=row["log_bytes"],
        checkpoint_count=row["checkpoint_count"],
        checkpoint_bytes=row["checkpoint_bytes"],
        created_at=parse_iso_required(row["created_at"]),
        updated_at=parse_iso_required(row["updated_at"]),
        started_at=parse_iso(row["started_at"]),
        completed_at=parse_iso(row["completed_at"]),
    )


def _checkpoint(row: aiosqlite.Row) -> Checkpoint:
    return Checkpoint(
        id=row["id"],
        run_id=row["run_id"],
        name=row["name"],
        size=row["size"],
        sha256=row["sha256"],
        epoch=row["epoch"],
        step=row["step"],
        metrics=json.loads(row["metrics"]),
        created_at=parse_iso_required(row["created_at"]),
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


async def insert_runs(conn: aiosqlite.Connection, runs: Iterable[Run]) -> None:
    """Within the caller's transaction."""
    await conn.executemany(
        "INSERT INTO runs (id, experiment_id, owner, source, position, status, attempt, progress, hyperparameters, "
        "tags, seed, code_sha256, language, engine, created_at, updated_at, started_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.id,
                r.experiment_id,
                r.owner,
                r.source.value,
                r.position,
                r.status.value,
                r.attempt,
                r.progress,
                _json(r.hyperparameters),
                _json(r.tags),
                r.seed,
                r.code_sha256,
                r.language,
                r.engine,
                iso_z(r.created_at),
                iso_z(r.updated_at),
                iso_z(r.started_at),
            )
            for r in runs
        ],
    )


class RunStats(msgspec.Struct, kw_only=True):
    """Counts of an experiment's runs by status, and what progress and ETA need."""

    by_status: dict[RunStatus, int]
    planned_by_status: dict[RunStatus, int]
    # Mean seconds from start to end of the planned runs that completed or failed.
    mean_duration: float | None
    # Sum of `progress` over planned runs running now.
    running_progress: float


class MetricRow(msgspec.Struct, frozen=True):
    name: str
    step: int
    value: float
    timestamp: datetime


class LogRow(msgspec.Struct, frozen=True):
    timestamp: datetime
    level: LogLevel
    message: str


class Report(msgspec.Struct, kw_only=True):
    """One batch of what a run reported, stored in one transaction."""

    metrics: list[MetricRow] = []
    logs: list[LogRow] = []
    # The latest value of each metric in `metrics` (merged into the run's), and the step
    # of the latest line.
    latest: dict[str, float] = {}
    step: int | None = None
    progress: float | None = None
    # The run's tags as they are now, when its program added some.
    tags: list[str] | None = None


class RunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- runs -------------------------------------------------------------------------

    async def insert(self, run: Run) -> None:
        async with self._db.write() as conn:
            await insert_runs(conn, [run])

    async def get(self, run_id: str) -> Run | None:
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return None if row is None else _from_row(row)

    async def of_experiment(self, experiment_id: str) -> builtins.list[Run]:
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM runs WHERE experiment_id = ? ORDER BY position, seq", (experiment_id,)
        )
        return [_from_row(r) for r in rows]

    async def planned_in_status(self, experiment_id: str, status: RunStatus) -> builtins.list[Run]:
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM runs WHERE experiment_id = ? AND source = 'plan' AND status = ? ORDER BY position",
            (experiment_id, status.value),
        )
        return [_from_row(r) for r in rows]

    async def next_position(self, experiment_id: str) -> int:
        value = await self._db.fetch_value(
            "SELECT coalesce(max(position) + 1, 0) FROM runs WHERE experiment_id = ?", (experiment_id,)
        )
        return value if isinstance(value, int) else 0

    async def list(self, query: ListQuery, owner: str | None = None, experiment_id: str | None = None) -> ListPage[Run]:
        """A page of the list; with `owner` of that owner's runs only, with
        `experiment_id` of that experiment's."""
        scope: list[Condition] = []
        if owner is not None:
            scope.append(("owner = ?", (owner,)))
        if experiment_id is not None:
            scope.append(("experiment_id = ?", (experiment_id,)))
        return await fetch_page(self._db, RUN_TABLE, query, _from_row, scope)

    async def mark_running(
        self,
        run_id: str,
        now: datetime,
        *,
        image: str | None,
        engine: str | None,
        language: str | None,
        code_sha256: str | None,
    ) -> bool:
        changed, _ = await self._db.write_one(
            "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, image = ?, engine = ?, "
            "language = ?, code_sha256 = ?, progress = 0 WHERE id = ? AND status = 'pending'",
            (iso_z(now), iso_z(now), image, engine, language, code_sha256, run_id),
        )
        return changed == 1

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        now: datetime,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Its final status, if it has not ended yet (first writer wins)."""
        progress = ", progress = 1" if status is RunStatus.COMPLETED else ""
        changed, _ = await self._db.write_one(
            f"UPDATE runs SET status = ?, completed_at = ?, updated_at = ?, exit_code = ?, reason = ?, error = ?"
            f"{progress} WHERE id = ? AND status IN ('pending', 'running')",
            (status.value, iso_z(now), iso_z(now), exit_code, reason, error, run_id),
        )
        return changed == 1

    async def requeue(self, run_id: str, attempt: int, now: datetime) -> bool:
        """running -> pending, to be run again from the start: what its stopped try
        reported (metrics, checkpoints) goes; its log lines stay."""
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "UPDATE runs SET status = 'pending', attempt = ?, progress = 0, metrics = '{}', step = NULL, "
                "metric_points = 0, checkpoint_count = 0, checkpoint_bytes = 0, started_at = NULL, exit_code = NULL, "
                "reason = NULL, error = NULL, updated_at = ? WHERE id = ? AND status = 'running'",
                (attempt, iso_z(now), run_id),
            )
            if cursor.rowcount != 1:
                return False
            await conn.execute("DELETE FROM run_metrics WHERE run_id = ?", (run_id,))
            await conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
        return True

    async def cancel_unfinished(self, experiment_id: str, now: datetime) -> int:
        """Every planned run not yet ended -> cancelled."""
        changed, _ = await self._db.write_one(
            "UPDATE runs SET status = 'cancelled', completed_at = ?, updated_at = ? "
            "WHERE experiment_id = ? AND source = 'plan' AND status IN ('pending', 'running')",
            (iso_z(now), iso_z(now), experiment_id),
        )
        return changed

    async def set_hyperparameters(self, run_id: str, hyperparameters: dict[str, object], now: datetime) -> None:
        await self._db.write_one(
            "UPDATE runs SET hyperparameters = ?, updated_at = ? WHERE id = ?",
            (_json(hyperparameters), iso_z(now), run_id),
        )

    async def stats(self, experiment_id: str) -> RunStats:
        rows = await self._db.fetch_all(
            "SELECT source, status, count(*) AS n, "
            "avg(CASE WHEN status IN ('completed', 'failed') AND started_at IS NOT NULL AND completed_at IS NOT NULL "
            "THEN (julianday(completed_at) - julianday(started_at)) * 86400 END) AS mean, "
            "sum(progress) AS progress FROM runs WHERE experiment_id = ? GROUP BY source, status",
            (experiment_id,),
        )
        by_status: dict[RunStatus, int] = {}
        planned: dict[RunStatus, int] = {}
        durations: list[tuple[float, int]] = []
        running_progress = 0.0
        for row in rows:
            status = RunStatus(row["status"])
            by_status[status] = by_status.get(status, 0) + row["n"]
            if row["source"] != RunSource.PLAN.value:
                continue
            planned[status] = row["n"]
            if row["mean"] is not None:
                durations.append((row["mean"], row["n"]))
            if status is RunStatus.RUNNING:
                running_progress += row["progress"] or 0.0
        counted = sum(n for _, n in durations)
        mean = sum(m * n for m, n in durations) / counted if counted else None
        return RunStats(
            by_status=by_status, planned_by_status=planned, mean_duration=mean, running_progress=running_progress
        )

    async def best(self, experiment_id: str, metric: str, direction: OptimizationDirection) -> tuple[str, float] | None:
        """The completed run with the best latest value of `metric`, and that value."""
        way = "ASC" if direction is OptimizationDirection.MINIMIZE else "DESC"
        row = await self._db.fetch_one(
            f"SELECT id, {_METRIC} AS value FROM runs WHERE experiment_id = ? AND status = 'completed' "
            f"AND {_METRIC} IS NOT NULL ORDER BY value {way}, position LIMIT 1",
            (metric_path(metric), experiment_id, metric_path(metric)),
        )
        if row is None or not isinstance(row["value"], int | float):
            return None
        return row["id"], float(row["value"])

    # --- what runs report -------------------------------------------------------------

    async def record(self, run_id: str, report: Report, now: datetime) -> None:
        """Store a batch of metric points and log lines and update the run's latest
        metrics, step, progress and counters, in one transaction."""
        sets = ["updated_at = ?", "metric_points = metric_points + ?", "log_lines = log_lines + ?"]
        sets.append("log_bytes = log_bytes + ?")
        params: list[SqlValue] = [
            iso_z(now),
            len(report.metrics),
            len(report.logs),
            sum(len(line.message.encode()) for line in report.logs),
        ]
        if report.latest:
            sets.append("metrics = json_patch(metrics, ?)")
            params.append(_json(report.latest))
        if report.step is not None:
            sets.append("step = ?")
            params.append(report.step)
        if report.progress is not None:
            sets.append("progress = ?")
            params.append(report.progress)
        if report.tags is not None:
            sets.append("tags = ?")
            params.append(_json(report.tags))
        async with self._db.write() as conn:
            if report.metrics:
                await conn.executemany(
                    "INSERT INTO run_metrics (run_id, name, step, value, timestamp) VALUES (?, ?, ?, ?, ?)",
                    [(run_id, m.name, m.step, m.value, iso_z(m.timestamp)) for m in report.metrics],
                )
            if report.logs:
                await conn.executemany(
                    "INSERT INTO run_logs (run_id, timestamp, level, message) VALUES (?, ?, ?, ?)",
                    [(run_id, iso_z(line.timestamp), line.level.value, line.message) for line in report.logs],
                )
            await conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*params, run_id))

    async def metric_history(self, run_id: str, name: str | None = None) -> dict[str, builtins.list[MetricPoint]]:
        sql = "SELECT name, step, value, timestamp FROM run_metrics WHERE run_id = ?"
        params: list[SqlValue] = [run_id]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = await self._db.fetch_all(sql + " ORDER BY name, step, seq", params)
        history: dict[str, builtins.list[MetricPoint]] = {}
        for row in rows:
            history.setdefault(row["name"], []).append(
                MetricPoint(step=row["step"], value=row["value"], timestamp=parse_iso_required(row["timestamp"]))
            )
        return history

    async def metric_points(self, run_id: str) -> builtins.list[tuple[str, MetricPoint]]:
        """Every point of the run in the order they came (to match checkpoints to the
        metrics line before them)."""
        rows = await self._db.fetch_all(
            "SELECT name, step, value, timestamp FROM run_metrics WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [
            (r["name"], MetricPoint(step=r["step"], value=r["value"], timestamp=parse_iso_required(r["timestamp"])))
            for r in rows
        ]

    async def logs(self, run_id: str, query: LogQuery) -> builtins.list[RunLogLine]:
        conditions = ["run_id = ?"]
        params: list[SqlValue] = [run_id]
        if query.level is not None:
            wanted = [level.value for level in LogLevel if level.severity >= query.level.severity]
            conditions.append(f"level IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        if query.since is not None:
            conditions.append("timestamp >= ?")
            params.append(iso_z(query.since))
        sql = f"SELECT timestamp, level, message FROM run_logs WHERE {' AND '.join(conditions)}"
        if query.tail is not None:
            rows = await self._db.fetch_all(f"{sql} ORDER BY seq DESC LIMIT ?", [*params, query.tail])
            rows.reverse()
        else:
            rows = await self._db.fetch_all(f"{sql} ORDER BY seq", params)
        return [
            RunLogLine(timestamp=parse_iso_required(r["timestamp"]), level=LogLevel(r["level"]), message=r["message"])
            for r in rows
        ]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        async with self._db.write() as conn:
            await conn.execute(
                "INSERT INTO checkpoints (id, run_id, name, size, sha256, epoch, step, metrics, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.id, c.run_id, c.name, c.size, c.sha256, c.epoch, c.step, _json(c.metrics), iso_z(c.created_at)),
            )
            await conn.execute(
                "UPDATE runs SET checkpoint_count = checkpoint_count + 1, checkpoint_bytes = checkpoint_bytes + ?, "
                "updated_at = ? WHERE id = ?",
                (c.size, iso_z(c.created_at), c.run_id),
            )

    async def checkpoints(self, run_id: str) -> builtins.list[Checkpoint]:
        rows = await self._db.fetch_all("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY seq", (run_id,))
        return [_checkpoint(r) for r in rows]

    async def checkpoint(self, run_id: str, checkpoint_id: str) -> Checkpoint | None:
        row = await self._db.fetch_one("SELECT * FROM checkpoints WHERE run_id = ? AND id = ?", (run_id, checkpoint_id))
        return None if row is None else _checkpoint(row)
