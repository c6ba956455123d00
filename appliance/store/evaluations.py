"""Rows of the `evaluations` table."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.evaluations import KIND_EVALUATION, KIND_EXECUTION, CreatedFile, EvalStatus, Evaluation
from appliance.store.database import Database

_COLUMNS = (
    "eval_id, owner, language, engine, code, timeout, status, created_at, started_at, "
    "completed_at, output, error, exit_code, reason, output_truncated, error_truncated, "
    "execution_time, memory_used, files, batch_id, limits_hit, kind, memory_limit_mb, "
    "cpu_limit, network_access, files_created"
)


def _from_row(row: aiosqlite.Row) -> Evaluation:
    return Evaluation(
        eval_id=row["eval_id"],
        owner=row["owner"],
        language=row["language"],
        engine=row["engine"],
        code=row["code"],
        timeout=row["timeout"],
        status=EvalStatus(row["status"]),
        created_at=parse_iso_required(row["created_at"]),
        started_at=parse_iso(row["started_at"]),
        completed_at=parse_iso(row["completed_at"]),
        output=row["output"],
        error=row["error"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        output_truncated=bool(row["output_truncated"]),
        error_truncated=bool(row["error_truncated"]),
        execution_time=row["execution_time"],
        memory_used=row["memory_used"],
        files=json.loads(row["files"]) if row["files"] else {},
        batch_id=row["batch_id"],
        limits_hit=json.loads(row["limits_hit"]) if row["limits_hit"] else [],
        kind=row["kind"],
        memory_limit_mb=row["memory_limit_mb"],
        cpu_limit=row["cpu_limit"],
        network_access=bool(row["network_access"]),
        files_created=msgspec.json.decode(row["files_created"] or "[]", type=list[CreatedFile]),
    )


class EvaluationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_many(self, evaluations: Sequence[Evaluation]) -> None:
        """All or nothing: one transaction for the whole batch."""
        sql = (
            "INSERT INTO evaluations (eval_id, owner, language, engine, code, timeout, "
            "status, created_at, files, batch_id, kind, memory_limit_mb, cpu_limit, network_access) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [
            (
                e.eval_id,
                e.owner,
                e.language,
                e.engine,
                e.code,
                e.timeout,
                e.status.value,
                iso_z(e.created_at),
                json.dumps(e.files),
                e.batch_id,
                e.kind,
                e.memory_limit_mb,
                e.cpu_limit,
                int(e.network_access),
            )
            for e in evaluations
        ]
        if len(rows) == 1:  # one statement is atomic on its own
            await self._db.write_one(sql, rows[0])
            return
        async with self._db.write() as conn:
            await conn.executemany(sql, rows)

    async def get(self, eval_id: str) -> Evaluation | None:
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM evaluations WHERE eval_id = ?", (eval_id,))
        return None if row is None else _from_row(row)

    async def list(
        self,
        *,
        owner: str | None,
        status: EvalStatus | None,
        limit: int,
        offset: int,
        kind: str = KIND_EVALUATION,
    ) -> tuple[list[Evaluation], int]:
        """Newest first; `owner=None` means every owner. Returns (page, total count)."""
        where, params = ["kind = ?"], [kind]
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM evaluations {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = await self._db.fetch_count(f"SELECT count(*) FROM evaluations {clause}", params)
        return [_from_row(r) for r in rows], total

    # builtins.list: in this class body, `list` is the method above.
    async def queued_in_order(self) -> builtins.list[Evaluation]:
        rows = await self._db.fetch_all(f"SELECT {_COLUMNS} FROM evaluations WHERE status = 'queued' ORDER BY seq")
        return [_from_row(r) for r in rows]

    async def count_by_status(self) -> dict[EvalStatus, int]:
        rows = await self._db.fetch_all("SELECT status, count(*) FROM evaluations GROUP BY status")
        return {EvalStatus(r[0]): r[1] for r in rows}

    async def claim(self, eval_id: str, started_at: datetime) -> Evaluation | None:
        """Queued -> running, on the writer, returning the row; None if it was no longer
        queued (killed meanwhile). Done in one statement so no reader snapshot is involved."""
        _, rows = await self._db.write_one(
            "UPDATE evaluations SET status = 'running', started_at = ? "
            f"WHERE eval_id = ? AND status = 'queued' RETURNING {_COLUMNS}",
            (iso_z(started_at), eval_id),
        )
        return _from_row(rows[0]) if rows else None

    async def save_progress(self, eval_id: str, output: str, error: str) -> None:
        await self._db.write_one(
            "UPDATE evaluations SET output = ?, error = ? WHERE eval_id = ? AND status = 'running'",
            (output, error, eval_id),
        )

    async def finish(self, evaluation: Evaluation) -> bool:
        """Store the final state; False if it had already ended (first writer wins)."""
        e = evaluation
        changed, _ = await self._db.write_one(
            "UPDATE evaluations SET status = ?, started_at = ?, completed_at = ?, "
            "output = ?, error = ?, exit_code = ?, reason = ?, output_truncated = ?, "
            "error_truncated = ?, execution_time = ?, memory_used = ?, limits_hit = ?, files_created = ? "
            "WHERE eval_id = ? AND status IN ('queued', 'running')",
            (
                e.status.value,
                iso_z(e.started_at),
                iso_z(e.completed_at),
                e.output,
                e.error,
                e.exit_code,
                e.reason,
                int(e.output_truncated),
                int(e.error_truncated),
                e.execution_time,
                e.memory_used,
                json.dumps(e.limits_hit),
                msgspec.json.encode(e.files_created).decode(),
                e.eval_id,
            ),
        )
        return changed == 1

    async def fail_interrupted(self, reason: str, completed_at: datetime) -> int:
        """After a restart: whatever was running when the process died has failed, and
        so has every queued execution: its caller waited on a connection that is gone,
        and its environment, kept in memory only, with it."""
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "UPDATE evaluations SET status = 'failed', reason = ?, completed_at = ?, "
                "error = CASE WHEN error = '' THEN ? ELSE error || char(10) || ? END "
                "WHERE status = 'running'",
                (reason, iso_z(completed_at), _RESTART_MESSAGE, _RESTART_MESSAGE),
            )
            queued = await conn.execute(
                "UPDATE evaluations SET status = 'failed', reason = ?, completed_at = ?, error = ? "
                "WHERE status = 'queued' AND kind = ?",
                (reason, iso_z(completed_at), _RESTART_QUEUED_MESSAGE, KIND_EXECUTION),
            )
            return cursor.rowcount + queued.rowcount


_RESTART_MESSAGE = "[appliance] the appliance restarted while this evaluation was running"
_RESTART_QUEUED_MESSAGE = (
    "[appliance] the appliance restarted before this execution started; its caller was gone, so it was not run"
)
