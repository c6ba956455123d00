"""Rows of the `meta` table: small facts about this installation."""

from __future__ import annotations

from collections.abc import Callable

from appliance.store.database import Database


class MetaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        value = await self._db.fetch_value("SELECT value FROM meta WHERE key = ?", (key,))
        assert value is None or isinstance(value, str), "meta values are TEXT"
        return value

    async def get_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value, or `make()` stored now; the first writer wins."""
        value = await self.get(key)
        if value is not None:
            return value
        async with self._db.write() as conn:
            await conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make()))
        stored = await self.get(key)
        assert stored is not None, "inserted just now, or by the writer that came first"
        return stored
