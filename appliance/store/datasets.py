"""Rows of `datasets` and `dataset_items`: imported benchmark datasets, each item as JSON."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso_required
from appliance.core.llm.datasets import Dataset, DatasetItem, Kind
from appliance.store.database import Database

_ITEM = msgspec.json.Decoder(DatasetItem)


def _from_row(row: aiosqlite.Row) -> Dataset:
    return Dataset(
        name=row["name"],
        kind=Kind(row["kind"]),
        item_count=row["item_count"],
        source=row["source"],
        owner=row["owner"],
        created_at=parse_iso_required(row["created_at"]),
    )


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, dataset: Dataset, items: Sequence[DatasetItem], append: bool) -> Dataset:
        """Stores `items` (after the dataset's own when appending; in place of them
        otherwise) in one transaction; the dataset as stored."""
        async with self._db.write() as conn:
            start = 0
            if append:
                cursor = await conn.execute("SELECT item_count FROM datasets WHERE name = ?", (dataset.name,))
                row = await cursor.fetchone()
                start = int(row[0]) if row is not None else 0
            else:
                await conn.execute("DELETE FROM datasets WHERE name = ?", (dataset.name,))
            count = start + len(items)
            await conn.execute(
                "INSERT INTO datasets (name, kind, item_count, source, owner, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET item_count = excluded.item_count, kind = excluded.kind",
                (dataset.name, dataset.kind.value, count, dataset.source, dataset.owner, iso_z(dataset.created_at)),
            )
            await conn.executemany(
                "INSERT INTO dataset_items (dataset, position, item) VALUES (?, ?, ?)",
                [(dataset.name, start + i, msgspec.json.encode(item).decode()) for i, item in enumerate(items)],
            )
        stored = await self.get(dataset.name)
        assert stored is not None
        return stored

    async def get(self, name: str) -> Dataset | None:
        row = await self._db.fetch_one("SELECT * FROM datasets WHERE name = ?", (name,))
        return None if row is None else _from_row(row)

    async def list_all(self) -> list[Dataset]:
        return [_from_row(row) for row in await self._db.fetch_all("SELECT * FROM datasets ORDER BY name")]

    async def items(self, name: str, limit: int = -1, offset: int = 0) -> list[DatasetItem]:
        rows = await self._db.fetch_all(
            "SELECT item FROM dataset_items WHERE dataset = ? ORDER BY position LIMIT ? OFFSET ?",
            (name, limit, offset),
        )
        return [_ITEM.decode(row["item"]) for row in rows]

    async def delete(self, name: str) -> bool:
        changed, _ = await self._db.write_one("DELETE FROM datasets WHERE name = ?", (name,))
        return changed == 1
