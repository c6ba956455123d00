"""Rows of the `llm_cache` table: model answers by the hash of what was asked."""

from __future__ import annotations

import msgspec

from appliance.core.clock import iso_z, utc_now
from appliance.core.llm.calls import Completion
from appliance.store.database import Database

_DECODER = msgspec.json.Decoder(Completion)


class LlmCacheStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, cache_key: str) -> Completion | None:
        value = await self._db.fetch_value("SELECT completion FROM llm_cache WHERE cache_key = ?", (cache_key,))
        if not isinstance(value, str | bytes):
            return None
        return _DECODER.decode(value)

    async def put(self, cache_key: str, provider: str, base_url: str, model: str, completion: Completion) -> None:
        await self._db.write_one(
            "INSERT OR REPLACE INTO llm_cache (cache_key, provider, base_url, model, completion, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (cache_key, provider, base_url, model, msgspec.json.encode(completion).decode(), iso_z(utc_now())),
        )

    async def count(self) -> int:
        return await self._db.fetch_count("SELECT count(*) FROM llm_cache")
