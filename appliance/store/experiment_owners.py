"""Whose experiments are, for telemetry ingest: the narrow read it needs of the
experiments table (id, owner), and nothing else of it. Before there is an experiments
table (an appliance without the experiments API) there is no registry: `owners`
answers None and an experiment id in telemetry is a free label.
"""

from __future__ import annotations

from collections.abc import Collection

from appliance.store.database import Database


class ExperimentOwnerLookup:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._has_table: bool | None = None

    async def owners(self, experiment_ids: Collection[str]) -> dict[str, str | None] | None:
        if self._has_table is None:
            found = await self._db.fetch_one(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'"
            )
            self._has_table = found is not None
        if not self._has_table:
            return None
        ids = list(experiment_ids)
        owners: dict[str, str | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = await self._db.fetch_all(
                f"SELECT id, owner FROM experiments WHERE id IN ({','.join('?' * len(part))})", part
            )
            for row in rows:
                owners[str(row[0])] = str(row[1])
        return owners
