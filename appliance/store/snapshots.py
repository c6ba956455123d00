"""Rows of the `sandbox_snapshots` table."""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.sandboxes import SandboxResources, SnapshotRecord
from appliance.store.database import Database

_COLUMNS = (
    "snapshot_id, sandbox_id, owner, name, description, type, compressed, status, status_reason, "
    "tags, environment, runtime, memory_limit, cpu_limit, disk_limit, network_enabled, allowed_hosts, size_bytes, "
    "content_bytes, file_count, created_at, completed_at"
)


def _from_row(row: aiosqlite.Row) -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=row["snapshot_id"],
        sandbox_id=row["sandbox_id"],
        owner=row["owner"],
        name=row["name"],
        description=row["description"],
        type=row["type"],
        compressed=bool(row["compressed"]),
        status=row["status"],
        status_reason=row["status_reason"],
        tags=json.loads(row["tags"]),
        environment=json.loads(row["environment"]),
        runtime=row["runtime"],
        resources=SandboxResources(
            memory_limit=row["memory_limit"], cpu_limit=row["cpu_limit"], disk_limit=row["disk_limit"]
        ),
        network_enabled=bool(row["network_enabled"]),
        allowed_hosts=json.loads(row["allowed_hosts"]),
        size_bytes=row["size_bytes"],
        content_bytes=row["content_bytes"],
        file_count=row["file_count"],
        created_at=parse_iso_required(row["created_at"]),
        completed_at=parse_iso(row["completed_at"]),
    )


class SnapshotStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, s: SnapshotRecord) -> None:
        await self._db.write_one(
            f"INSERT INTO sandbox_snapshots ({_COLUMNS}) VALUES ({', '.join('?' * 22)})",
            (
                s.snapshot_id,
                s.sandbox_id,
                s.owner,
                s.name,
                s.description,
                s.type,
                int(s.compressed),
                s.status,
                s.status_reason,
                json.dumps(s.tags),
                json.dumps(s.environment),
                s.runtime,
                s.resources.memory_limit,
                s.resources.cpu_limit,
                s.resources.disk_limit,
                int(s.network_enabled),
                json.dumps(s.allowed_hosts),
                s.size_bytes,
                s.content_bytes,
                s.file_count,
                iso_z(s.created_at),
                iso_z(s.completed_at),
            ),
        )

    async def get(self, snapshot_id: str) -> SnapshotRecord | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM sandbox_snapshots WHERE snapshot_id = ?", (snapshot_id,)
        )
        return None if row is None else _from_row(row)

    async def for_sandbox(self, sandbox_id: str) -> list[SnapshotRecord]:
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sandbox_snapshots WHERE sandbox_id = ? ORDER BY seq", (sandbox_id,)
        )
        return [_from_row(r) for r in rows]

    async def ids_with_status(self, status: str) -> list[str]:
        rows = await self._db.fetch_all("SELECT snapshot_id FROM sandbox_snapshots WHERE status = ?", (status,))
        return [r[0] for r in rows]

    async def all_ids(self) -> set[str]:
        return {r[0] for r in await self._db.fetch_all("SELECT snapshot_id FROM sandbox_snapshots")}

    async def complete(
        self, snapshot_id: str, size_bytes: int, content_bytes: int, file_count: int, when: datetime
    ) -> None:
        await self._db.write_one(
            "UPDATE sandbox_snapshots SET status = 'completed', size_bytes = ?, content_bytes = ?, "
            "file_count = ?, completed_at = ? WHERE snapshot_id = ?",
            (size_bytes, content_bytes, file_count, iso_z(when), snapshot_id),
        )

    async def fail(self, snapshot_id: str, reason: str, when: datetime) -> None:
        await self._db.write_one(
            "UPDATE sandbox_snapshots SET status = 'failed', status_reason = ?, completed_at = ? WHERE snapshot_id = ?",
            (reason, iso_z(when), snapshot_id),
        )

    async def delete(self, snapshot_id: str) -> bool:
        changed, _ = await self._db.write_one("DELETE FROM sandbox_snapshots WHERE snapshot_id = ?", (snapshot_id,))
        return changed == 1
