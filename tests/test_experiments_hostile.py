"""Hostile run programs are contained: a flood of metrics lines, an output flood, huge
and odd checkpoints, and lines that pretend to be another run's harm neither the other
runs of the experiment nor the appliance."""

from __future__ import annotations

import pytest

from appliance.core.experiments import ExperimentStatus, LogLevel, LogQuery, RunStatus
from appliance.services.evaluation.evaluations import EvalRequest
from tests.experiment_service_support import (
    ADMIN,
    code_config,
    create_experiment,
    running_appliance,
    runs_of,
    wait_status,
)
from tests.support import eventually_async

pytestmark = pytest.mark.slow

KiB, MiB = 1024, 1024 * 1024

CAPS = {
    "experiment_run_max_metric_points": 500,
    "experiment_run_max_log_lines": 100,
    "experiment_run_max_log_bytes": 64 * KiB,
    "experiment_run_max_checkpoints": 3,
    "experiment_run_checkpoints_max_bytes": 1 * MiB,
    "experiment_checkpoint_max_bytes": 512 * KiB,
    "experiment_run_max_output_bytes": 20 * MiB,
    "workers": 4,
    "experiment_workers": 3,
}

PROGRAM = r"""
import json, os, sys
mode = json.load(open("hyperparameters.json"))["mode"]
me = os.environ["APPLIANCE_RUN_ID"]
os.makedirs("checkpoints", exist_ok=True)
if mode == "good":
    for step in range(5):
        print(json.dumps({"metrics": {"loss": 1.0 / (step + 1)}, "step": step}))
    open("checkpoints/model.bin", "wb").write(b"good" * 100)
    print("INFO: good run done")
elif mode == "metrics_flood":
    line = json.dumps({"metrics": {"a": 1, "b": 2}, "step": 1}) + "\n"
    for _ in range(100):
        sys.stdout.write(line * 3000)
    for i in range(5000):
        print(f"noise {i}")
    print(json.dumps({"progress": 0.5}))
elif mode == "output_flood":
    chunk = "x" * 65536
    while True:
        sys.stdout.write(chunk)
elif mode == "checkpoints":
    open("checkpoints/big.bin", "wb").write(os.urandom(2 * 1024 * 1024))
    for i in range(10):
        open(f"checkpoints/small_{i}.bin", "wb").write(b"s" * 1000)
    os.symlink("/etc/passwd", "checkpoints/passwd")
    os.mkfifo("checkpoints/fifo")
elif mode == "fake":
    # Lines that look like another run's, or like the runner's trailer: they stay this run's.
    print(json.dumps({"run_id": "run_000000000000", "metrics": {"stolen": 1}, "step": 0}))
    print(json.dumps({"run_id": "run_000000000000", "level": "error", "message": "fake: written by " + me}))
    print("\n0123456789abcdef0123456789abcdef 0 0 0 0 0 0 0")
    print("fake: plain line from " + me, file=sys.stderr)
"""

MODES = ["good", "metrics_flood", "output_flood", "checkpoints", "fake"]


async def test_hostile_programs_are_contained(tmp_path, runtime_images):
    async with running_appliance(tmp_path / "data", **CAPS) as a:
        config = code_config(PROGRAM, max_parallel=5, list=[{"mode": mode} for mode in MODES], timeout=120)
        experiment = await create_experiment(a, config)
        await a.experiments.start(ADMIN, experiment.id)

        # The appliance keeps serving evaluations while the floods run.
        evaluation, _ = await a.evaluations.submit(ADMIN, EvalRequest(code="print('still here')"))

        async def evaluated():
            got = await a.evaluations.get(ADMIN, evaluation.eval_id)
            assert got.status.is_terminal
            return got

        assert (await eventually_async(evaluated, message="the evaluation")).output == "still here\n"

        done = await wait_status(a, experiment.id, ExperimentStatus.COMPLETED, ExperimentStatus.FAILED, timeout=240)
        assert done.status is ExperimentStatus.COMPLETED  # some runs completed
        runs = {r.hyperparameters["mode"]: r for r in await runs_of(a, experiment.id)}

        good = runs["good"]
        assert good.status is RunStatus.COMPLETED and good.metrics == {"loss": pytest.approx(0.2)}
        assert good.metric_points == 5
        history = await a.runs.metric_history(ADMIN, good.id)
        assert list(history) == ["loss"] and [p.step for p in history["loss"]] == [0, 1, 2, 3, 4]
        good_logs = [line.message for line in await a.runs.logs(ADMIN, good.id, LogQuery())]
        assert good_logs == ["INFO: good run done"]
        (model,) = await a.runs.checkpoints(ADMIN, good.id)
        assert model.name == "model.bin" and model.size == 400

        flood = runs["metrics_flood"]
        assert flood.status is RunStatus.COMPLETED
        assert flood.metric_points == CAPS["experiment_run_max_metric_points"]
        assert flood.log_lines <= CAPS["experiment_run_max_log_lines"] + 2
        flood_logs = await a.runs.logs(ADMIN, flood.id, LogQuery(level=LogLevel.WARNING))
        warnings = "\n".join(line.message for line in flood_logs)
        assert "reached 500 metric points" in warnings and "reached its log cap" in warnings
        assert flood.reason is None

        output = runs["output_flood"]
        assert output.status is RunStatus.FAILED and output.reason == "output_limit", (output.reason, output.error)

        kept = await a.runs.checkpoints(ADMIN, runs["checkpoints"].id)
        assert len(kept) == CAPS["experiment_run_max_checkpoints"]
        assert all(c.name.startswith("small_") and c.size == 1000 for c in kept), kept
        stored = sorted(p.name for p in (a.settings.checkpoints_path / runs["checkpoints"].id).iterdir())
        assert stored == sorted(c.id for c in kept), "nothing else left on disk (no staging, no partial file)"
        notes = "\n".join(line.message for line in await a.runs.logs(ADMIN, runs["checkpoints"].id, LogQuery()))
        assert "past a cap were not kept" in notes and "big.bin (2M)" in notes
        assert "not a regular file" in notes and "checkpoints/passwd" in notes and "checkpoints/fifo" in notes

        fake = runs["fake"]
        assert fake.metrics == {"stolen": 1}, "a line is its own run's, whatever run_id it names"
        fake_logs = [line.message for line in await a.runs.logs(ADMIN, fake.id, LogQuery())]
        assert f"fake: written by {fake.id}" in fake_logs and f"fake: plain line from {fake.id}" in fake_logs
        assert any("0123456789abcdef" in line for line in fake_logs), "a forged trailer is only a line"
        for mode, run in runs.items():
            if mode != "fake":
                assert "stolen" not in run.metrics
                messages = [line.message for line in await a.runs.logs(ADMIN, run.id, LogQuery())]
                assert not any(message.startswith("fake:") for message in messages), mode
