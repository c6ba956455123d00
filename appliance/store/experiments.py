"""Rows of the `experiments` table."""

from __future__ import annotations

import builtins
import json
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.experiments import Experiment, ExperimentStatus, Run
from appliance.core.listing import ListPage, ListQuery
from appliance.store.database import Database, SqlValue
from appliance.store.listing import Condition, ListTable, fetch_page
from appliance.store.runs import insert_runs

_COLUMNS = (
    "id, owner, name, description, tags, status, config, program_sha256, created_at, updated_at, "
    "started_at, completed_at"
)

# The fields of core's EXPERIMENT_LIST.
EXPERIMENT_TABLE = ListTable(
    table="experiments",
    id_column="id",
    columns={
        "id": "id",
        "name": "name",
        "status": "status",
        "type": "json_extract(config, '$.type')",
        "created_at": "created_at",
        "updated_at": "updated_at",
        "started_at": "started_at",
        "completed_at": "completed_at",
    },
)


def _from_row(row: aiosqlite.Row) -> Experiment:
    return Experiment(
        id=row["id"],
        owner=row["owner"],
        name=row["name"],
        description=row["description"],
        tags=json.loads(row["tags"]),
        status=ExperimentStatus(row["status"]),
        config=json.loads(row["config"]),
        program_sha256=row["program_sha256"],
        created_at=parse_iso_required(row["created_at"]),
        updated_at=parse_iso_required(row["updated_at"]),
        started_at=parse_iso(row["started_at"]),
        completed_at=parse_iso(row["completed_at"]),
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, e: Experiment) -> None:
        await self._db.write_one(
            "INSERT INTO experiments (id, owner, name, description, tags, status, config, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.id,
                e.owner,
                e.name,
                e.description,
                _json(e.tags),
                e.status.value,
                _json(e.config),
                iso_z(e.created_at),
                iso_z(e.updated_at),
            ),
        )

    async def get(self, experiment_id: str) -> Experiment | None:
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM experiments WHERE id = ?", (experiment_id,))
        return None if row is None else _from_row(row)

    async def program(self, experiment_id: str) -> str | None:
        """The program fixed at start (None before, or for a type that runs none)."""
        value = await self._db.fetch_value("SELECT program FROM experiments WHERE id = ?", (experiment_id,))
        return value if isinstance(value, str) else None

    async def in_status(self, *statuses: ExperimentStatus) -> builtins.list[Experiment]:
        marks = ", ".join("?" for _ in statuses)
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM experiments WHERE status IN ({marks}) ORDER BY seq", [s.value for s in statuses]
        )
        return [_from_row(r) for r in rows]

    async def summary(self, owner: str, since: datetime) -> tuple[int, int]:
        """Of `owner`'s experiments: how many are running or paused, and how many
        completed at or after `since`."""
        row = await self._db.fetch_one(
            "SELECT coalesce(sum(status IN ('running', 'paused')), 0) AS active, "
            "coalesce(sum(status = 'completed' AND completed_at >= ?), 0) AS done "
            "FROM experiments WHERE owner = ?",
            (iso_z(since), owner),
        )
        return (0, 0) if row is None else (int(row["active"]), int(row["done"]))

    async def list(self, query: ListQuery, owner: str | None = None) -> ListPage[Experiment]:
        """A page of the list; with `owner`, of that owner's experiments only."""
        scope: builtins.list[Condition] = [] if owner is None else [("owner = ?", (owner,))]
        return await fetch_page(self._db, EXPERIMENT_TABLE, query, _from_row, scope)

    async def update_fields(
        self,
        experiment_id: str,
        *,
        name: str,
        description: str,
        tags: builtins.list[str],
        config: dict[str, object],
        updated_at: datetime,
        only_if: ExperimentStatus | None = None,
    ) -> bool:
        """Replace the editable fields; with `only_if`, only while it has that status."""
        sql = "UPDATE experiments SET name = ?, description = ?, tags = ?, config = ?, updated_at = ? WHERE id = ?"
        params: builtins.list[SqlValue] = [
            name,
            description,
            _json(tags),
            _json(config),
            iso_z(updated_at),
            experiment_id,
        ]
        if only_if is not None:
            sql += " AND status = ?"
            params.append(only_if.value)
        changed, _ = await self._db.write_one(sql, params)
        return changed == 1

    async def move(
        self,
        experiment_id: str,
        from_statuses: tuple[ExperimentStatus, ...],
        to: ExperimentStatus,
        now: datetime,
        *,
        completed: bool = False,
    ) -> bool:
        """Change the status if it is still one of `from_statuses` (compare and set);
        `completed` also stamps completed_at."""
        marks = ", ".join("?" for _ in from_statuses)
        sql = "UPDATE experiments SET status = ?, updated_at = ?"
        params: builtins.list[SqlValue] = [to.value, iso_z(now)]
        if completed:
            sql += ", completed_at = ?"
            params.append(iso_z(now))
        sql += f" WHERE id = ? AND status IN ({marks})"
        changed, _ = await self._db.write_one(sql, [*params, experiment_id, *(s.value for s in from_statuses)])
        return changed == 1

    async def start(
        self, experiment_id: str, program: str | None, sha256: str | None, runs: builtins.list[Run], now: datetime
    ) -> bool:
        """pending -> running with its program fixed and its planned runs stored, in one
        transaction; False (and nothing stored) when it was no longer pending."""
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "UPDATE experiments SET status = 'running', program = ?, program_sha256 = ?, started_at = ?, "
                "updated_at = ? WHERE id = ? AND status = 'pending'",
                (program, sha256, iso_z(now), iso_z(now), experiment_id),
            )
            if cursor.rowcount != 1:
                return False
            await insert_runs(conn, runs)
        return True

    async def delete(self, experiment_id: str) -> builtins.list[str]:
        """Delete it with its runs and what they reported; returns the run ids (whose
        checkpoint files the caller removes)."""
        async with self._db.write() as conn:
            cursor = await conn.execute("SELECT id FROM runs WHERE experiment_id = ?", (experiment_id,))
            run_ids = [row[0] for row in await cursor.fetchall()]
            await conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))
        return run_ids
