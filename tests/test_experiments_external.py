"""Runs tracked from outside, as MLflow users expect: a script creates a run in an
experiment and logs params, metrics with steps, log lines and checkpoint files to it,
then ends it. At the service level, on a real database (the HTTP side comes with the
experiments API's handlers)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from appliance.core.errors import Forbidden, NotFound, PayloadTooLarge, ValidationError
from appliance.core.experiments import (
    ExperimentStatus,
    LogLevel,
    LogQuery,
    RunSource,
    RunStatus,
)
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.services.experiments.runs import LogIn, MetricsIn, RunCreate, RunEnd
from tests.experiment_service_support import (
    ADMIN,
    code_config,
    create_experiment,
    run_query,
    running_appliance,
    runs_of,
    wait_status,
)

ALICE = Identity(key_id="key_alice", name="alice", owner="alice", permissions=frozenset({EXECUTE, READ}))
BOB = Identity(key_id="key_bob", name="bob", owner="bob", permissions=frozenset({EXECUTE, READ}))
READER = Identity(key_id="key_reader", name="reader", owner="alice", permissions=frozenset({READ}))


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_script_logs_a_run_with_metrics_and_a_checkpoint(tmp_path):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(
            a, {"type": "external", "objective": {"metric": "val_acc"}}, name="gpu box", identity=ALICE
        )
        assert experiment.config == {
            "type": "external",
            "max_parallel": 1,
            "objective": {"metric": "val_acc", "direction": "maximize"},
        }
        run = await a.runs.create(ALICE, experiment.id, RunCreate(hyperparameters={"lr": 0.01}))
        assert run.status is RunStatus.RUNNING and run.source is RunSource.EXTERNAL and run.started_at
        assert (await a.experiments.get(ALICE, experiment.id)).status is ExperimentStatus.PENDING

        await a.runs.log_params(ALICE, run.id, {"batch_size": 32, "lr": 0.01})
        with pytest.raises(ValidationError, match="'lr' is already 0.01") as changed:
            await a.runs.log_params(ALICE, run.id, {"lr": 0.1})
        assert changed.value.details and changed.value.details["field"] == "hyperparameters.lr"

        for epoch in range(3):
            await a.runs.log_metrics(
                ALICE, run.id, [MetricsIn(metrics={"epoch": epoch, "val_acc": 0.5 + epoch / 10}, step=epoch * 100)]
            )
        after = await a.runs.log_metrics(ALICE, run.id, [MetricsIn(metrics={"loss": 0.1})])
        assert after.step == 201, "a line without a step gets the one after the last"
        assert after.metrics == {"epoch": 2, "val_acc": pytest.approx(0.7), "loss": 0.1}
        with pytest.raises(ValidationError, match="finite number"):
            await a.runs.log_metrics(ALICE, run.id, [MetricsIn(metrics={"loss": "high"})])

        await a.runs.log_lines(
            ALICE,
            run.id,
            [
                LogIn(message="starting"),
                LogIn(message="slow batch", level=LogLevel.WARNING),
                LogIn(message="oops", level=LogLevel.ERROR),
            ],
        )
        await a.runs.set_progress(ALICE, run.id, 0.75)

        data = bytes(range(256)) * 1000
        checkpoint = await a.runs.upload_checkpoint(ALICE, run.id, "model/epoch_2.pt", chunks_of(data))
        assert checkpoint.id.startswith("ckpt_") and checkpoint.size == len(data)
        assert checkpoint.sha256 == hashlib.sha256(data).hexdigest()
        assert checkpoint.epoch == 2 and checkpoint.step == 201 and checkpoint.metrics["val_acc"] == pytest.approx(0.7)
        download = await a.runs.checkpoint_file(ALICE, run.id, checkpoint.id)
        assert download.path.read_bytes() == data and download.size == len(data) and download.name == "epoch_2.pt"

        ended = await a.runs.end(ALICE, run.id, RunEnd(status=RunStatus.COMPLETED))
        assert ended.status is RunStatus.COMPLETED and ended.completed_at and ended.progress == 1.0
        with pytest.raises(ValidationError, match="has ended"):
            await a.runs.log_lines(ALICE, run.id, [LogIn(message="late")])

        detail = await a.runs.get(ALICE, run.id)
        assert detail.run.hyperparameters == {"lr": 0.01, "batch_size": 32}
        assert [c.id for c in detail.checkpoints] == [checkpoint.id]
        history = await a.runs.metric_history(ALICE, run.id)
        assert [(p.step, p.value) for p in history["val_acc"]] == [(0, 0.5), (100, 0.6), (200, pytest.approx(0.7))]
        assert list(await a.runs.metric_history(ALICE, run.id, "loss")) == ["loss"]

        logs = await a.runs.logs(ALICE, run.id, LogQuery())
        assert [line.message for line in logs] == ["starting", "slow batch", "oops"]
        warnings = await a.runs.logs(ALICE, run.id, LogQuery(level=LogLevel.WARNING))
        assert [line.message for line in warnings] == ["slow batch", "oops"]
        assert [line.message for line in await a.runs.logs(ALICE, run.id, LogQuery(tail=2))] == ["slow batch", "oops"]
        later = logs[-1].timestamp + timedelta(milliseconds=1)
        assert await a.runs.logs(ALICE, run.id, LogQuery(since=later)) == []
        assert len(await a.runs.logs(ALICE, run.id, LogQuery(since=logs[0].timestamp))) == 3

        details = await a.experiments.details(ALICE, experiment.id)
        assert details.results_summary.best_value == pytest.approx(0.7)
        assert details.results_summary.total_runs == 1 and details.results_summary.completed_runs == 1


async def test_who_may_see_and_log(tmp_path):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, {"type": "external"}, identity=ALICE)
        run = await a.runs.create(ALICE, experiment.id, RunCreate())
        with pytest.raises(NotFound):
            await a.runs.get(BOB, run.id)
        with pytest.raises(NotFound):
            await a.runs.create(BOB, experiment.id, RunCreate())
        with pytest.raises(NotFound):
            await a.experiments.get(BOB, experiment.id)
        with pytest.raises(Forbidden):
            await a.runs.log_lines(READER, run.id, [LogIn(message="x")])
        assert (await a.runs.get(READER, run.id)).run.id == run.id
        assert (await a.runs.get(ADMIN, run.id)).run.id == run.id
        bob_experiment = await create_experiment(a, {"type": "external"}, identity=BOB)
        await a.runs.create(BOB, bob_experiment.id, RunCreate())
        mine = await a.runs.list(ALICE, run_query())
        assert [r.id for r in mine.items] == [run.id] and mine.total == 1
        assert (await a.runs.list(ADMIN, run_query())).total == 2
        with pytest.raises(NotFound):
            await a.runs.list(BOB, run_query(), experiment_id=experiment.id)

        await a.experiments.cancel(ALICE, experiment.id)
        with pytest.raises(ValidationError, match="cancelled; it takes no new runs"):
            await a.runs.create(ALICE, experiment.id, RunCreate())


async def test_logging_is_held_to_the_run_caps(tmp_path):
    caps = {
        "experiment_run_max_metric_points": 10,
        "experiment_run_max_log_lines": 5,
        "experiment_checkpoint_max_bytes": 10_000,
        "experiment_run_max_checkpoints": 2,
    }
    async with running_appliance(tmp_path / "data", **caps) as a:
        experiment = await create_experiment(a, {"type": "external"})
        run = await a.runs.create(ADMIN, experiment.id, RunCreate())
        await a.runs.log_metrics(ADMIN, run.id, [MetricsIn(metrics={"x": i}, step=i) for i in range(25)])
        await a.runs.log_lines(ADMIN, run.id, [LogIn(message=f"line {i}") for i in range(20)])
        stored = (await a.runs.get(ADMIN, run.id)).run
        assert stored.metric_points == 10 and stored.metrics == {"x": 9}
        logs = [line.message for line in await a.runs.logs(ADMIN, run.id, LogQuery())]
        # The caps' own warnings count as lines, and are let past the log cap once each.
        assert "reached 10 metric points" in logs[0]
        assert logs[1:5] == [f"line {i}" for i in range(4)]
        assert "reached its log cap" in logs[5] and len(logs) == 6

        with pytest.raises(PayloadTooLarge, match="larger than"):
            await a.runs.upload_checkpoint(ADMIN, run.id, "big.bin", chunks_of(b"x" * 20_000))
        assert not list((a.settings.checkpoints_path / run.id).iterdir()), "nothing of it kept"
        for i in range(2):
            await a.runs.upload_checkpoint(ADMIN, run.id, f"c{i}", chunks_of(b"y" * 100))
        with pytest.raises(PayloadTooLarge, match="cap"):
            await a.runs.upload_checkpoint(ADMIN, run.id, "c2", chunks_of(b"y"))
        with pytest.raises(ValidationError, match="name"):
            await a.runs.upload_checkpoint(ADMIN, run.id, "bad\nname", chunks_of(b"y"))


async def test_a_planned_run_takes_no_logging_calls(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, code_config("print(1)"))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
        (run,) = await runs_of(a, experiment.id)
        with pytest.raises(ValidationError, match="only runs created over the API take logging calls"):
            await a.runs.log_metrics(ADMIN, run.id, [MetricsIn(metrics={"x": 1})])
        # An external run may join a code experiment; it is not one of its planned runs.
        extra = await a.runs.create(ADMIN, experiment.id, RunCreate())
        assert extra.position == 1 and extra.source is RunSource.EXTERNAL
        summary = (await a.experiments.details(ADMIN, experiment.id)).results_summary
        assert summary.total_runs == 2 and summary.running_runs == 1


async def test_update_changes_config_only_while_pending(tmp_path):
    from appliance.services.experiments.experiments import ExperimentCreate, ExperimentUpdate

    async with running_appliance(tmp_path / "data") as a:
        with pytest.raises(ValidationError, match="name can't be blank") as blank:
            await a.experiments.create(ALICE, ExperimentCreate(name=" ", config={"type": "external"}))
        assert blank.value.details == {"field": "name", "reason": "name can't be blank"}
        with pytest.raises(ValidationError, match="config is required"):
            await a.experiments.create(ALICE, ExperimentCreate(name="x"))
        with pytest.raises(Forbidden):
            await a.experiments.create(READER, ExperimentCreate(name="x", config={"type": "external"}))
        experiment = await create_experiment(a, {"type": "external"}, identity=ALICE, description="first")
        updated = await a.experiments.update(
            ALICE,
            experiment.id,
            ExperimentUpdate(name="renamed", tags=["a", "a", "b"], config={"type": "external", "max_parallel": 3}),
        )
        assert (updated.name, updated.description, updated.tags) == ("renamed", "first", ["a", "b"])
        assert updated.config["max_parallel"] == 3 and updated.updated_at >= experiment.updated_at
        with pytest.raises(ValidationError, match="unknown field 'bogus'"):
            await a.experiments.update(ALICE, experiment.id, ExperimentUpdate(config={"type": "external", "bogus": 1}))
        assert (await a.experiments.get(ALICE, experiment.id)).config == updated.config, (
            "a refused update changes nothing"
        )

        started = await a.experiments.start(ALICE, experiment.id)
        assert started.status is ExperimentStatus.RUNNING, "an external experiment runs until cancelled"
        with pytest.raises(ValidationError, match="only while it is pending; it is running"):
            await a.experiments.update(ALICE, experiment.id, ExperimentUpdate(config={"type": "external"}))
        assert (
            await a.experiments.update(ALICE, experiment.id, ExperimentUpdate(description="second"))
        ).description == "second"
        with pytest.raises(ValidationError, match="cancel it before deleting it") as refused:
            await a.experiments.delete(ALICE, experiment.id)
        assert refused.value.details and refused.value.details["allowed_actions"] == ["pause", "cancel", "clone"]
        await a.experiments.cancel(ALICE, experiment.id)
        with pytest.raises(NotFound):
            await a.experiments.delete(BOB, experiment.id)
        await a.experiments.delete(ALICE, experiment.id)
        with pytest.raises(NotFound):
            await a.experiments.get(ALICE, experiment.id)
