"""Rate limits per identity, with the documented headers and defaults.

The limiter itself runs on a clock the tests turn by hand. Through HTTP the windows
renew on the clock minute: a run whose answers name more than one X-RateLimit-Reset
straddled a turn and is done again on a fresh server, so no test waits for, or dodges,
a minute's turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
import pytest

from appliance.client import ApiError, ApplianceClient
from appliance.services.access.rate_limit import RateLimiter
from tests.support import assert_sandbox_error
from tests.test_api_errors import assert_error
from tests.test_auth import create_key


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


MINUTE = 1_700_000_040  # epoch seconds on a minute's turn


# --- the limiter, on a fake clock -----------------------------------------------------------


def test_counts_down_within_a_window_and_refuses_past_the_limit():
    clock = FakeClock(MINUTE + 10)
    limiter = RateLimiter(clock=clock)
    decisions = [limiter.check("alice", "default", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.limit for d in decisions} == {3} and {d.reset for d in decisions} == {MINUTE + 60}
    assert limiter.check("alice", "default", 3).allowed is False  # a refusal is not counted up


def test_a_new_window_renews_the_budget():
    clock = FakeClock(MINUTE + 59.5)
    limiter = RateLimiter(clock=clock)
    assert [limiter.check("alice", "default", 2).allowed for _ in range(3)] == [True, True, False]
    clock.now = MINUTE + 60  # the turn of the minute
    renewed = limiter.check("alice", "default", 2)
    assert renewed.allowed and renewed.remaining == 1 and renewed.reset == MINUTE + 120


def test_retry_after_is_the_rest_of_the_window_by_the_limiters_clock():
    clock = FakeClock(MINUTE + 20.2)
    limiter = RateLimiter(clock=clock)
    limiter.check("alice", "default", 1)
    refused = limiter.check("alice", "default", 1)
    assert not refused.allowed and refused.retry_after == 40  # 39.8 s left, rounded up
    clock.now = MINUTE + 59.99
    assert limiter.check("alice", "default", 1).retry_after == 1  # never 0
    assert RateLimiter(window_seconds=10, clock=FakeClock(MINUTE + 3)).check("a", "b", 1).retry_after == 7


def test_identities_and_buckets_are_counted_apart():
    limiter = RateLimiter(clock=FakeClock(MINUTE))
    assert limiter.check("alice", "default", 1).allowed
    assert not limiter.check("alice", "default", 1).allowed
    assert limiter.check("bob", "default", 1).allowed
    assert limiter.check("alice", "execute", 1).allowed


def test_limit_zero_turns_the_limit_off():
    limiter = RateLimiter(clock=FakeClock(MINUTE))
    decisions = [limiter.check("alice", "default", 0) for _ in range(1000)]
    assert all(d.allowed and d.limit == 0 for d in decisions)
    assert limiter.tracked == 0  # nothing counted, nothing held


def test_counts_of_past_windows_are_forgotten():
    clock = FakeClock(MINUTE)
    limiter = RateLimiter(clock=clock)
    for n in range(500):
        limiter.check(f"caller-{n}", "default", 10)
    assert limiter.tracked == 500
    clock.now = MINUTE + 60
    limiter.check("caller-new", "default", 10)  # a caller not seen before is enough
    assert limiter.tracked == 1
    assert limiter.check("caller-0", "default", 10).remaining == 9  # its old count is gone


# --- through HTTP ----------------------------------------------------------------------------


def within_one_window(run: Callable[[], Sequence[httpx.Response]], tries: int = 3) -> Sequence[httpx.Response]:
    """The responses of a `run()` that stayed within one window. A run that straddled a
    turn ends in the window that has just begun, so the next one (on a fresh server of
    its own) fits unless a run takes half a window: that is a hang."""
    windows: set[str] = set()
    for _ in range(tries):
        responses = run()
        windows = {r.headers["X-RateLimit-Reset"] for r in responses if "X-RateLimit-Reset" in r.headers}
        assert windows, "no response carried X-RateLimit-Reset"
        if len(windows) == 1:
            return responses
    raise AssertionError(f"{tries} runs each straddled the turn of a window: {sorted(windows)}")


def test_documented_defaults_and_headers(fresh_server):
    def run():
        server = fresh_server()  # documented defaults: 10 anonymous, 100 authenticated, 10 batch
        with server.client() as anon:
            responses = [anon.get("/api/queue-status") for _ in range(11)]
        with server.admin() as admin:
            responses.append(admin.get("/api/queue-status"))
            responses.append(admin.post("/api/eval-batch", json={"evaluations": [{"code": "print(1)"}]}))
        return responses

    *anonymous, limited, keyed, batch = within_one_window(run)
    assert [r.status_code for r in anonymous] == [200] * 10
    assert {r.headers["X-RateLimit-Limit"] for r in anonymous} == {"10"}
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in anonymous] == list(range(9, -1, -1))
    reset = int(anonymous[0].headers["X-RateLimit-Reset"])
    assert reset % 60 == 0 and time.time() - 60 < reset <= time.time() + 60  # windows renew on the minute
    body = assert_error(limited, 429, "per minute")
    assert body["error"] == "Rate limit exceeded"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert keyed.status_code == 200 and keyed.headers["X-RateLimit-Limit"] == "100"  # a key has its own bucket
    assert keyed.headers["X-RateLimit-Remaining"] == "99"
    assert batch.status_code == 200 and batch.headers["X-RateLimit-Limit"] == "10"


def test_limits_are_per_identity_and_configurable(fresh_server):
    stored: list[int] = []

    def run():
        server = fresh_server(env={"APPLIANCE_RATE_LIMIT_AUTHENTICATED": "3"})
        alice = create_key(server, "alice-rl")  # the CLI: no request counted
        bob = create_key(server, "bob-rl")
        with server.client(alice) as a, server.client(bob) as b:
            responses = [a.get("/api/evaluations") for _ in range(4)]
            responses.append(b.get("/api/evaluations"))
            responses.append(a.get("/api/evaluations", params={"limit": 1}))
            responses.append(a.post("/api/eval", json={"code": "print(1)"}))
        with server.admin() as admin:
            responses.append(admin.get("/api/evaluations"))
        stored.append(responses[-1].json()["count"])
        return responses

    responses = within_one_window(run)
    assert [r.status_code for r in responses[:4]] == [200, 200, 200, 429]
    assert responses[4].status_code == 200  # bob is not punished for alice
    assert responses[5].status_code == 429 and responses[6].status_code == 429
    assert stored[-1] == 0  # the refused submit stored nothing


def test_sandbox_execution_bucket_is_20_a_minute_apart_from_the_standard_100(fresh_server):
    """sandbox-api.md: 20 executions per minute per key, counted apart from the standard
    100 requests; the 21st execution gets 429 in the sandbox error shape."""
    raised: list[ApiError | None] = []

    def run():
        server = fresh_server()
        with ApplianceClient(server.url, api_key=server.admin_key) as client:
            execute = {"language": "python", "code": "print(1)"}
            responses = [client.http.post("/api/execute", json=execute) for _ in range(21)]
            # Other requests are still in the standard bucket.
            responses.append(client.http.get("/auth/api-keys"))
            try:
                client.execute(**execute)
            except ApiError as exc:
                raised.append(exc)
            else:
                raised.append(None)
            responses.append(client.http.get("/auth/api-keys"))  # the window the call above was in
        return responses

    *allowed, refused, standard, _ = within_one_window(run)
    for response in allowed:
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Limit"] == "20"
    error = assert_sandbox_error(refused, 429, "RATE_LIMIT_EXCEEDED", "20 requests per minute")
    assert error["details"]["retry_after"] >= 1 and int(refused.headers["Retry-After"]) >= 1
    assert standard.status_code == 200 and standard.headers["X-RateLimit-Limit"] == "100"
    exc = raised[-1]
    assert exc is not None, "the client should raise ApiError on 429"
    assert exc.status_code == 429 and exc.code == "RATE_LIMIT_EXCEEDED"


@pytest.mark.parametrize("window", [60, 3600])
def test_reset_is_on_the_windows_turn(window):
    now = MINUTE + 3600 * 5 + 123.4
    decision = RateLimiter(window_seconds=window, clock=FakeClock(now)).check("a", "b", 5)
    assert decision.reset % window == 0 and now < decision.reset <= now + window
