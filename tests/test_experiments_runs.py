"""Experiments of type `code` running for real, at the service level (real SQLite, real
Docker, the appliance's own queue): a grid to completion, max_parallel, the actions of
the state machine, a restart in the middle, and interactive evaluations ahead of runs.
The HTTP side of the same comes with the experiments API's handlers."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json

import pytest

from appliance.core.clock import utc_now
from appliance.core.errors import ValidationError
from appliance.core.experiments import ExperimentStatus, LogLevel, LogQuery, RunStatus
from appliance.runtime.container_setup import INSTANCE_LABEL
from appliance.services.evaluation.evaluations import EvalRequest
from tests.experiment_service_support import (
    ADMIN,
    code_config,
    create_experiment,
    run_query,
    running_appliance,
    runs_of,
    wait_runs,
    wait_status,
)
from tests.support import eventually_async

pytestmark = pytest.mark.slow

TRAINING = r"""
import json, os
hp = json.load(open("hyperparameters.json"))
assert json.loads(os.environ["APPLIANCE_HYPERPARAMETERS"]) == hp
os.makedirs("checkpoints", exist_ok=True)
for epoch in range(3):
    loss = hp["lr"] * hp["bs"] / (epoch + 1)
    name = f"epoch_{epoch}.txt"
    with open("checkpoints/" + name, "w") as f:
        f.write(f"lr={hp['lr']} bs={hp['bs']} epoch={epoch} seed={os.environ['APPLIANCE_SEED']}")
    print(json.dumps({"metrics": {"epoch": epoch, "loss": loss}, "step": epoch, "checkpoint": name}))
    print(json.dumps({"progress": (epoch + 1) / 3}))
print("WARNING: learning rate", hp["lr"])
print(json.dumps({"level": "debug", "message": "done"}))
"""

SLEEPER = r"""
import json, time
print(json.dumps({"metrics": {"t0": time.time()}}), flush=True)
time.sleep(json.load(open("hyperparameters.json")).get("sleep", 2))
print(json.dumps({"metrics": {"t1": time.time()}}), flush=True)
"""


async def test_a_3x3_grid_runs_to_completion(tmp_path, runtime_images):
    grid = {"lr": [0.1, 0.01, 0.001], "bs": [16, 32, 64]}
    async with running_appliance(tmp_path / "data") as a:
        config = code_config(TRAINING, grid=grid, max_parallel=3, objective={"metric": "loss", "direction": "minimize"})
        experiment = await create_experiment(a, config, name="grid", tags=["grid", "test"])
        assert experiment.status is ExperimentStatus.PENDING and experiment.id.startswith("exp_")
        started = await a.experiments.start(ADMIN, experiment.id)
        assert started.status is ExperimentStatus.RUNNING and started.started_at is not None
        done = await wait_status(a, experiment.id, ExperimentStatus.COMPLETED, ExperimentStatus.FAILED)
        assert done.status is ExperimentStatus.COMPLETED and done.completed_at is not None

        runs = await runs_of(a, experiment.id)
        assert len(runs) == 9
        points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        assert [r.hyperparameters for r in runs] == points
        code_sha = hashlib.sha256(TRAINING.encode()).hexdigest()
        seeds = set()
        for run in runs:
            hp = run.hyperparameters
            assert run.id.startswith("run_") and run.status is RunStatus.COMPLETED, (run.status, run.error)
            assert run.progress == 1.0 and run.attempt == 1 and run.exit_code == 0
            assert run.code_sha256 == code_sha and run.image and "python" in run.image and run.engine == "docker"
            assert run.metrics == {"epoch": 2, "loss": pytest.approx(hp["lr"] * hp["bs"] / 3)} and run.step == 2
            seeds.add(run.seed)
            history = await a.runs.metric_history(ADMIN, run.id)
            assert [p.step for p in history["loss"]] == [0, 1, 2]
            assert [p.value for p in history["loss"]] == pytest.approx([hp["lr"] * hp["bs"] / e for e in (1, 2, 3)])
            logs = await a.runs.logs(ADMIN, run.id, LogQuery())
            assert [(line.level, line.message) for line in logs] == [
                (LogLevel.WARNING, f"WARNING: learning rate {hp['lr']}"),
                (LogLevel.DEBUG, "done"),
            ]
            assert [line.message for line in await a.runs.logs(ADMIN, run.id, LogQuery(level=LogLevel.INFO))] == [
                f"WARNING: learning rate {hp['lr']}"
            ]
            checkpoints = await a.runs.checkpoints(ADMIN, run.id)
            assert [(c.name, c.epoch, c.step) for c in checkpoints] == [
                ("epoch_0.txt", 0, 0),
                ("epoch_1.txt", 1, 1),
                ("epoch_2.txt", 2, 2),
            ]
            assert checkpoints[1].metrics == {"epoch": 1, "loss": pytest.approx(hp["lr"] * hp["bs"] / 2)}
            for checkpoint in checkpoints:
                assert checkpoint.id.startswith("ckpt_")
                download = await a.runs.checkpoint_file(ADMIN, run.id, checkpoint.id)
                content = download.path.read_bytes()
                assert download.size == len(content) == checkpoint.size and download.name == checkpoint.name
                assert hashlib.sha256(content).hexdigest() == checkpoint.sha256
                assert content.decode() == (f"lr={hp['lr']} bs={hp['bs']} epoch={checkpoint.epoch} seed={run.seed}")
                assert download.path.is_relative_to(a.settings.checkpoints_path / run.id)
        assert len(seeds) == 9, "each run has a seed of its own"

        details = await a.experiments.details(ADMIN, experiment.id)
        summary = details.results_summary
        assert (summary.total_runs, summary.completed_runs, summary.failed_runs) == (9, 9, 0)
        assert summary.objective is not None and summary.objective.metric == "loss"
        assert summary.best_value == pytest.approx(0.001 * 16 / 3)
        assert summary.best_run_id == runs[6].id
        assert details.progress == 1.0 and details.eta_seconds is None
        assert [r.id for r in details.runs] == [r.id for r in runs]
        assert [action.value for action in details.allowed_actions] == ["clone"]
        # Sorted by a metric, best first, with a cursor to the next page.
        page = await a.runs.list(ADMIN, run_query("metrics.loss", per_page=4), experiment_id=experiment.id)
        assert [r.id for r in page.items] == [runs[i].id for i in (6, 7, 8, 3)] and page.has_more
        after = run_query("metrics.loss", per_page=10, after=page.last)
        rest = await a.runs.list(ADMIN, after, experiment_id=experiment.id)
        assert len(rest.items) == 5 and not rest.has_more and page.total == rest.total == 9


async def test_max_parallel_is_respected(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data", workers=4) as a:
        points = [{"sleep": 1.5} for _ in range(6)]
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=2, list=points))
        await a.experiments.start(ADMIN, experiment.id)
        most = 0

        async def done() -> bool:
            nonlocal most
            runs = await runs_of(a, experiment.id)
            most = max(most, sum(r.status is RunStatus.RUNNING for r in runs))
            return all(r.status is RunStatus.COMPLETED for r in runs)

        await eventually_async(done, interval=0.05, message="all six runs completed")
        assert most == 2
        # From the programs' own clocks: at no moment were more than two running.
        spans = [(r.metrics["t0"], r.metrics["t1"]) for r in await runs_of(a, experiment.id)]
        for start, _ in spans:
            assert sum(s <= start < e for s, e in spans) <= 2, spans


async def test_pause_lets_running_runs_finish_and_resume_goes_on(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=2, list=[{"sleep": 2}] * 5))
        with pytest.raises(ValidationError) as refused:
            await a.experiments.resume(ADMIN, experiment.id)
        assert "pending" in refused.value.detail and "start, cancel, clone" in refused.value.detail
        assert refused.value.details == {
            "fields": {"status": ["is pending"], "allowed_actions": ["start", "cancel", "clone"]},
            "field": "status",
            "status": "pending",
            "allowed_actions": ["start", "cancel", "clone"],
        }
        await a.experiments.start(ADMIN, experiment.id)
        with pytest.raises(ValidationError, match="it is running; allowed actions: pause, cancel, clone"):
            await a.experiments.start(ADMIN, experiment.id)
        with pytest.raises(ValidationError, match="cancel it before deleting it"):
            await a.experiments.delete(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: _count(runs, RunStatus.RUNNING) == 2, "two runs running")
        paused = await a.experiments.pause(ADMIN, experiment.id)
        paused_at = utc_now()
        assert paused.status is ExperimentStatus.PAUSED
        runs = await wait_runs(
            a, experiment.id, lambda runs: _count(runs, RunStatus.RUNNING) == 0, "the running runs finishing"
        )
        assert _count(runs, RunStatus.COMPLETED) == 2 and _count(runs, RunStatus.PENDING) == 3
        await asyncio.sleep(1)
        runs = await runs_of(a, experiment.id)
        assert _count(runs, RunStatus.PENDING) == 3, "no run starts while paused"
        assert all(r.started_at is None or r.started_at < paused_at for r in runs)
        assert (await a.experiments.get(ADMIN, experiment.id)).status is ExperimentStatus.PAUSED
        resumed = await a.experiments.resume(ADMIN, experiment.id)
        assert resumed.status is ExperimentStatus.RUNNING
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
        runs = await runs_of(a, experiment.id)
        assert _count(runs, RunStatus.COMPLETED) == 5 and all(r.attempt == 1 for r in runs)


async def test_pause_with_stop_running_puts_runs_back_and_cancel_kills_sandboxes(
    tmp_path, runtime_images, docker_client
):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=2, list=[{"sleep": 60}] * 4))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: _count(runs, RunStatus.RUNNING) == 2, "two runs running")
        await a.experiments.pause(ADMIN, experiment.id, stop_running=True)
        runs = await wait_runs(
            a, experiment.id, lambda runs: _count(runs, RunStatus.PENDING) == 4, "the runs back in line"
        )
        assert all(r.started_at is None and r.attempt == 1 and r.metrics == {} for r in runs)
        assert a.queue.running_jobs == 0
        logs = await a.runs.logs(ADMIN, runs[0].id, LogQuery())
        assert any("stopped by a pause" in line.message for line in logs)

        await a.experiments.resume(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: _count(runs, RunStatus.RUNNING) == 2, "running again")
        containers = await eventually_async(lambda: _run_containers(a, 2), message="the two runs in their containers")
        cancelled = await a.experiments.cancel(ADMIN, experiment.id)
        assert cancelled.status is ExperimentStatus.CANCELLED and cancelled.completed_at is not None
        runs = await wait_runs(
            a, experiment.id, lambda runs: _count(runs, RunStatus.CANCELLED) == 4, "every run cancelled"
        )

        def sandboxes_gone() -> bool:
            alive = {c["Id"] for c in docker_client.api.containers(filters={"label": INSTANCE_LABEL})}
            return not alive & set(containers) and a.queue.running_jobs == 0

        await eventually_async(sandboxes_gone, message="the runs' sandboxes killed")
        with pytest.raises(ValidationError, match="it is cancelled; allowed actions: clone"):
            await a.experiments.resume(ADMIN, experiment.id)
        clone = await a.experiments.clone(ADMIN, experiment.id, "again")
        assert clone.status is ExperimentStatus.PENDING and clone.name == "again"
        assert clone.config == cancelled.config and clone.id != experiment.id
        await a.experiments.delete(ADMIN, experiment.id)
        assert not (a.settings.checkpoints_path / runs[0].id).exists()


async def test_a_restart_resumes_the_experiment(tmp_path, runtime_images):
    data = tmp_path / "data"
    async with running_appliance(data) as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=2, list=[{"sleep": 1.5}] * 6))
        await a.experiments.start(ADMIN, experiment.id)
        before = await wait_runs(
            a,
            experiment.id,
            lambda runs: _count(runs, RunStatus.COMPLETED) >= 2 and _count(runs, RunStatus.RUNNING) >= 1,
            "some runs done and some running",
        )
        # What the stop interrupts: the runs running now (none of them ends in between,
        # the scheduler's stop comes first).
    finished = {r.id: r for r in await _stored_runs(data, experiment.id) if r.status is RunStatus.COMPLETED}
    interrupted = [r.id for r in await _stored_runs(data, experiment.id) if r.status is RunStatus.RUNNING]
    assert len(finished) >= 2 and interrupted, before

    async with running_appliance(data) as b:
        done = await wait_status(b, experiment.id, ExperimentStatus.COMPLETED)
        assert done.status is ExperimentStatus.COMPLETED
        runs = await runs_of(b, experiment.id)
        assert _count(runs, RunStatus.COMPLETED) == 6, [(r.status, r.reason, r.error) for r in runs]
        for run in runs:
            if run.id in finished:
                assert run == finished[run.id], "a finished run stays as it was"
            elif run.id in interrupted:
                assert run.attempt == 2
                logs = await b.runs.logs(ADMIN, run.id, LogQuery())
                assert any("back in line as attempt 2" in line.message for line in logs)
            else:
                assert run.attempt == 1


async def test_a_second_interruption_fails_the_run(tmp_path, runtime_images):
    data = tmp_path / "data"
    async with running_appliance(data) as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=1, list=[{"sleep": 60}] * 2))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: runs[0].status is RunStatus.RUNNING, "the first run running")
    async with running_appliance(data) as b:
        await wait_runs(
            b,
            experiment.id,
            lambda runs: runs[0].status is RunStatus.RUNNING and runs[0].attempt == 2,
            "the first run running again, as attempt 2",
        )
    async with running_appliance(data) as c:
        runs = await wait_runs(
            c, experiment.id, lambda runs: runs[0].status is RunStatus.FAILED, "the first run failed"
        )
        assert runs[0].reason == "interrupted" and runs[0].attempt == 2
        await wait_runs(c, experiment.id, lambda runs: runs[1].status is RunStatus.RUNNING, "the second one goes on")
        await c.experiments.cancel(ADMIN, experiment.id)


async def test_an_evaluation_starts_before_runs_queued_after_it(tmp_path, runtime_images):
    # Runs may take every worker here (experiment_workers = workers): what keeps the
    # evaluation ahead is the queue's order, not a spare worker.
    async with running_appliance(tmp_path / "data", workers=2, experiment_workers=2) as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=8, list=[{"sleep": 0.3}] * 40))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: _count(runs, RunStatus.COMPLETED) >= 2, "runs going")
        evaluations = []
        for _ in range(3):
            evaluation, _ = await a.evaluations.submit(ADMIN, EvalRequest(code="print('hi')"))
            evaluations.append(evaluation)
            await asyncio.sleep(0.7)
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED, timeout=300)
        runs = await runs_of(a, experiment.id)
        for submitted in evaluations:
            evaluation = await a.evaluations.get(ADMIN, submitted.eval_id)
            assert evaluation.status.value == "completed" and evaluation.started_at is not None
            overtaking = [
                r.id
                for r in runs
                if r.started_at is not None and submitted.created_at < r.started_at < evaluation.started_at
            ]
            assert not overtaking, "no run started between the evaluation's submission and its start"
        assert max(r.started_at for r in runs if r.started_at) > evaluations[-1].created_at


async def test_by_default_runs_leave_a_worker_to_evaluations(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data", workers=2) as a:
        assert a.queue.job_workers == 1
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=4, list=[{"sleep": 3}] * 4))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_runs(a, experiment.id, lambda runs: _count(runs, RunStatus.RUNNING) == 1, "a run running")
        evaluation, _ = await a.evaluations.submit(ADMIN, EvalRequest(code="print('hi')"))

        async def finished():
            got = await a.evaluations.get(ADMIN, evaluation.eval_id)
            assert got.status.is_terminal
            return got

        done = await eventually_async(finished, message="the evaluation done")
        runs = await runs_of(a, experiment.id)
        assert _count(runs, RunStatus.COMPLETED) == 0, "it did not wait for a run to end"
        assert done.output == "hi\n"
        assert sum(r.status is RunStatus.RUNNING for r in runs) == 1
        await a.experiments.cancel(ADMIN, experiment.id)


def _run_containers(appliance, count: int) -> list[str] | None:
    """The containers the queue's running jobs (runs) are in, once there are `count`."""
    handles = list(appliance.queue._job_handles.values())
    ids = [h.container_id for h in handles if h.container_id]
    return ids if len(ids) == count else None


def _count(runs, status) -> int:
    return sum(r.status is status for r in runs)


async def _stored_runs(data, experiment_id):
    """The runs as the database holds them, with no appliance running."""
    from appliance.store.database import Database
    from appliance.store.runs import RunStore

    db = Database(data / "appliance.db")
    await db.open()
    try:
        return await RunStore(db).of_experiment(experiment_id)
    finally:
        await db.close()


async def test_each_run_gets_its_hyperparameters_and_identity(tmp_path, runtime_images):
    code = r"""
import json, os
hp = json.load(open("hyperparameters.json"))
assert json.loads(os.environ["APPLIANCE_HYPERPARAMETERS"]) == hp
print(json.dumps({"level": "info", "message": json.dumps({
    "hp": hp, "run": os.environ["APPLIANCE_RUN_ID"], "experiment": os.environ["APPLIANCE_EXPERIMENT_ID"],
    "seed": int(os.environ["APPLIANCE_SEED"]), "attempt": int(os.environ["APPLIANCE_ATTEMPT"])})}))
"""
    point = {"layers": [64, 32], "name": "x", "flag": True, "none": None, "lr": 0.5}
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, code_config(code, list=[point], seed=7))
        await a.experiments.start(ADMIN, experiment.id)
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
        (run,) = await runs_of(a, experiment.id)
        (line,) = await a.runs.logs(ADMIN, run.id, LogQuery())
        assert json.loads(line.message) == {
            "hp": point,
            "run": run.id,
            "experiment": experiment.id,
            "seed": run.seed,
            "attempt": 1,
        }


async def test_a_program_from_a_persistent_sandbox(tmp_path, runtime_images):
    from appliance.core.identity import EXECUTE, READ, Identity
    from appliance.services.sandboxes.requests import SandboxCreate
    from tests.support import remove_sandboxes_of

    program = b'import json\nprint(json.dumps({"metrics": {"x": json.load(open("hyperparameters.json"))["x"]}}))\n'
    data = tmp_path / "data"
    try:
        async with running_appliance(data) as a:
            sandbox = await a.sandboxes.create(ADMIN, SandboxCreate(runtime="python"))
            await a.sandbox_files.upload(ADMIN, sandbox.sandbox_id, [("train.py", io.BytesIO(program))], "src/")
            config = {"type": "code", "sandbox_id": sandbox.sandbox_id, "entrypoint": "src/train.py"}
            config["grid"] = {"x": [1, 2]}
            outsider = Identity(key_id="key_o", name="o", owner="o", permissions=frozenset({EXECUTE, READ}))
            with pytest.raises(ValidationError) as refused:
                await create_experiment(a, config, identity=outsider)
            assert refused.value.details and refused.value.details["field"] == "config.sandbox_id"
            with pytest.raises(ValidationError) as missing:
                await create_experiment(a, {**config, "entrypoint": "nope.py"})
            assert missing.value.details and missing.value.details["field"] == "config.entrypoint"

            experiment = await create_experiment(a, config)
            started = await a.experiments.start(ADMIN, experiment.id)
            assert started.program_sha256 == hashlib.sha256(program).hexdigest()
            # The program was fixed at start: changing the file now changes no run.
            await a.sandbox_files.upload(
                ADMIN, sandbox.sandbox_id, [("train.py", io.BytesIO(b"raise SystemExit(3)"))], "src/"
            )
            await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
            runs = await runs_of(a, experiment.id)
            assert [r.metrics for r in runs] == [{"x": 1}, {"x": 2}]
            assert {r.code_sha256 for r in runs} == {started.program_sha256}
            await a.sandboxes.delete(ADMIN, sandbox.sandbox_id, force=True)
    finally:
        remove_sandboxes_of(data)


async def test_a_run_past_its_timeout_fails(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data") as a:
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        experiment = await create_experiment(a, code_config(code, timeout=1.5))
        await a.experiments.start(ADMIN, experiment.id)
        done = await wait_status(a, experiment.id, ExperimentStatus.FAILED)
        (run,) = await runs_of(a, experiment.id)
        assert run.status is RunStatus.FAILED and run.reason == "timeout"
        messages = [line.message for line in await a.runs.logs(ADMIN, run.id, LogQuery())]
        assert messages[0] == "started" and "timeout passed" in messages[-1]
        assert done.completed_at is not None, "every run failed: the experiment failed"


async def test_runs_under_gvisor(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data", engines=["docker", "gvisor"]) as a:
        config = code_config(TRAINING, engine="gvisor", list=[{"lr": 0.1, "bs": 2}])
        experiment = await create_experiment(a, config)
        await a.experiments.start(ADMIN, experiment.id)
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
        (run,) = await runs_of(a, experiment.id)
        assert run.engine == "gvisor" and run.metrics["loss"] == pytest.approx(0.2 / 3)
        assert [c.name for c in await a.runs.checkpoints(ADMIN, run.id)] == [
            "epoch_0.txt",
            "epoch_1.txt",
            "epoch_2.txt",
        ]


async def test_progress_and_eta_come_from_finished_runs(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data") as a:
        experiment = await create_experiment(a, code_config(SLEEPER, max_parallel=1, list=[{"sleep": 1}] * 4))
        details = await a.experiments.details(ADMIN, experiment.id)
        assert details.progress == 0 and details.eta_seconds is None and details.runs == []
        await a.experiments.start(ADMIN, experiment.id)

        async def measured():
            got = await a.experiments.details(ADMIN, experiment.id)
            assert got.results_summary.completed_runs >= 1 and got.experiment.status is ExperimentStatus.RUNNING
            return got

        details = await eventually_async(measured, message="one run done, the others to go")
        assert 0.25 <= details.progress < 1 and details.eta_seconds is not None
        left = 4 - details.results_summary.completed_runs
        assert 0 < details.eta_seconds <= left * 30
        await wait_status(a, experiment.id, ExperimentStatus.COMPLETED)
