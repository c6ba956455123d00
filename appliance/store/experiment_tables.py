"""Everything statistics and reports read of the experiments' tables (migration 0008:
experiments, runs, run_metrics), in this one module, so a change to that schema is
adapted here alone:

- `ExperimentOwners`: who owns an experiment;
- `RunValues`: one value per completed run, its latest value of a metric, grouped by a
  hyperparameter and keyed, for pairs, by its seed or another hyperparameter; or with
  the run's tags (migration 0012), for statistics to group or pair by them;
- `ExperimentReports`: an experiment as reports see it (core/reports.py), its config,
  its runs with their final metrics and metric history.

Until experiments are part of the appliance those tables do not exist: no experiment is
found, and every test or report on one is a 404.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence

import msgspec

from appliance.core.clock import parse_iso, parse_iso_required
from appliance.core.reports import MetricPoint, ReportExperiment, ReportRun
from appliance.core.statistics import KeyedValue, MetricQuery
from appliance.store.database import Database, SqlValue

HYPERPARAMETERS = "hyperparameters."
TAGS = "tags"
METRICS = "metrics."
MAX_HISTORY_POINTS = 200_000  # per experiment: a report draws lines, it needs no more


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


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


def _tag_field(field: str | None) -> bool:
    return field is not None and (field == TAGS or field.startswith(TAGS + "."))


def _text(value: SqlValue) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class TaggedValue(msgspec.Struct, frozen=True, kw_only=True):
    """A completed run's value of a metric with its tags; `group` and `pair` are the
    values of group_field and pair_field when those are no tag fields (None otherwise:
    the caller reads them off `tags`)."""

    run_id: str
    value: float
    tags: list[str]
    group: str | None
    pair: str | None


class ExperimentOwners:
    """Who owns an experiment (None: no such experiment, or no experiments table)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def owner_of(self, experiment_id: str) -> str | None:
        try:
            row = await self._db.fetch_one("SELECT owner FROM experiments WHERE id = ?", (experiment_id,))
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return None
            raise
        return None if row is None else str(row["owner"])


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

    async def tagged_values(self, query: MetricQuery) -> list[TaggedValue]:
        """Every completed run's value of the metric with its tags, for a query whose
        group_field or pair_field is a tag field (`tags`, `tags.<key>`)."""
        metric = query.metric[len(METRICS) :] if query.metric.startswith(METRICS) else query.metric
        group_sql, group_params = ("NULL", ()) if _tag_field(query.group_field) else _field(query.group_field)
        pair_sql, pair_params = (
            ("NULL", ()) if query.pair_field is None or _tag_field(query.pair_field) else _field(query.pair_field)
        )
        rows = await self._db.fetch_all(
            f"SELECT id, tags, json_extract(metrics, ?) AS value, {group_sql} AS grp, {pair_sql} AS pair FROM runs "
            "WHERE experiment_id = ? AND status = 'completed' AND value IS NOT NULL ORDER BY position, id",
            (_json_path(metric), *group_params, *pair_params, query.experiment_id),
        )
        return [
            TaggedValue(
                run_id=row["id"],
                value=float(row["value"]),
                tags=[t for t in json.loads(row["tags"]) if isinstance(t, str)],
                group=None if row["grp"] is None else _text(row["grp"]),
                pair=None if row["pair"] is None else _text(row["pair"]),
            )
            for row in rows
            if isinstance(row["value"], int | float)
        ]

    async def fields_naming(self, experiment_id: str, groups: Sequence[str]) -> list[str]:
        """The group fields (`hyperparameters.<name>`, or `tags`) under which the
        experiment's completed runs take every one of `groups` as a value (as a tag):
        what a test that names its groups but no group_field can only mean."""
        rows = await self._db.fetch_all(
            "SELECT DISTINCT h.key AS name, h.value AS value FROM runs r, json_each(r.hyperparameters) h "
            "WHERE r.experiment_id = ? AND r.status = 'completed' AND h.type IN ('text', 'integer', 'real')",
            (experiment_id,),
        )
        taken: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            taken[str(row["name"])].add(_text(row["value"]))
        fields = sorted(f"{HYPERPARAMETERS}{name}" for name, values in taken.items() if set(groups) <= values)
        tags = await self._db.fetch_all(
            "SELECT DISTINCT t.value AS tag FROM runs r, json_each(r.tags) t "
            "WHERE r.experiment_id = ? AND r.status = 'completed'",
            (experiment_id,),
        )
        if set(groups) <= {str(row["tag"]) for row in tags}:
            fields.append(TAGS)
        return fields


class ExperimentReports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, experiment_id: str) -> tuple[str, ReportExperiment] | None:
        """The experiment's owner and its picture; None when there is none."""
        try:
            row = await self._db.fetch_one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return None
            raise
        if row is None:
            return None
        run_rows = await self._db.fetch_all(
            "SELECT * FROM runs WHERE experiment_id = ? ORDER BY position, id", (experiment_id,)
        )
        points = await self._db.fetch_all(
            "SELECT m.run_id, m.name, m.step, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id "
            "WHERE r.experiment_id = ? ORDER BY m.run_id, m.name, m.step LIMIT ?",
            (experiment_id, MAX_HISTORY_POINTS),
        )
        history: dict[str, dict[str, list[MetricPoint]]] = defaultdict(lambda: defaultdict(list))
        for point in points:
            history[point["run_id"]][point["name"]].append(MetricPoint(int(point["step"]), float(point["value"])))
        runs = [
            ReportRun(
                id=r["id"],
                status=r["status"],
                hyperparameters=json.loads(r["hyperparameters"]),
                tags=json.loads(r["tags"]),
                metrics={k: float(v) for k, v in json.loads(r["metrics"]).items() if isinstance(v, int | float)},
                history={name: list(values) for name, values in history[r["id"]].items()},
                started_at=parse_iso(r["started_at"]),
                completed_at=parse_iso(r["completed_at"]),
            )
            for r in run_rows
        ]
        experiment = ReportExperiment(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            status=row["status"],
            config=json.loads(row["config"]),
            created_at=parse_iso_required(row["created_at"]),
            started_at=parse_iso(row["started_at"]),
            completed_at=parse_iso(row["completed_at"]),
            runs=runs,
        )
        return str(row["owner"]), experiment
