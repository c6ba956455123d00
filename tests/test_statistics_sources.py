"""Where a test's values come from: pairing by item, runs' metrics grouped by a
hyperparameter (on migration 0008's `runs` table), and a server that starts without
importing scipy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance.core.errors import ValidationError
from appliance.core.statistics import KeyedValue, MetricQuery
from appliance.services.statistics.sources import group_values
from appliance.store.database import Database
from appliance.store.experiment_tables import ExperimentOwners, RunValues
from tests.support import ROOT


def keyed(group: str, pairs: dict[str, float]) -> list[KeyedValue]:
    return [KeyedValue(group=group, value=v, pair=k) for k, v in pairs.items()]


def test_pairs_line_up_by_item_and_unmatched_items_are_counted():
    values = keyed("b", {"q2": 0.0, "q1": 1.0, "q3": 1.0}) + keyed("a", {"q1": 1.0, "q2": 1.0, "q4": 0.0})
    grouped = group_values(values, ["a", "b"], paired=True)
    assert grouped.groups == ["a", "b"] and grouped.pair_ids == [["q1", "q2"], ["q1", "q2"]]
    assert grouped.values == [[1.0, 1.0], [1.0, 0.0]] and grouped.unpaired_dropped == 2
    assert group_values(values, None, paired=False).groups == ["a", "b"]  # every group found, sorted


def test_an_item_twice_in_a_group_or_a_missing_group_is_refused():
    with pytest.raises(ValidationError) as caught:
        group_values(keyed("a", {"q1": 1.0}) + keyed("a", {"q1": 0.0}) + keyed("b", {"q1": 1.0}), None, True)
    assert caught.value.details == {"field": "pair_field", "reason": caught.value.details["reason"]}  # type: ignore[index]
    with pytest.raises(ValidationError, match="no values for 'c'"):
        group_values(keyed("a", {"q1": 1.0}), ["a", "c"], False)


def test_starting_the_server_does_not_import_scipy():
    code = (
        "import sys; import appliance.app, appliance.http.app_factory, appliance.cli;"
        "print('scipy' in sys.modules or 'numpy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


async def test_run_values_group_by_a_hyperparameter_and_pair_by_seed(tmp_path):
    db = Database(tmp_path / "appliance.db")
    await db.open()
    try:
        now = "2024-01-15T10:00:00.000Z"
        await db.write_one(
            "INSERT INTO experiments (id, owner, name, status, config, created_at, updated_at) "
            "VALUES ('exp_1', 'alice', 'e', 'completed', '{}', ?, ?)",
            (now, now),
        )
        runs = [
            ("run_1", "gpt", 1, 0.9, "completed"),
            ("run_2", "gpt", 2, 0.8, "completed"),
            ("run_3", "llama", 1, 0.7, "completed"),
            ("run_4", "llama", 2, 0.6, "completed"),
            ("run_5", "llama", 3, 0.1, "failed"),
        ]
        for position, (run_id, model, seed, accuracy, status) in enumerate(runs):
            await db.write_one(
                "INSERT INTO runs (id, experiment_id, owner, position, status, hyperparameters, metrics, seed, "
                "created_at, updated_at) VALUES (?, 'exp_1', 'alice', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    position,
                    status,
                    json.dumps({"model": model}),
                    json.dumps({"accuracy": accuracy}),
                    seed,
                    now,
                    now,
                ),
            )
        query = MetricQuery(
            experiment_id="exp_1",
            metric="accuracy",
            group_field="hyperparameters.model",
            pair_field="seed",
            groups=None,
        )
        found = await RunValues(db).values(query)
        assert sorted((k.group, k.pair, k.value) for k in found) == [
            ("gpt", "1", 0.9),
            ("gpt", "2", 0.8),
            ("llama", "1", 0.7),
            ("llama", "2", 0.6),
        ]
        assert await ExperimentOwners(db).owner_of("exp_1") == "alice"
        assert await ExperimentOwners(db).owner_of("exp_2") is None
    finally:
        await db.close()
