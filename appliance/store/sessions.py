"""Rows of the `sessions` table. The cookie's token is stored only as its SHA-256 hash:
the token is 256 random bits, so a slow hash would add nothing but latency."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from appliance.core.clock import iso_z, parse_iso_required
from appliance.core.listing import ListPage, ListQuery
from appliance.core.sessions import Session
from appliance.store.database import Database
from appliance.store.listing import Condition, ListTable, fetch_page

SESSION_LIST = ListTable(
    table="sessions",
    id_column="session_id",
    columns={
        "id": "session_id",
        "key_id": "key_id",
        "owner": "owner",
        "created_at": "created_at",
        "expires_at": "expires_at",
    },
)


def _from_row(row: aiosqlite.Row) -> Session:
    return Session(
        session_id=row["session_id"],
        key_id=row["key_id"],
        owner=row["owner"],
        created_at=parse_iso_required(row["created_at"]),
        expires_at=parse_iso_required(row["expires_at"]),
    )


class SessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, session: Session, token_hash: str) -> None:
        await self._db.write_one(
            "INSERT INTO sessions (session_id, token_hash, key_id, owner, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                session.session_id,
                token_hash,
                session.key_id,
                session.owner,
                iso_z(session.created_at),
                iso_z(session.expires_at),
            ),
        )

    async def by_token_hash(self, token_hash: str) -> Session | None:
        row = await self._db.fetch_one("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,))
        return None if row is None else _from_row(row)

    async def get(self, session_id: str) -> Session | None:
        row = await self._db.fetch_one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        return None if row is None else _from_row(row)

    async def delete(self, session_id: str) -> bool:
        changed, _ = await self._db.write_one("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        return changed == 1

    async def delete_of_key(self, key_id: str) -> int:
        changed, _ = await self._db.write_one("DELETE FROM sessions WHERE key_id = ?", (key_id,))
        return changed

    async def delete_expired(self, now: datetime) -> int:
        changed, _ = await self._db.write_one("DELETE FROM sessions WHERE expires_at <= ?", (iso_z(now),))
        return changed

    async def list_page(self, query: ListQuery, owner: str | None, now: datetime) -> ListPage[Session]:
        """Live sessions of keys of `owner`; of every owner when `owner` is None."""
        scope: list[Condition] = [("expires_at > ?", (iso_z(now),))]
        if owner is not None:
            scope.append(("owner = ?", (owner,)))
        return await fetch_page(self._db, SESSION_LIST, query, _from_row, scope)
