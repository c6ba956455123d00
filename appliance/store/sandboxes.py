"""Rows of the `sandboxes` table (persistent sandboxes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from appliance.core.clock import iso_z, parse_iso_required
from appliance.core.sandboxes import SandboxRecord, SandboxResources
from appliance.store.database import Database, SqlValue

_COLUMNS = (
    "sandbox_id, owner, name, runtime, template, engine, image, status, status_reason, "
    "memory_limit, cpu_limit, disk_limit, network_enabled, allowed_hosts, environment, template_environment, "
    "container_id, created_at, last_activity"
)


def _from_row(row: aiosqlite.Row) -> SandboxRecord:
    return SandboxRecord(
        sandbox_id=row["sandbox_id"],
        owner=row["owner"],
        name=row["name"],
        runtime=row["runtime"],
        template=row["template"],
        engine=row["engine"],
        image=row["image"],
        status=row["status"],
        status_reason=row["status_reason"],
        resources=SandboxResources(
            memory_limit=row["memory_limit"], cpu_limit=row["cpu_limit"], disk_limit=row["disk_limit"]
        ),
        network_enabled=bool(row["network_enabled"]),
        allowed_hosts=json.loads(row["allowed_hosts"]),
        environment=json.loads(row["environment"]),
        template_environment=json.loads(row["template_environment"]),
        container_id=row["container_id"],
        created_at=parse_iso_required(row["created_at"]),
        last_activity=parse_iso_required(row["last_activity"]),
    )


class SandboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, s: SandboxRecord) -> None:
        await self._db.write_one(
            f"INSERT INTO sandboxes ({_COLUMNS}) VALUES ({', '.join('?' * 19)})",
            (
                s.sandbox_id,
                s.owner,
                s.name,
                s.runtime,
                s.template,
                s.engine,
                s.image,
                s.status,
                s.status_reason,
                s.resources.memory_limit,
                s.resources.cpu_limit,
                s.resources.disk_limit,
                int(s.network_enabled),
                json.dumps(s.allowed_hosts),
                json.dumps(s.environment),
                json.dumps(s.template_environment),
                s.container_id,
                iso_z(s.created_at),
                iso_z(s.last_activity),
            ),
        )

    async def get(self, sandbox_id: str) -> SandboxRecord | None:
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM sandboxes WHERE sandbox_id = ?", (sandbox_id,))
        return None if row is None else _from_row(row)

    async def all(self) -> list[SandboxRecord]:
        rows = await self._db.fetch_all(f"SELECT {_COLUMNS} FROM sandboxes ORDER BY seq")
        return [_from_row(r) for r in rows]

    async def count(self) -> int:
        return await self._db.fetch_count("SELECT count(*) FROM sandboxes")

    async def list(
        self, *, owner: str | None, status: str | None, runtime: str | None, limit: int, offset: int
    ) -> tuple[list[SandboxRecord], int]:
        """Oldest first (a page stays stable while new ones are created); `owner=None`
        means every owner. Returns (page, total matching)."""
        where: list[str] = []
        params: list[SqlValue] = []
        for column, value in (("owner", owner), ("status", status), ("runtime", runtime)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = await self._db.fetch_count(f"SELECT count(*) FROM sandboxes {clause}", params)
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sandboxes {clause} ORDER BY seq LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_from_row(r) for r in rows], total

    async def set_status(self, sandbox_id: str, status: str, reason: str | None = None) -> None:
        await self._db.write_one(
            "UPDATE sandboxes SET status = ?, status_reason = ? WHERE sandbox_id = ?", (status, reason, sandbox_id)
        )

    async def set_container(
        self, sandbox_id: str, status: str, container_id: str | None, reason: str | None = None
    ) -> None:
        await self._db.write_one(
            "UPDATE sandboxes SET status = ?, status_reason = ?, container_id = ? WHERE sandbox_id = ?",
            (status, reason, container_id, sandbox_id),
        )

    async def update_config(
        self,
        sandbox_id: str,
        resources: SandboxResources,
        environment: dict[str, str],
        network_enabled: bool,
        allowed_hosts: Sequence[str],
        when: datetime,
    ) -> None:
        await self._db.write_one(
            "UPDATE sandboxes SET memory_limit = ?, cpu_limit = ?, disk_limit = ?, environment = ?, "
            "network_enabled = ?, allowed_hosts = ?, last_activity = ? WHERE sandbox_id = ?",
            (
                resources.memory_limit,
                resources.cpu_limit,
                resources.disk_limit,
                json.dumps(environment),
                int(network_enabled),
                json.dumps(list(allowed_hosts)),
                iso_z(when),
                sandbox_id,
            ),
        )

    async def touch(self, sandbox_id: str, when: datetime) -> None:
        await self._db.write_one(
            "UPDATE sandboxes SET last_activity = ? WHERE sandbox_id = ?", (iso_z(when), sandbox_id)
        )

    async def delete(self, sandbox_id: str) -> bool:
        changed, _ = await self._db.write_one("DELETE FROM sandboxes WHERE sandbox_id = ?", (sandbox_id,))
        return changed == 1
