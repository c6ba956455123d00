"""`GET /api/eval-status/{id}?wait=` and `GET /api/execute/{id}?wait=`: one held request
instead of a polling loop, answered when the run ends or when the wait is over; a bad
wait is the surface's documented 400 and changes nothing."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from appliance.client import ApplianceClient
from tests.support import HANG_SECONDS, assert_sandbox_error, eventually
from tests.test_sandbox_execute import execution_id_of, in_background

FINAL = ("completed", "failed", "timeout")


def submit(client, code: str, timeout: float = 30) -> str:
    response = client.post("/api/eval", json={"code": code, "language": "python", "timeout": timeout})
    assert response.status_code == 200, response.text
    return response.json()["eval_id"]


def stored_count(server) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'appliance.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM evaluations").fetchone()[0]


def test_wait_answers_when_the_evaluation_ends(server):
    with server.admin() as client:
        eval_id = submit(client, "import time; time.sleep(1.5); print('done')")
        started = time.monotonic()
        response = client.get(f"/api/eval-status/{eval_id}", params={"wait": 55}, timeout=HANG_SECONDS + 10)
        took = time.monotonic() - started
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed" and body["output"] == "done\n", body
        # Answered by the end, not by the end of the wait (55 s).
        assert took < 50, took

        # Ended already: answered at once with the same body.
        started = time.monotonic()
        again = client.get(f"/api/eval-status/{eval_id}", params={"wait": 55}, timeout=HANG_SECONDS + 10)
        assert again.json() == body and time.monotonic() - started < 50


def test_wait_over_answers_the_state_then(server):
    with server.admin() as client:
        eval_id = submit(client, "import time; time.sleep(20)")
        try:
            started = time.monotonic()
            body = client.get(f"/api/eval-status/{eval_id}", params={"wait": 0.5}).json()
            assert time.monotonic() - started >= 0.5
            assert body["status"] in ("queued", "running"), body
            # wait=0 is a plain read.
            assert client.get(f"/api/eval-status/{eval_id}", params={"wait": 0}).json()["status"] not in FINAL
        finally:
            client.post(f"/api/eval/{eval_id}/kill")


def test_many_waiters_all_wake_and_a_kill_ends_the_wait(server):
    with server.admin() as client:
        eval_id = submit(client, "import time; time.sleep(30)")
        answers: list[dict] = []

        def wait() -> None:
            with server.admin() as own:
                answers.append(own.get(f"/api/eval-status/{eval_id}", params={"wait": 55}, timeout=90).json())

        threads = [threading.Thread(target=wait, daemon=True) for _ in range(5)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # they are held now (or the kill below is seen at once: the same answer)
        assert client.post(f"/api/eval/{eval_id}/kill").json()["killed"] is True
        for thread in threads:
            thread.join(HANG_SECONDS)
        assert len(answers) == 5
        assert {(a["status"], a["reason"]) for a in answers} == {("failed", "killed")}, answers


@pytest.mark.parametrize("wait", ["-1", "61", "1e9", "nan", "inf", "soon", ""])
def test_a_bad_wait_is_a_400_and_changes_nothing(server, wait):
    with server.admin() as client:
        eval_id = submit(client, "print(1)")
        before = stored_count(server)
        response = client.get(f"/api/eval-status/{eval_id}", params={"wait": wait})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["status_code"] == 400 and body["error"] == "Validation error", body
        assert "wait" in body["detail"], body
        assert stored_count(server) == before


def test_a_bad_wait_on_someone_elses_or_no_evaluation_is_still_404_first(server):
    with server.admin() as client:
        response = client.get("/api/eval-status/eval_20260101_000000_abcdef", params={"wait": 5})
        assert response.status_code == 404, response.text


def test_execute_state_waits_for_the_end(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        thread, box = in_background(
            lambda: admin.execute(language="python", code="import time; time.sleep(1.5); print('wait-marker')")
        )
        execution_id = execution_id_of(server, "wait-marker")
        started = time.monotonic()
        state = admin.get_execution(execution_id, wait=55)
        assert time.monotonic() - started < 50
        assert state.status == "completed" and state.output == "wait-marker\n", state
        thread.join(HANG_SECONDS)
        assert box["result"].status == "completed"

        # Over: the state as it is, still running.
        thread, box = in_background(
            lambda: admin.execute(language="python", code="import time; time.sleep(20)  # over-marker")
        )
        execution_id = execution_id_of(server, "over-marker")
        started = time.monotonic()
        state = admin.get_execution(execution_id, wait=0.3)
        assert state.status == "running" and time.monotonic() - started >= 0.3
        admin.cancel_execution(execution_id)
        thread.join(HANG_SECONDS)

    with server.admin() as client:
        for wait in ("-1", "61", "nan", "soon"):
            response = client.get(f"/api/execute/{execution_id}", params={"wait": wait})
            assert_sandbox_error(response, 400, "VALIDATION_ERROR", "wait")


def test_the_client_waits_without_a_polling_loop(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        eval_id = admin.submit_evaluation("python", "print(6 * 7)").eval_id
        result = admin.wait_for_evaluation(eval_id, timeout=HANG_SECONDS)
        assert result.status == "completed" and result.output == "42\n"
        eventually(lambda: admin.evaluation_status(eval_id, wait=1).status == "completed")
