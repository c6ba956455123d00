"""Rows of the `api_keys` table. Secrets are never stored, only their argon2 hashes."""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.store.database import Database


class ApiKeyRecord(msgspec.Struct, kw_only=True):
    key_id: str
    name: str
    owner: str
    permissions: list[str]
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


def _from_row(row: aiosqlite.Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row["key_id"],
        name=row["name"],
        owner=row["owner"],
        permissions=json.loads(row["permissions"]),
        secret_hash=row["secret_hash"],
        created_at=parse_iso_required(row["created_at"]),
        expires_at=parse_iso(row["expires_at"]),
        revoked_at=parse_iso(row["revoked_at"]),
        last_used_at=parse_iso(row["last_used_at"]),
    )


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, record: ApiKeyRecord) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                "INSERT INTO api_keys (key_id, name, owner, permissions, secret_hash, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key_id,
                    record.name,
                    record.owner,
                    json.dumps(record.permissions),
                    record.secret_hash,
                    iso_z(record.created_at),
                    iso_z(record.expires_at),
                ),
            )

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._db.fetch_one("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
        return None if row is None else _from_row(row)

    async def list(self) -> list[ApiKeyRecord]:
        rows = await self._db.fetch_all("SELECT * FROM api_keys ORDER BY created_at")
        return [_from_row(r) for r in rows]

    async def count(self) -> int:
        return await self._db.fetch_count("SELECT count(*) FROM api_keys")

    async def revoke(self, key_id: str, when: datetime) -> bool:
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (iso_z(when), key_id),
            )
            return cursor.rowcount == 1

    async def touch(self, key_id: str, when: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (iso_z(when), key_id))
