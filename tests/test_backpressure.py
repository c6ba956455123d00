"""Backpressure: with every worker busy and the queue at its threshold, submissions are
refused at once with 503 and Retry-After in the surface's shape, and nothing is stored."""

from __future__ import annotations

import sqlite3

from appliance.services.evaluation.backpressure import RETRY_AFTER_MAX_SECONDS, retry_after_seconds
from tests.support import HANG_SECONDS, assert_sandbox_error, eventually

BUSY = "import time; time.sleep(60)"


def stored(server) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'appliance.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM evaluations").fetchone()[0]


def test_retry_after_is_the_time_the_queue_ahead_takes_to_drain():
    assert retry_after_seconds(10, 2, 3.0) == 15
    assert retry_after_seconds(1, 4, 0.01) == 1  # never less than a second
    assert retry_after_seconds(10_000, 1, 30.0) == RETRY_AFTER_MAX_SECONDS
    assert retry_after_seconds(5, 0, 1.0) == 5


def test_busy_workers_and_a_long_queue_refuse_with_retry_after(fresh_server):
    server = fresh_server(
        env={
            "APPLIANCE_WORKERS": "1",
            "APPLIANCE_QUEUE_BACKPRESSURE_THRESHOLD": "2",
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
            "APPLIANCE_RATE_LIMIT_EXECUTE": "100000",
            "APPLIANCE_RATE_LIMIT_BATCH": "100000",
            "APPLIANCE_BATCH_LANE_ENGINES": "",
        }
    )
    with server.admin() as client:
        ids = []

        def submit():
            response = client.post("/api/eval", json={"code": BUSY, "timeout": 120})
            assert response.status_code == 200, response.text
            ids.append(response.json()["eval_id"])

        submit()  # the one worker takes it
        eventually(lambda: client.get(f"/api/eval-status/{ids[0]}").json()["status"] == "running")
        submit()
        # A batch is accepted whole while the queue is below the threshold.
        batch = client.post("/api/eval-batch", json={"evaluations": [{"code": BUSY}, {"code": BUSY}]})
        assert batch.status_code == 200, batch.text
        ids += [item["eval_id"] for item in batch.json()["evaluations"]]
        before = stored(server)

        refused = client.post("/api/eval", json={"code": "print(1)"})
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["status_code"] == 503 and body["error"] == "Service unavailable", body
        assert "every worker is busy" in body["detail"]
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= RETRY_AFTER_MAX_SECONDS
        assert f"retry in {retry_after} s" in body["detail"]

        assert client.post("/api/eval-batch", json={"evaluations": [{"code": "print(1)"}]}).status_code == 503
        execute = client.post("/api/execute", json={"language": "python", "code": "print(1)"})
        error = assert_sandbox_error(execute, 503, "SERVICE_UNAVAILABLE", "every worker is busy")
        assert error["details"]["retry_after"] == int(execute.headers["Retry-After"])
        assert stored(server) == before  # nothing stored for a refused submission

        # Once the queue is short again, submissions are taken.
        for eval_id in ids[1:]:
            assert client.post(f"/api/eval/{eval_id}/kill").json()["killed"] is True
        accepted = client.post("/api/eval", json={"code": "print('after')"})
        assert accepted.status_code == 200, accepted.text
        client.post(f"/api/eval/{ids[0]}/kill")
        final = client.get(
            f"/api/eval-status/{accepted.json()['eval_id']}", params={"wait": 55}, timeout=HANG_SECONDS + 10
        ).json()
        assert final["status"] == "completed" and final["output"] == "after\n", final
