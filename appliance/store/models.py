"""Rows of the `models` table: the model registry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso_required
from appliance.core.listing import ListPage, ListQuery
from appliance.core.models import Model, ModelSource
from appliance.store.database import Database
from appliance.store.listing import Condition, ListTable, fetch_page

MODEL_LIST = ListTable(
    table="models",
    id_column="model_id",
    columns={
        "id": "model_id",
        "name": "name COLLATE NOCASE",
        "provider": "provider",
        "type": "type",
        "status": "status",
        "source": "source",
        "created_at": "created_at",
        "updated_at": "updated_at",
    },
)


def _from_row(row: aiosqlite.Row) -> Model:
    return Model(
        id=row["model_id"],
        name=row["name"],
        provider=row["provider"],
        type=row["type"],
        config=json.loads(row["config"]),
        status=row["status"],
        owner=row["owner"],
        source=ModelSource(row["source"]),
        created_at=parse_iso_required(row["created_at"]),
        updated_at=parse_iso_required(row["updated_at"]),
    )


def _values(model: Model) -> tuple[str, ...]:
    return (
        model.name,
        model.provider,
        model.type,
        json.dumps(model.config, sort_keys=True),
        model.status,
        model.owner,
        model.source.value,
        iso_z(model.created_at),
        iso_z(model.updated_at),
        model.id,
    )


def _same_entry(a: Model, b: Model) -> bool:
    return (a.name, a.provider, a.type, a.config, a.status) == (b.name, b.provider, b.type, b.config, b.status)


class SeedClash(Exception):
    """A `models` setting's id is taken by an entry made through the API."""


_INSERT = (
    "INSERT INTO models (name, provider, type, config, status, owner, source, created_at, updated_at, model_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE models SET name = ?, provider = ?, type = ?, config = ?, status = ?, owner = ?, source = ?, "
    "created_at = ?, updated_at = ? WHERE model_id = ?"
)


class ModelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, model: Model) -> None:
        await self._db.write_one(_INSERT, _values(model))

    async def update(self, model: Model) -> bool:
        changed, _ = await self._db.write_one(_UPDATE, _values(model))
        return changed == 1

    async def delete(self, model_id: str) -> bool:
        changed, _ = await self._db.write_one(
            "DELETE FROM models WHERE model_id = ? AND source = ?", (model_id, ModelSource.API.value)
        )
        return changed == 1

    async def get(self, model_id: str) -> Model | None:
        row = await self._db.fetch_one("SELECT * FROM models WHERE model_id = ?", (model_id,))
        return None if row is None else _from_row(row)

    async def visible(self, owner: str | None) -> list[Model]:
        """Every entry of `owner` and of the config file (every entry when None)."""
        if owner is None:
            rows = await self._db.fetch_all("SELECT * FROM models ORDER BY model_id")
        else:
            rows = await self._db.fetch_all(
                "SELECT * FROM models WHERE owner = ? OR source = ? ORDER BY model_id",
                (owner, ModelSource.CONFIG.value),
            )
        return [_from_row(row) for row in rows]

    async def list_page(self, query: ListQuery, owner: str | None) -> ListPage[Model]:
        """Entries of `owner` and of the config file; every entry when `owner` is None."""
        scope: list[Condition] = []
        if owner is not None:
            scope.append(("owner = ? OR source = ?", (owner, ModelSource.CONFIG.value)))
        return await fetch_page(self._db, MODEL_LIST, query, _from_row, scope)

    async def sync_seeds(self, seeds: Sequence[Model], now: datetime) -> None:
        """Make the config file's entries exactly `seeds`: new ones added, changed ones
        updated (keeping when they were first seen), those no longer listed removed."""
        async with self._db.write() as conn:
            rows = await conn.execute_fetchall(
                "SELECT * FROM models WHERE model_id IN (SELECT value FROM json_each(?))",
                (json.dumps([s.id for s in seeds]),),
            )
            existing = {row["model_id"]: _from_row(row) for row in rows}
            for seed in seeds:
                old = existing.get(seed.id)
                if old is None:
                    await conn.execute(_INSERT, _values(seed))
                elif old.source is not ModelSource.CONFIG:
                    raise SeedClash(f"models: id {seed.id} is already used by a model made through the API")
                elif not _same_entry(old, seed):
                    kept = msgspec.structs.replace(seed, created_at=old.created_at, updated_at=now)
                    await conn.execute(_UPDATE, _values(kept))
            await conn.execute(
                "DELETE FROM models WHERE source = ? AND model_id NOT IN (SELECT value FROM json_each(?))",
                (ModelSource.CONFIG.value, json.dumps([s.id for s in seeds])),
            )
