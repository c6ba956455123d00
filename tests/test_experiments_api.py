"""Experiments and runs of experiments-api.md through a real server: every endpoint, the
state machine and its 422 refusals, filters, sorts (by a metric too) and both
paginations, owners, the error codes; a 3x3 grid of type `code` running to completion,
pause/resume/cancel, a restart of the server in the middle of an experiment, and a run
tracked from outside logged through appliance.client, and a hostile program beside a good
one. What the services do in detail (each cap, parsing, recovery attempts) is tested at
the service level in the other test_experiments_*.py files."""

from __future__ import annotations

import hashlib
import itertools
import time

import httpx
import pytest

from appliance.client import ApiError, ApplianceClient
from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.support import HANG_SECONDS, eventually
from tests.test_auth import create_key

pytestmark = pytest.mark.slow

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/runs"
SERVER_ENV = {"APPLIANCE_WORKERS": "4", "APPLIANCE_ENGINES": "docker"}

TRAINING = r"""
import json, os
hp = json.load(open("hyperparameters.json"))
os.makedirs("checkpoints", exist_ok=True)
for epoch in range(2):
    loss = hp["lr"] * hp["bs"] / (epoch + 1)
    with open(f"checkpoints/epoch_{epoch}.txt", "w") as f:
        f.write(f"lr={hp['lr']} bs={hp['bs']} epoch={epoch}")
    print(json.dumps({"metrics": {"epoch": epoch, "loss": loss}, "step": epoch, "checkpoint": f"epoch_{epoch}.txt"}))
    print(json.dumps({"progress": (epoch + 1) / 2}))
print("WARNING: learning rate", hp["lr"])
print(json.dumps({"level": "debug", "message": "done"}))
"""

SLEEPER = r"""
import json, time
time.sleep(json.load(open("hyperparameters.json")).get("sleep", 2))
print(json.dumps({"metrics": {"slept": 1}}))
"""


def code_config(code: str, **fields) -> dict:
    return {"type": "code", "language": "python", "code": code, **fields}


@pytest.fixture(scope="module")
def v1(runtime_images, tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-experiments"), env=SERVER_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(v1):
    return {
        "alice": create_key(v1, "alice-experiments", owner="alice"),
        "bob": create_key(v1, "bob-experiments", owner="bob"),
        "reader": create_key(v1, "reader-experiments", "read", owner="alice"),
    }


def create(client: httpx.Client, config: dict, name: str = "test", **fields) -> dict:
    response = client.post(EXPERIMENTS, json={"experiment": {"name": name, "config": config, **fields}})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def act(client: httpx.Client, experiment_id: str, action: str, body: dict | None = None) -> dict:
    response = client.post(f"{EXPERIMENTS}/{experiment_id}/{action}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def detail(client: httpx.Client, experiment_id: str) -> dict:
    response = client.get(f"{EXPERIMENTS}/{experiment_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_for(client: httpx.Client, experiment_id: str, check, message: str, timeout: float = HANG_SECONDS) -> dict:
    def holds():
        found = detail(client, experiment_id)
        return found if check(found) else None

    return eventually(
        holds, timeout=timeout, interval=0.2, message=lambda: f"{message}: {detail(client, experiment_id)}"
    )


def runs_of(client: httpx.Client, experiment_id: str, **params) -> list[dict]:
    response = client.get(f"{EXPERIMENTS}/{experiment_id}/runs", params={"per_page": 100, "sort": "position", **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def count(runs: list[dict], status: str) -> int:
    return sum(1 for r in runs if r["status"] == status)


# --- the done-when: a 3x3 grid through the API ---------------------------------------------


def test_a_3x3_grid_runs_to_completion(v1):
    grid = {"lr": [0.1, 0.01, 0.001], "bs": [16, 32, 64]}
    config = code_config(TRAINING, grid=grid, max_parallel=3, objective={"metric": "loss", "direction": "minimize"})
    with v1.admin() as admin:
        created = create(admin, config, name="grid", description="3x3", tags=["grid"])
        assert created["status"] == "pending" and created["id"].startswith("exp_") and created["started_at"] is None
        assert created["created_at"].endswith("Z") and created["tags"] == ["grid"]
        started = act(admin, created["id"], "start")
        assert started["status"] == "running" and started["started_at"] is not None
        assert started["program_sha256"] == hashlib.sha256(TRAINING.encode()).hexdigest()
        done = wait_for(admin, created["id"], lambda e: e["status"] in ("completed", "failed"), "the grid ending")
        assert done["status"] == "completed" and done["completed_at"] is not None, done
        assert done["progress"] == 1.0 and done["eta_seconds"] is None and done["allowed_actions"] == ["clone"]
        summary = done["results_summary"]
        assert summary["total_runs"] == summary["completed_runs"] == 9 and summary["failed_runs"] == 0
        assert summary["objective"] == {"metric": "loss", "direction": "minimize"}
        assert summary["best_loss"] == pytest.approx(0.001 * 16 / 2)

        runs = runs_of(admin, created["id"])
        assert [r["id"] for r in done["runs"]] == [r["id"] for r in runs]
        assert summary["best_run_id"] == runs[6]["id"]
        points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        assert [r["hyperparameters"] for r in runs] == points
        for run in runs:
            assert run["status"] == "completed" and run["progress"] == 1.0 and run["exit_code"] == 0, run
            assert run["engine"] == "docker" and run["seed"] is not None and run["code_sha256"]
            assert run["metrics"]["epoch"] == 1 and run["step"] == 1

        run = runs[4]
        got = admin.get(f"{RUNS}/{run['id']}").json()["data"]
        assert {k: v for k, v in got.items() if k != "checkpoints"} == run
        checkpoints = got["checkpoints"]
        assert [c["name"] for c in checkpoints] == ["epoch_0.txt", "epoch_1.txt"]
        assert admin.get(f"{RUNS}/{run['id']}/checkpoints").json() == {"data": checkpoints}
        for checkpoint in checkpoints:
            assert checkpoint["path"] == f"{RUNS}/{run['id']}/checkpoints/{checkpoint['id']}/download"
            assert checkpoint["epoch"] == checkpoint["metrics"]["epoch"] == checkpoint["step"]
            download = admin.get(checkpoint["path"])
            assert download.status_code == 200 and download.headers["content-length"] == str(checkpoint["size"])
            assert download.content == f"lr=0.01 bs=32 epoch={checkpoint['epoch']}".encode()
            assert hashlib.sha256(download.content).hexdigest() == checkpoint["sha256"]
        missing = admin.get(f"{RUNS}/{run['id']}/checkpoints/ckpt_nope/download")
        assert_v1_error(missing, 404, "not_found")

        history = admin.get(f"{RUNS}/{run['id']}/metrics").json()["data"]
        assert [p["step"] for p in history["loss"]] == [0, 1]
        assert [p["value"] for p in history["loss"]] == pytest.approx([0.32, 0.16])
        only = admin.get(f"{RUNS}/{run['id']}/metrics", params={"name": "epoch"}).json()["data"]
        assert list(only) == ["epoch"]

        logs = admin.get(f"{RUNS}/{run['id']}/logs").json()["data"]
        assert {"timestamp", "level", "message"} == set(logs[0])
        assert ("warning", "WARNING: learning rate 0.01") in [(x["level"], x["message"]) for x in logs]
        assert ("debug", "done") in [(x["level"], x["message"]) for x in logs]
        warnings = admin.get(f"{RUNS}/{run['id']}/logs", params={"level": "warning"}).json()["data"]
        assert warnings and all(x["level"] in ("warning", "error") for x in warnings)
        assert admin.get(f"{RUNS}/{run['id']}/logs", params={"tail": 1}).json()["data"] == logs[-1:]
        since = admin.get(f"{RUNS}/{run['id']}/logs", params={"since": logs[-1]["timestamp"]}).json()["data"]
        assert since and since[-1] == logs[-1]
        future = admin.get(f"{RUNS}/{run['id']}/logs", params={"since": "2999-01-01T00:00:00Z"}).json()["data"]
        assert future == []
        bad = admin.get(f"{RUNS}/{run['id']}/logs", params={"level": "loud", "tail": "x", "since": "yesterday"})
        assert_invalid(bad, "level", "tail", "since")

        # Sorted by a metric, best first; by cursor and by page.
        by_loss = admin.get(
            f"{EXPERIMENTS}/{created['id']}/runs", params={"sort": "metrics.loss", "per_page": 4}
        ).json()
        assert [r["id"] for r in by_loss["data"]] == [runs[i]["id"] for i in (6, 7, 8, 3)]
        assert by_loss["meta"]["has_more"] and by_loss["meta"]["total"] == 9 and by_loss["meta"]["page"] == 1
        rest = admin.get(
            f"{EXPERIMENTS}/{created['id']}/runs",
            params={"sort": "metrics.loss", "per_page": 10, "cursor": by_loss["meta"]["next_cursor"]},
        ).json()
        assert len(rest["data"]) == 5 and not rest["meta"]["has_more"] and rest["meta"]["next_cursor"] is None
        assert rest["meta"]["page"] is None
        worst = admin.get(f"{EXPERIMENTS}/{created['id']}/runs", params={"sort": "-metrics.loss", "per_page": 1})
        assert worst.json()["data"][0]["id"] == runs[2]["id"]
        page3 = admin.get(
            f"{EXPERIMENTS}/{created['id']}/runs", params={"sort": "position", "per_page": 4, "page": 3}
        ).json()
        assert [r["id"] for r in page3["data"]] == [runs[8]["id"]] and not page3["meta"]["has_more"]
        everywhere = admin.get(RUNS, params={"filter[experiment_id]": created["id"], "filter[status]": "completed"})
        assert everywhere.json()["meta"]["total"] == 9
        none = admin.get(RUNS, params={"filter[experiment_id]": created["id"], "filter[status]": "failed,cancelled"})
        assert none.json()["meta"]["total"] == 0 and none.json()["data"] == []

        # Done: only clone is left, and delete.
        refused = admin.post(f"{EXPERIMENTS}/{created['id']}/start")
        error = assert_v1_error(refused, 422, "validation_error", "completed", "clone")
        assert "status" in error["details"], error


# --- the state machine ------------------------------------------------------------------------


def test_actions_follow_the_state_machine(v1):
    with v1.admin() as admin:
        experiment = create(admin, code_config(SLEEPER, list=[{"sleep": 30}]), name="machine", tags=["a", "b"])
        eid = experiment["id"]
        assert detail(admin, eid)["allowed_actions"] == ["start", "cancel", "clone"]
        for action in ("pause", "resume"):
            error = assert_v1_error(admin.post(f"{EXPERIMENTS}/{eid}/{action}"), 422, "validation_error")
            assert "pending" in error["message"] and "start" in error["message"], error
            assert error["details"] == {"status": ["is pending"], "allowed_actions": ["start", "cancel", "clone"]}
        assert act(admin, eid, "start")["status"] == "running"
        assert_v1_error(admin.post(f"{EXPERIMENTS}/{eid}/start"), 422, "validation_error", "running", "pause")
        refused = assert_v1_error(admin.delete(f"{EXPERIMENTS}/{eid}"), 422, "validation_error", "running", "cancel")
        assert refused["details"]["allowed_actions"] == ["pause", "cancel", "clone"]
        changed = admin.patch(f"{EXPERIMENTS}/{eid}", json={"experiment": {"config": code_config("print(1)")}})
        assert_invalid(changed, "config")
        assert act(admin, eid, "pause")["status"] == "paused"
        assert detail(admin, eid)["allowed_actions"] == ["resume", "cancel", "clone"]
        assert_v1_error(admin.delete(f"{EXPERIMENTS}/{eid}"), 422, "validation_error", "paused")
        assert act(admin, eid, "resume")["status"] == "running"
        cancelled = act(admin, eid, "cancel")
        assert cancelled["status"] == "cancelled" and cancelled["completed_at"] is not None
        assert_v1_error(admin.post(f"{EXPERIMENTS}/{eid}/resume"), 422, "validation_error", "cancelled", "clone")

        clone = admin.post(f"{EXPERIMENTS}/{eid}/clone", json={"name": "machine 2"})
        assert clone.status_code == 201, clone.text
        cloned = clone.json()["data"]
        assert cloned["status"] == "pending" and cloned["name"] == "machine 2" and cloned["id"] != eid
        assert cloned["config"] == cancelled["config"] and cloned["tags"] == ["a", "b"]
        unnamed = admin.post(f"{EXPERIMENTS}/{eid}/clone")
        assert unnamed.status_code == 201 and unnamed.json()["data"]["name"] == "machine (copy)"

        renamed = admin.patch(
            f"{EXPERIMENTS}/{cloned['id']}", json={"experiment": {"name": "renamed", "description": "d"}}
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["data"]["name"] == "renamed" and renamed.json()["data"]["description"] == "d"
        assert renamed.json()["data"]["updated_at"] > cloned["updated_at"]

        assert admin.delete(f"{EXPERIMENTS}/{eid}").status_code == 204
        assert_v1_error(admin.get(f"{EXPERIMENTS}/{eid}"), 404, "not_found")
        assert_v1_error(admin.post(f"{EXPERIMENTS}/{eid}/start"), 404, "not_found")


def test_pause_resume_and_cancel_a_running_experiment(v1):
    config = code_config(SLEEPER, list=[{"sleep": 3} for _ in range(4)], max_parallel=2)
    with v1.admin() as admin:
        eid = create(admin, config, name="pausing")["id"]
        act(admin, eid, "start")
        wait_for(admin, eid, lambda e: e["results_summary"]["running_runs"] == 2, "two runs running")
        assert act(admin, eid, "pause")["status"] == "paused"
        # The running runs finish; no other starts.
        wait_for(admin, eid, lambda e: e["results_summary"]["completed_runs"] == 2, "the running runs finishing")
        time.sleep(1.5)
        runs = runs_of(admin, eid)
        assert (count(runs, "completed"), count(runs, "pending")) == (2, 2), runs
        assert act(admin, eid, "resume")["status"] == "running"
        wait_for(admin, eid, lambda e: e["results_summary"]["running_runs"] == 2, "the other two running")
        # Pausing with stop_running puts them back in line at once.
        assert act(admin, eid, "pause", {"stop_running": True})["status"] == "paused"
        runs = wait_for(
            admin, eid, lambda e: e["results_summary"]["pending_runs"] == 2, "the stopped runs back in line"
        )["runs"]
        assert count(runs, "running") == 0
        act(admin, eid, "resume")
        wait_for(admin, eid, lambda e: e["results_summary"]["running_runs"] == 2, "running again")
        cancelled = act(admin, eid, "cancel")
        assert cancelled["status"] == "cancelled"
        runs = wait_for(
            admin, eid, lambda e: e["results_summary"]["cancelled_runs"] == 2, "the running runs cancelled"
        )["runs"]
        assert (count(runs, "completed"), count(runs, "cancelled")) == (2, 2), runs
        listed = admin.get(RUNS, params={"filter[experiment_id]": eid, "filter[status]": "cancelled"}).json()
        assert listed["meta"]["total"] == 2


# --- a restart in the middle --------------------------------------------------------------


def test_a_restart_resumes_the_experiment_with_finished_runs_intact(runtime_images, tmp_path):
    data_dir = tmp_path / "data"
    server = start_v1_server(data_dir, env=SERVER_ENV)
    config = code_config(SLEEPER, list=[{"sleep": 2} for _ in range(6)], max_parallel=2)
    try:
        with server.admin() as admin:
            eid = create(admin, config, name="restarted")["id"]
            act(admin, eid, "start")
            wait_for(admin, eid, lambda e: e["results_summary"]["completed_runs"] >= 2, "two runs done")
            finished = {r["id"]: r for r in runs_of(admin, eid) if r["status"] == "completed"}
    finally:
        server.stop()
    server = start_v1_server(data_dir, env=SERVER_ENV)
    try:
        with server.admin() as admin:
            done = wait_for(admin, eid, lambda e: e["status"] in ("completed", "failed"), "the experiment ending")
            assert done["status"] == "completed" and done["results_summary"]["completed_runs"] == 6, done
            runs = runs_of(admin, eid)
            for run in runs:
                if run["id"] in finished:
                    assert run == finished[run["id"]], "a finished run stays as it was"
            assert all(r["attempt"] in (1, 2) for r in runs)
    finally:
        server.stop()


# --- a run tracked from outside, through the client ---------------------------------------


def test_an_external_run_logged_through_the_client(v1, keys, tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(bytes(range(256)) * 400)
    with ApplianceClient(v1.url, api_key=keys["alice"]) as client:
        experiment = client.create_experiment("tracked", {"type": "external"}, tags=["gpu"])
        run = client.create_run(experiment.id, hyperparameters={"lr": 0.01})
        assert run.status == "running" and run.source == "external" and run.hyperparameters == {"lr": 0.01}
        assert client.log_params(run.id, {"batch_size": 32}).hyperparameters == {"lr": 0.01, "batch_size": 32}
        for epoch in range(3):
            client.log_metrics(run.id, {"loss": 1.0 / (epoch + 1), "epoch": epoch}, step=epoch)
        client.log(run.id, "epoch 2 done")
        client.log(run.id, "gpu is hot", level="warning")
        assert client.set_run_progress(run.id, 0.9).progress == 0.9
        checkpoint = client.upload_checkpoint(run.id, weights)
        assert checkpoint.name == "model.pt" and checkpoint.size == weights.stat().st_size
        assert checkpoint.epoch == 2 and checkpoint.step == 2 and checkpoint.metrics["loss"] == pytest.approx(1 / 3)
        assert checkpoint.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        ended = client.end_run(run.id)
        assert ended.status == "completed" and ended.completed_at is not None

        got = client.get_run(run.id)
        assert got.metrics == {"loss": pytest.approx(1 / 3), "epoch": 2} and got.step == 2
        assert [c.id for c in got.checkpoints] == [checkpoint.id]
        assert client.download_checkpoint(run.id, checkpoint.id) == weights.read_bytes()
        assert [p.step for p in client.run_metrics(run.id)["loss"]] == [0, 1, 2]
        assert [x.message for x in client.run_logs(run.id, level="warning")] == ["gpu is hot"]
        summary = client.get_experiment(experiment.id)
        assert summary.results_summary.total_runs == 1 and summary.results_summary.completed_runs == 1

        with pytest.raises(ApiError) as ended_already:
            client.log_metrics(run.id, {"loss": 0.1})
        assert ended_already.value.status_code == 422 and "ended" in ended_already.value.message
        listed = client.list_runs({"source": "external"}, experiment_id=experiment.id)
        assert [r.id for r in listed.data] == [run.id]

    with httpx.Client(base_url=v1.url, headers={"X-API-Key": keys["alice"]}, timeout=30) as alice:
        other = alice.post(f"{EXPERIMENTS}/{experiment.id}/runs", json={"run": {}}).json()["data"]
        bad = alice.post(f"{RUNS}/{other['id']}/metrics", json={"metrics": [{"metrics": {"loss": "high"}}]})
        assert_invalid(bad, "metrics.0.metrics.loss")
        assert_invalid(alice.post(f"{RUNS}/{other['id']}/metrics", json={"metrics": []}), "metrics")
        assert_invalid(alice.post(f"{RUNS}/{other['id']}/end", json={"status": "running"}), "status")
        assert_invalid(alice.post(f"{RUNS}/{other['id']}/progress", json={"progress": 2}), "progress")
        clash = alice.post(f"{RUNS}/{other['id']}/params", json={"params": {"lr": 0.5}})
        assert clash.status_code == 200
        assert_invalid(alice.post(f"{RUNS}/{other['id']}/params", json={"params": {"lr": 0.6}}), "hyperparameters.lr")


def test_a_planned_run_takes_no_logging_calls(v1):
    with v1.admin() as admin:
        eid = create(admin, code_config("print(1)"), name="planned")["id"]
        act(admin, eid, "start")
        wait_for(admin, eid, lambda e: e["status"] == "completed", "the run ending")
        run_id = runs_of(admin, eid)[0]["id"]
        refused = admin.post(f"{RUNS}/{run_id}/metrics", json={"metrics": [{"metrics": {"loss": 1}}]})
        assert_v1_error(refused, 422, "validation_error", "run by the appliance")
        upload = admin.post(f"{RUNS}/{run_id}/checkpoints", params={"name": "x.pt"}, content=b"x")
        assert_v1_error(upload, 422, "validation_error")


# --- lists, owners and errors -----------------------------------------------------------------


def test_lists_filter_sort_and_page(v1, keys):
    with httpx.Client(base_url=v1.url, headers={"X-API-Key": keys["bob"]}, timeout=30) as bob:
        made = [create(bob, {"type": "external"}, name=f"Sweep {i:02d}", tags=["list"]) for i in range(7)]
        act(bob, made[0]["id"], "cancel")
        newest = bob.get(EXPERIMENTS, params={"per_page": 3}).json()
        assert [e["id"] for e in newest["data"]] == [e["id"] for e in made[::-1][:3]]
        assert newest["meta"]["total"] == 7 and newest["meta"]["has_more"]
        seen, cursor = [], None
        while True:
            params = {"per_page": 3, "sort": "name", **({"cursor": cursor} if cursor else {})}
            page = bob.get(EXPERIMENTS, params=params).json()
            seen += [e["name"] for e in page["data"]]
            cursor = page["meta"]["next_cursor"]
            if not cursor:
                break
        assert seen == [f"Sweep {i:02d}" for i in range(7)]
        by_page = bob.get(EXPERIMENTS, params={"per_page": 3, "page": 3, "sort": "-name"}).json()
        assert [e["name"] for e in by_page["data"]] == ["Sweep 00"] and not by_page["meta"]["has_more"]
        cancelled = bob.get(EXPERIMENTS, params={"filter[status]": "cancelled"}).json()
        assert [e["id"] for e in cancelled["data"]] == [made[0]["id"]]
        named = bob.get(EXPERIMENTS, params={"filter[name]": "sweep 0", "filter[type]": "external"}).json()
        assert named["meta"]["total"] == 7
        window = bob.get(
            EXPERIMENTS,
            params={"filter[created_after]": made[2]["created_at"], "filter[created_before]": made[4]["created_at"]},
        ).json()
        assert [e["id"] for e in window["data"]] == [made[3]["id"], made[2]["id"]]
        by_status = bob.get(EXPERIMENTS, params={"sort": "status", "per_page": 100}).json()["data"]
        assert [e["status"] for e in by_status] == sorted(e["status"] for e in by_status)

        assert_invalid(bob.get(EXPERIMENTS, params={"filter[status]": "sleeping"}), "filter[status]")
        assert_invalid(bob.get(EXPERIMENTS, params={"filter[owner]": "x"}), "filter[owner]")
        assert_invalid(bob.get(EXPERIMENTS, params={"sort": "metrics.loss"}), "sort")
        assert_invalid(bob.get(EXPERIMENTS, params={"per_page": 101}), "per_page")
        assert_invalid(bob.get(EXPERIMENTS, params={"cursor": "forged"}), "cursor")
        assert_invalid(bob.get(RUNS, params={"sort": 'metrics.a"b'}), "sort")
        assert_invalid(bob.get(RUNS, params={"filter[status]": "paused"}), "filter[status]")
        assert bob.get(RUNS, params={"sort": "-metrics.val/loss: top-1"}).status_code == 200


def test_owners_permissions_and_errors(v1, keys):
    alice = httpx.Client(base_url=v1.url, headers={"Authorization": f"Bearer {keys['alice']}"}, timeout=30)
    bob = httpx.Client(base_url=v1.url, headers={"X-API-Key": keys["bob"]}, timeout=30)
    reader = httpx.Client(base_url=v1.url, headers={"X-API-Key": keys["reader"]}, timeout=30)
    with alice, bob, reader, v1.admin() as admin, httpx.Client(base_url=v1.url, timeout=30) as anonymous:
        mine = create(alice, {"type": "external"}, name="alice's")
        run = alice.post(f"{EXPERIMENTS}/{mine['id']}/runs", json={"run": {}}).json()["data"]
        for path in (f"{EXPERIMENTS}/{mine['id']}", f"{EXPERIMENTS}/{mine['id']}/runs", f"{RUNS}/{run['id']}"):
            assert_v1_error(bob.get(path), 404, "not_found")
            assert admin.get(path).status_code == 200
            assert reader.get(path).status_code == 200  # the reader's owner is alice
            assert_v1_error(anonymous.get(path), 401, "unauthorized")
        assert mine["id"] not in [e["id"] for e in bob.get(EXPERIMENTS, params={"per_page": 100}).json()["data"]]
        assert_v1_error(bob.post(f"{EXPERIMENTS}/{mine['id']}/cancel"), 404, "not_found")
        assert_v1_error(bob.post(f"{RUNS}/{run['id']}/logs", json={"logs": [{"message": "x"}]}), 404, "not_found")
        error = assert_v1_error(reader.post(EXPERIMENTS, json={"experiment": {"name": "x"}}), 403, "forbidden")
        assert error["details"].get("required_permission") == "execute", error
        assert_v1_error(reader.post(f"{EXPERIMENTS}/{mine['id']}/cancel"), 403, "forbidden")
        assert_v1_error(anonymous.get(RUNS), 401, "unauthorized")

        assert_invalid(alice.post(EXPERIMENTS, json={"experiment": {"config": {"type": "external"}}}), "name")
        assert_invalid(alice.post(EXPERIMENTS, json={"experiment": {"name": "x"}}), "config")
        assert_invalid(alice.post(EXPERIMENTS, json={"experiment": {"name": "x", "config": {"type": "nope"}}}))
        assert_invalid(
            alice.post(EXPERIMENTS, json={"experiment": {"name": "x", "config": code_config("1", grid={"a": []})}})
        )
        assert_invalid(alice.post(EXPERIMENTS, json={"name": "unwrapped"}), "name")
        assert_invalid(alice.post(EXPERIMENTS, json={"experiment": {"name": "x", "colour": "red"}}), "colour")
        assert_invalid(alice.post(f"{EXPERIMENTS}/{mine['id']}/pause", json={"stop_running": "yes"}), "stop_running")
        before = alice.get(EXPERIMENTS, params={"per_page": 1}).json()["meta"]["total"]
        assert before == len(alice.get(EXPERIMENTS, params={"per_page": 100}).json()["data"])


def test_write_rate_limit_on_experiments(tmp_path):
    server = start_v1_server(tmp_path / "limited", env={"APPLIANCE_RATE_LIMIT_WRITE": "2"})
    try:
        with server.admin() as admin:
            statuses = [
                admin.post(EXPERIMENTS, json={"experiment": {"name": f"e{i}", "config": {"type": "external"}}})
                for i in range(3)
            ]
            assert [r.status_code for r in statuses[:2]] == [201, 201]
            assert statuses[0].headers["X-RateLimit-Limit"] == "2"
            error = assert_v1_error(statuses[2], 429, "rate_limited")
            assert "retry_after" in error["details"] and statuses[2].headers["Retry-After"]
            assert admin.get(EXPERIMENTS).status_code == 200  # reads have their own budget
    finally:
        server.stop()


# --- a hostile program, seen through the API ---------------------------------------------------

HOSTILE = r"""
import json, os, sys
hp = json.load(open("hyperparameters.json"))
if hp["mode"] == "good":
    for step in range(3):
        print(json.dumps({"metrics": {"score": step + 1}, "step": step}))
    sys.exit(0)
# Metric lines past the run's cap, lines naming another run, a log flood and junk.
line = json.dumps({"metrics": {"flood": 1.0}, "step": 0})
sys.stdout.write((line + "\n") * 150_000)
print(json.dumps({"run_id": "run_000000000000", "metrics": {"score": -1}, "step": 99}))
print(json.dumps({"experiment_id": "exp_000000000000", "level": "error", "message": "forged"}))
sys.stdout.write(("x" * 5000 + "\n") * 2000)
sys.stdout.write("\x00\xff not json {\n")
"""


def test_a_hostile_program_harms_neither_other_runs_nor_the_server(v1):
    """Through the API: a run that floods metrics and logs and prints lines naming other
    runs gets its own capped history, the run beside it keeps exactly its own three
    points, and the server answers meanwhile."""
    config = code_config(HOSTILE, list=[{"mode": "hostile"}, {"mode": "good"}], max_parallel=2)
    with v1.admin() as admin:
        experiment = create(admin, config, name="hostile")
        act(admin, experiment["id"], "start")
        started = time.monotonic()
        while detail(admin, experiment["id"])["status"] == "running" and time.monotonic() - started < HANG_SECONDS:
            assert admin.get(EXPERIMENTS, params={"per_page": 1}).status_code == 200
            time.sleep(0.2)
        done = wait_for(admin, experiment["id"], lambda e: e["status"] in ("completed", "failed"), "the end")
        hostile, good = runs_of(admin, experiment["id"])
        assert good["metrics"] == {"score": 3} and good["status"] == "completed", good
        history = admin.get(f"{RUNS}/{good['id']}/metrics").json()["data"]
        assert [p["value"] for p in history["score"]] == [1, 2, 3]

        flood = admin.get(f"{RUNS}/{hostile['id']}/metrics", params={"name": "flood"}).json()["data"]["flood"]
        assert 0 < len(flood) <= 100_000  # experiment_run_max_metric_points
        # Past the cap the rest of its metric lines are dropped unread, the one naming
        # another run too; none of them reached the good run (its history above).
        assert hostile["metrics"] == {"flood": 1.0}
        logs = admin.get(f"{RUNS}/{hostile['id']}/logs", params={"tail": 50}).json()["data"]
        assert len(logs) <= 50
        assert done["results_summary"]["total_runs"] == 2
