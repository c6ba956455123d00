"""Every user-caused error on the platform API: documented shape, right code, nothing stored."""

from __future__ import annotations

import httpx
import pytest

ERROR_KEYS = {"error", "detail", "status_code"}


def assert_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status_code"] == status
    for word in words:
        assert word.lower() in body["detail"].lower(), body
    return body


def stored_count(client: httpx.Client) -> int:
    return client.get("/api/evaluations", params={"limit": 1}).json()["count"]


BAD_SUBMISSIONS = [
    ({"language": "python"}, "code field is required"),
    ({"code": "", "language": "python"}, "empty"),
    ({"code": "   \n", "language": "python"}, "empty"),
    ({"code": "print(1)", "language": "cobol"}, "unknown language"),
    ({"code": "print(1)", "engine": "lxc"}, "unknown engine"),
    ({"code": "print(1)", "timeout": 0}, "timeout"),
    ({"code": "print(1)", "timeout": -5}, "timeout"),
    ({"code": "print(1)", "timeout": 100000}, "timeout"),
    ({"code": "print(1)", "timeout": "soon"}, "timeout"),
    ({"code": 12}, "code"),
    ({"code": "print(1)", "language": None, "engine": 3}, "engine"),
]


@pytest.mark.parametrize("body,words", BAD_SUBMISSIONS, ids=[w for _, w in BAD_SUBMISSIONS])
def test_bad_submission_is_400_and_stores_nothing(server, body, words):
    with server.admin() as client:
        before = stored_count(client)
        assert_error(client.post("/api/eval", json=body), 400, words)
        assert stored_count(client) == before


def test_malformed_json_is_400(server):
    with server.admin() as client:
        before = stored_count(client)
        response = client.post("/api/eval", content=b"{not json", headers={"Content-Type": "application/json"})
        assert_error(response, 400, "json")
        assert_error(client.post("/api/eval", content=b"", headers={"Content-Type": "application/json"}), 400)
        assert_error(client.post("/api/eval", content=b"[1, 2]", headers={"Content-Type": "application/json"}), 400)
        assert stored_count(client) == before


def test_body_over_the_size_limit_is_400(server):
    with server.admin() as client:
        before = stored_count(client)
        huge = "x = 1\n" * (3 * 1024 * 1024 // 6)
        assert_error(client.post("/api/eval", json={"code": huge}), 400, "larger")
        assert stored_count(client) == before


def test_code_over_the_code_limit_is_400(server):
    with server.admin() as client:
        code = "#" * (300 * 1024)
        assert_error(client.post("/api/eval", json={"code": code}), 400, "limit")


def test_batch_with_one_bad_item_stores_none(server):
    with server.admin() as client:
        before = stored_count(client)
        body = {"evaluations": [{"code": "print(1)"}, {"code": "print(2)", "language": "cobol"}]}
        assert_error(client.post("/api/eval-batch", json=body), 400, "evaluations[1]")
        assert_error(client.post("/api/eval-batch", json={"evaluations": []}), 400, "empty")
        assert_error(client.post("/api/eval-batch", json={}), 400, "empty")
        too_many = {"evaluations": [{"code": "print(1)"}] * 101}
        assert_error(client.post("/api/eval-batch", json=too_many), 400, "limit")
        assert stored_count(client) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/eval-status/eval_20990101_000000_ffffff",
        "/api/eval/eval_20990101_000000_ffffff/logs",
    ],
)
def test_unknown_evaluation_is_404(server, path):
    with server.admin() as client:
        assert_error(client.get(path), 404, "not found")


def test_kill_unknown_is_404(server):
    with server.admin() as client:
        assert_error(client.post("/api/eval/eval_nope/kill"), 404)


def test_unknown_route_and_wrong_method(server):
    with server.admin() as client:
        assert_error(client.get("/api/nope"), 404, "no such endpoint")
        assert_error(client.get("/api/eval"), 405)


@pytest.mark.parametrize(
    "params,words",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
        ({"status": "exploded"}, "status"),
    ],
)
def test_bad_list_parameters(server, params, words):
    with server.admin() as client:
        assert_error(client.get("/api/evaluations", params=params), 400, words)
