"""Rate limits per identity, with the documented headers and defaults."""

from __future__ import annotations

import time

import pytest

from tests.test_api_errors import assert_error
from tests.test_auth import create_key


@pytest.fixture(autouse=True)
def one_window():
    """The limits count per clock minute (services/rate_limit.py): a test whose requests
    straddle a minute's turn would see its budget renewed halfway. Start with 20 s left."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.2)


def test_documented_defaults_and_headers(fresh_server):
    server = fresh_server()  # documented defaults: 10 anonymous, 100 authenticated, 10 batch
    with server.client() as anon:
        responses = [anon.get("/api/queue-status") for _ in range(11)]
    assert [r.status_code for r in responses[:10]] == [200] * 10
    assert responses[0].headers["X-RateLimit-Limit"] == "10"
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in responses[:10]] == list(range(9, -1, -1))
    reset = int(responses[0].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    limited = assert_error(responses[10], 429, "per minute")
    assert responses[10].headers["Retry-After"]
    assert limited["error"] == "Rate limit exceeded"

    with server.admin() as admin:
        first = admin.get("/api/queue-status")
        assert first.headers["X-RateLimit-Limit"] == "100"  # a key has its own bucket
        batch = admin.post("/api/eval-batch", json={"evaluations": [{"code": "print(1)"}]})
        assert batch.headers["X-RateLimit-Limit"] == "10"


def test_limits_are_per_identity_and_configurable(fresh_server):
    server = fresh_server(env={"APPLIANCE_RATE_LIMIT_AUTHENTICATED": "3"})
    alice = create_key(server, "alice-rl")
    bob = create_key(server, "bob-rl")
    with server.client(alice) as a, server.client(bob) as b:
        assert [a.get("/api/evaluations").status_code for _ in range(4)] == [200, 200, 200, 429]
        assert b.get("/api/evaluations").status_code == 200  # bob is not punished for alice
        before = a.get("/api/evaluations", params={"limit": 1})
        assert before.status_code == 429
        assert a.post("/api/eval", json={"code": "print(1)"}).status_code == 429
    with server.admin() as admin:
        assert admin.get("/api/evaluations").json()["count"] == 0  # the refused submit stored nothing


def test_sandbox_execution_bucket_is_20_a_minute_apart_from_the_standard_100(fresh_server):
    """sandbox-api.md: 20 executions per minute per key, counted apart from the standard
    100 requests; the 21st execution gets 429 in the sandbox error shape."""
    from appliance.client import ApiError, ApplianceClient
    from tests.support import assert_sandbox_error

    server = fresh_server()
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        for _ in range(20):
            response = client.http.post("/api/execute", json={"language": "python", "code": "print(1)"})
            assert response.status_code == 200, response.text
            assert response.headers["X-RateLimit-Limit"] == "20"
        refused = client.http.post("/api/execute", json={"language": "python", "code": "print(1)"})
        error = assert_sandbox_error(refused, 429, "RATE_LIMIT_EXCEEDED", "20 requests per minute")
        assert error["details"]["retry_after"] >= 1 and int(refused.headers["Retry-After"]) >= 1
        # Other requests are still in the standard bucket.
        health = client.http.get("/auth/api-keys")
        assert health.status_code == 200 and health.headers["X-RateLimit-Limit"] == "100"
        try:
            client.execute(language="python", code="print(1)")
        except ApiError as exc:
            assert exc.status_code == 429 and exc.code == "RATE_LIMIT_EXCEEDED"
        else:
            raise AssertionError("the client should raise ApiError on 429")
