"""Runs' metric values for statistical tests, read from the `runs` table of migration
0008 (experiments and runs): one value per completed run, its latest value of the
metric, grouped by a hyperparameter and keyed, for pairs, by its seed or another
hyperparameter.

Until experiments are part of the appliance the table does not exist, and
`ExperimentOwners` knows no experiment: every test on one is a 404.
"""

from __future__ import annotations

import sqlite3

from appliance.core.statistics import KeyedValue, MetricQuery
from appliance.store.database import Database, SqlValue

HYPERPARAMETERS = "hyperparameters."
METRICS = "metrics."


def _json_path(name: str) -> str:
    if '"' in name or "\\" in name:
        raise ValueError(f"{name!r} cannot be a JSON key path")
    return f'$."{name}"'


def _field(field: str) -> tuple[str, tuple[SqlValue, ...]]:
    """The SQL expression of a run field a test may group or pair by."""
    if field == "seed":
        return "seed", ()
    if field.startswith(HYPERPARAMETERS):
        return "json_extract(hyperparameters, ?)", (_json_path(field[len(HYPERPARAMETERS) :]),)
    raise ValueError(f"runs have no field {field!r}")


def _text(value: SqlValue) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class RunValues:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def values(self, query: MetricQuery) -> list[KeyedValue]:
        metric = query.metric[len(METRICS) :] if query.metric.startswith(METRICS) else query.metric
        group_sql, group_params = _field(query.group_field)
        pair_sql, pair_params = _field(query.pair_field) if query.pair_field else ("NULL", ())
        sql = (
            f"SELECT {group_sql} AS grp, json_extract(metrics, ?) AS value, {pair_sql} AS pair FROM runs "
            f"WHERE experiment_id = ? AND status = 'completed' AND grp IS NOT NULL AND value IS NOT NULL "
            "ORDER BY position, id"
        )
        params = (*group_params, _json_path(metric), *pair_params, query.experiment_id)
        rows = await self._db.fetch_all(sql, params)
        return [
            KeyedValue(
                group=_text(row["grp"]),
                value=float(row["value"]),
                pair=None if row["pair"] is None else _text(row["pair"]),
            )
            for row in rows
            if isinstance(row["value"], int | float)
        ]


class ExperimentOwners:
    """Who owns an experiment, from the `experiments` table (None: no such experiment,
    or no experiments table in this build)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def owner_of(self, experiment_id: str) -> str | None:
        try:
            row = await self._db.fetch_one("SELECT owner FROM experiments WHERE id = ?", (experiment_id,))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else str(row["owner"])
