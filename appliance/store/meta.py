"""Rows of the `meta` table: small facts about this installation."""

from __future__ import annotations

from appliance.store.database import Database


class MetaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        return await self._db.fetch_value("SELECT value FROM meta WHERE key = ?", (key,))

    async def get_or_create(self, key: str, make) -> str:
        """The stored value, or `make()` stored now; the first writer wins."""
        value = await self.get(key)
        if value is not None:
            return value
        async with self._db.write() as conn:
            await conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make()))
        return await self.get(key)
