"""Restarts and crashes: nothing acknowledged is lost, nothing is left running."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.support import eventually, wait_for_status


@pytest.mark.slow
def test_restart_fails_running_and_runs_queued(fresh_server, docker_client):
    server = fresh_server(env={"APPLIANCE_WORKERS": "1"})
    with server.admin() as client:
        code = "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(120)"
        long_id = client.post("/api/eval", json={"code": code, "timeout": 200}).json()["eval_id"]
        wait_for_status(client, long_id, until=("running",))
        hostname = eventually(
            lambda: client.get(f"/api/eval/{long_id}/logs").json()["output"].strip(),
            message="the running evaluation printing its hostname",
        )
        queued_ids = [client.post("/api/eval", json={"code": f"print({n})"}).json()["eval_id"] for n in range(3)]
    server.kill_hard()

    def its_container() -> list:  # the container's hostname is its id's first 12 digits
        return [c for c in docker_client.api.containers(all=True) if c["Id"].startswith(hostname)]

    assert its_container(), "the container of the running evaluation should outlive the server"

    restarted = fresh_server(env={"APPLIANCE_WORKERS": "1"}, data_dir=server.data_dir)
    with restarted.admin() as client:
        failed = client.get(f"/api/eval-status/{long_id}").json()
        assert failed["status"] == "failed" and failed["reason"] == "appliance_restart"
        assert "restarted" in failed["error"]
        outputs = [wait_for_status(client, eval_id)["output"] for eval_id in queued_ids]
    assert outputs == ["0\n", "1\n", "2\n"]
    assert not its_container(), "stale container not removed"


@pytest.mark.slow
def test_kill_9_during_a_burst_loses_no_acknowledged_submission(fresh_server):
    server = fresh_server(env={"APPLIANCE_WORKERS": "2"})
    acknowledged: list[str] = []
    stop = threading.Event()

    def submit_forever(key: str) -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/eval", json={"code": "print('burst')"})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged.append(response.json()["eval_id"])

    key = server.admin_key
    threads = [threading.Thread(target=submit_forever, args=(key,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: len(acknowledged) >= 40, interval=0.05, message="40 acknowledged submissions")
    finally:
        server.kill_hard()
        stop.set()
        for thread in threads:
            thread.join(30)

    # Rate limits off: waiting for the last items polls more often than 100 a minute.
    restarted = fresh_server(
        env={"APPLIANCE_WORKERS": "4", "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "0"}, data_dir=server.data_dir
    )
    with restarted.admin() as client:
        listed = client.get("/api/evaluations", params={"limit": 1000}).json()
        stored = {e["eval_id"] for e in listed["evaluations"]}
        assert set(acknowledged) <= stored
        for eval_id in acknowledged[-5:]:
            assert wait_for_status(client, eval_id, 120)["status"] in ("completed", "failed")


def test_graceful_stop_and_start_keeps_history(fresh_server):
    server = fresh_server()
    with server.admin() as client:
        eval_id = client.post("/api/eval", json={"code": "print('kept')"}).json()["eval_id"]
        wait_for_status(client, eval_id)
    key = server.admin_key
    server.stop()
    again = fresh_server(data_dir=server.data_dir)
    assert again.admin_key == key  # the first key is created once, not on every start
    with again.admin() as client:
        assert client.get(f"/api/eval-status/{eval_id}").json()["output"] == "kept\n"


def test_engine_unreachable_is_503_and_stores_nothing(fresh_server, tmp_path):
    server = fresh_server(env={"APPLIANCE_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    with server.admin() as client:
        response = client.post("/api/eval", json={"code": "print(1)"})
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status_code"] == 503 and "docker engine" in body["detail"].lower()
        assert client.get("/api/evaluations").json()["count"] == 0
        status = client.get("/api/status").json()
        assert status["platform"] == "degraded" and status["services"]["executor"] == "unhealthy"
