"""Experiments as reports see them (core/reports.py), made here so rendering is tested
without a server; and experiments with completed runs written into a server's database
(`insert_experiment`), for the tests through the API."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.core import statistics as st
from appliance.core.reports import MetricPoint, ReportExperiment, ReportRun, TelemetryPoint
from appliance.services.statistics.engine import run_test

START = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
NOW = "2024-01-15T10:00:00.000Z"


def insert_experiment(
    db: Path, experiment_id: str, runs: list[tuple[dict[str, Any], dict[str, float]]], owner: str = "admin"
) -> None:
    """An experiment and its completed runs (hyperparameters, final metrics) as rows of
    migration 0008's tables, as the experiments service writes them; each metric's
    history is five steps rising to its final value."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO experiments (id, owner, name, status, config, created_at, updated_at) "
            "VALUES (?, ?, ?, 'completed', '{}', ?, ?)",
            (experiment_id, owner, f"Experiment {experiment_id}", NOW, NOW),
        )
        for position, (hyperparameters, metrics) in enumerate(runs):
            run_id = f"run_{experiment_id}_{position}"
            conn.execute(
                "INSERT INTO runs (id, experiment_id, owner, position, status, hyperparameters, metrics, seed, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'completed', ?, ?, ?, ?, ?)",
                (
                    run_id,
                    experiment_id,
                    owner,
                    position,
                    json.dumps(hyperparameters),
                    json.dumps(metrics),
                    position,
                    NOW,
                    NOW,
                ),
            )
            conn.executemany(
                "INSERT INTO run_metrics (run_id, name, step, value, timestamp) VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, name, step, value * (step + 1) / 5, NOW)
                    for name, value in metrics.items()
                    for step in range(5)
                ],
            )


def runs(prefix: str, accuracies: list[float], lr: float) -> list[ReportRun]:
    made = []
    for index, accuracy in enumerate(accuracies):
        history = {
            "accuracy": [MetricPoint(step, accuracy * (1 - math.exp(-(step + 1) / 3))) for step in range(10)],
            "loss": [MetricPoint(step, (1 - accuracy) + 1 / (step + 1)) for step in range(10)],
        }
        made.append(
            ReportRun(
                id=f"run_{prefix}{index}",
                status="completed",
                hyperparameters={"learning_rate": lr, "seed": index},
                metrics={"accuracy": accuracy, "loss": history["loss"][-1].value},
                history=history,
                started_at=START + timedelta(minutes=index),
                completed_at=START + timedelta(minutes=index + 5),
            )
        )
    return made


def telemetry(offset_ms: float, count: int = 30) -> list[TelemetryPoint]:
    return [
        TelemetryPoint(
            timestamp=START + timedelta(minutes=i), series="duration_ms", value=offset_ms + 20 * math.sin(i / 4)
        )
        for i in range(count)
    ]


def stored_result(experiment_id: str) -> st.StatisticalResult:
    spec = st.TestSpec(test_type=st.TestType.WELCH_T, groups=["a", "b"], options=st.TestOptions())
    data = st.GroupedValues(groups=["a", "b"], values=[[0.91, 0.93, 0.92, 0.95], [0.81, 0.84, 0.80, 0.83]])
    return st.StatisticalResult(
        id="stat_fixture000001",
        owner="admin",
        experiment_id=experiment_id,
        test_type=st.TestType.WELCH_T,
        groups=["a", "b"],
        metric="accuracy",
        group_field=None,
        pair_field=None,
        source=st.DataSource.INLINE,
        alpha=0.05,
        alternative=st.Alternative.TWO_SIDED,
        options=st.TestOptions(),
        outcome=run_test(spec, data, "accuracy"),
        pairs=None,
        unpaired_dropped=0,
        created_at=START,
    )


def experiments() -> list[ReportExperiment]:
    """A baseline, a clearly better and an indistinguishable experiment, 5 runs each;
    names with characters LaTeX and HTML must escape."""
    baseline = ReportExperiment(
        id="exp_base",
        name="Baseline_v1 & 50% <old>",
        status="completed",
        config={"type": "code", "dataset": "mmlu"},
        created_at=START,
        runs=runs("b", [0.80, 0.82, 0.79, 0.81, 0.83], 0.01),
        telemetry=telemetry(200),
    )
    better = ReportExperiment(
        id="exp_better",
        name="Tuned lr=0.001 ~ café",
        status="completed",
        config={"type": "code", "dataset": "mmlu", "lr": 0.001},
        created_at=START,
        runs=runs("t", [0.91, 0.93, 0.92, 0.94, 0.90], 0.001),
        telemetry=telemetry(150),
        results=[stored_result("exp_better")],
    )
    same = ReportExperiment(
        id="exp_same",
        name="Same {again} #3",
        status="completed",
        config={"type": "code"},
        created_at=START,
        runs=runs("s", [0.81, 0.80, 0.82, 0.84, 0.79], 0.01),
    )
    return [baseline, better, same]
