"""Rows of `statistical_results`: stored test results, the outcome kept as JSON."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from appliance.core.clock import iso_z
from appliance.core.listing import ListPage, ListQuery
from appliance.core.statistics import StatisticalResult
from appliance.store.database import Database
from appliance.store.listing import Condition, ListTable, fetch_page

RESULT_LIST = ListTable(
    table="statistical_results",
    id_column="stat_id",
    columns={
        "id": "stat_id",
        "experiment_id": "experiment_id",
        "test_type": "test_type",
        "metric": "metric",
        "p_value": "p_value",
        "created_at": "created_at",
    },
)

_decoder = msgspec.json.Decoder(StatisticalResult)


def _from_row(row: aiosqlite.Row) -> StatisticalResult:
    return _decoder.decode(row["body"])


class StatisticalResultStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, result: StatisticalResult) -> bool:
        """False when its experiment is gone (deleted while the test ran)."""
        try:
            await self._db.write_one(
                "INSERT INTO statistical_results (stat_id, owner, experiment_id, test_type, metric, p_value, body, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.id,
                    result.owner,
                    result.experiment_id,
                    result.test_type.value,
                    result.metric,
                    result.outcome.p_value,
                    msgspec.json.encode(result).decode(),
                    iso_z(result.created_at),
                ),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    async def get(self, stat_id: str) -> StatisticalResult | None:
        row = await self._db.fetch_one("SELECT body FROM statistical_results WHERE stat_id = ?", (stat_id,))
        return None if row is None else _from_row(row)

    async def list_page(
        self, query: ListQuery, owner: str | None, experiment_id: str | None = None
    ) -> ListPage[StatisticalResult]:
        """Results of `owner` (every owner's when None), of one experiment if given."""
        scope: list[Condition] = []
        if owner is not None:
            scope.append(("owner = ?", (owner,)))
        if experiment_id is not None:
            scope.append(("experiment_id = ?", (experiment_id,)))
        return await fetch_page(self._db, RESULT_LIST, query, _from_row, scope)

    async def of_experiment(self, experiment_id: str) -> list[StatisticalResult]:
        rows = await self._db.fetch_all(
            "SELECT body FROM statistical_results WHERE experiment_id = ? ORDER BY created_at, stat_id",
            (experiment_id,),
        )
        return [_from_row(row) for row in rows]
