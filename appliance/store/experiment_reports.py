"""An experiment as reports see it (core/reports.py), read from the tables of migration
0008 (experiments, runs, run_metrics): its config, its runs with their final metrics
and metric history. Telemetry series come from the telemetry store, not from here.

Until experiments are part of the appliance those tables do not exist and no
experiment is found.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from appliance.core.clock import parse_iso, parse_iso_required
from appliance.core.reports import MetricPoint, ReportExperiment, ReportRun
from appliance.store.database import Database

MAX_HISTORY_POINTS = 200_000  # per experiment: a report draws lines, it needs no more


class ExperimentReports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, experiment_id: str) -> tuple[str, ReportExperiment] | None:
        """The experiment's owner and its picture; None when there is none."""
        try:
            row = await self._db.fetch_one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
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
