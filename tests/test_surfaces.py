"""One router per API document: a path no route matches gets the errors of the document
whose path space holds it (by whole segments), and every operation has a response schema."""

from __future__ import annotations

import httpx
import pytest
import websockets
from litestar import Router

from appliance.http.experiments.router import PATH_SPACES as EXPERIMENTS_SPACES
from appliance.http.llm_eval.router import PATH_SPACES as LLM_EVAL_SPACES
from appliance.http.platform.router import PATH_SPACES as PLATFORM_SPACES
from appliance.http.sandbox.router import PATH_SPACES as SANDBOX_SPACES
from appliance.http.surfaces import Surface, check_disjoint, claims, surface_for
from tests.experiments_support import assert_v1_error
from tests.llm_support import assert_llm_error
from tests.support import assert_sandbox_error

PLATFORM_ERROR_KEYS = {"error", "detail", "status_code"}


def assert_platform_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == PLATFORM_ERROR_KEYS and body["status_code"] == status, body
    assert "x-request-id" not in response.headers
    for word in words:
        assert word.lower() in body["detail"].lower(), body


SANDBOX_SHAPED = [
    ("GET", "/api/sandboxes/x/nope", 404),
    ("GET", "/api/execute/x/y", 404),
    ("POST", "/api/health", 405),
    ("DELETE", "/api/metrics", 405),
    ("GET", "/api/files/nope", 404),
    ("PUT", "/api/alerts/rules", 405),
    ("GET", "/auth/api-keys/k/extra", 404),
    ("GET", "/ws/monitor", 405),  # a WebSocket route asked over plain HTTP
    ("GET", "/ws/execute/x", 404),
]

EXPERIMENTS_SHAPED = [
    ("GET", "/api/v1/models/model_x/nope", 404),
    ("PUT", "/api/v1/models", 405),
    ("POST", "/api/v1/models/model_x", 405),
    ("GET", "/api/v1/session/x", 404),
    ("PATCH", "/api/v1/session", 405),
    ("GET", "/api/v1/sessions/ses_x", 405),
    ("GET", "/api/v1/statistical-results/stat_x/nope", 404),
    ("DELETE", "/api/v1/statistical-results/stat_x", 405),
    ("PUT", "/api/v1/statistical-results", 405),
    ("POST", "/api/v1/experiments/exp_x/statistical-results", 405),
    ("GET", "/api/v1/export/nope", 404),
]

LLM_EVAL_SHAPED = [
    ("POST", "/health", 405),
    ("GET", "/health/x", 404),
    ("GET", "/api/v1/evaluate", 405),
    ("GET", "/api/v1/suite/x", 404),  # /api/v1/suite, /suites and /suite-runs: three spaces
    ("DELETE", "/api/v1/suites", 405),
    ("GET", "/api/v1/prompts/example/versions/x", 404),
    ("PATCH", "/api/v1/suite-runs", 405),
    ("POST", "/api/v1/leaderboard", 405),
    ("GET", "/api/v1/optimize", 405),
    ("GET", "/api/v1/leaderboard/x", 404),
    ("GET", "/api/v1/datasets/x/items/y", 404),
]

PLATFORM_SHAPED = [
    ("GET", "/api/executefoo", 404),  # not /api/execute: whole segments only
    ("GET", "/api/sandboxesx", 404),
    ("GET", "/api/nope", 404),
    ("PUT", "/api/eval", 405),
    ("GET", "/api/eval-status", 404),
    ("DELETE", "/api/queue-status", 405),
    ("GET", "/auth/other", 404),  # only /auth/api-keys is the sandbox document's
    ("GET", "/ws", 405),
    ("GET", "/ws/other", 404),  # under /ws, the platform's
    ("GET", "/nowhere/at/all", 404),  # no document claims it: the platform's shape
    ("GET", "/api/v1/modelsx", 404),  # not /api/v1/models: whole segments only
    ("GET", "/api/v1/nope", 404),  # /api/v1 as a whole is no document's
    ("GET", "/api/v1/suitesx", 404),
    ("GET", "/healthz", 404),
]


@pytest.mark.parametrize("method,path,status", SANDBOX_SHAPED, ids=[f"{m} {p}" for m, p, _ in SANDBOX_SHAPED])
def test_unmatched_path_in_the_sandbox_space_gets_the_sandbox_shape(server, method, path, status):
    code = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}[status]
    with server.admin() as client:
        assert_sandbox_error(client.request(method, path), status, code, path)


@pytest.mark.parametrize("method,path,status", EXPERIMENTS_SHAPED, ids=[f"{m} {p}" for m, p, _ in EXPERIMENTS_SHAPED])
def test_unmatched_path_in_the_experiments_space_gets_its_shape(server, method, path, status):
    code = {404: "not_found", 405: "method_not_allowed"}[status]
    with server.admin() as client:
        assert_v1_error(client.request(method, path), status, code, path)


@pytest.mark.parametrize("method,path,status", LLM_EVAL_SHAPED, ids=[f"{m} {p}" for m, p, _ in LLM_EVAL_SHAPED])
def test_unmatched_path_in_the_llm_eval_space_gets_its_shape(server, method, path, status):
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}[status]
    with server.admin() as client:
        assert_llm_error(client.request(method, path), status, code, path)


@pytest.mark.parametrize("method,path,status", PLATFORM_SHAPED, ids=[f"{m} {p}" for m, p, _ in PLATFORM_SHAPED])
def test_unmatched_path_elsewhere_gets_the_platform_shape(server, method, path, status):
    with server.admin() as client:
        assert_platform_error(client.request(method, path), status, path)


async def test_unknown_websocket_path_is_refused_at_the_handshake(server):
    """A WebSocket handshake has no body to shape: it is refused before it is accepted."""
    for path in ("/ws/monitor/nope", "/ws/nope"):
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"{server.ws_url}{path}?api_key={server.admin_key}"):
                pass


def test_every_operation_has_a_response_schema(server):
    with server.client() as client:
        spec = client.get("/api/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status == "204":  # a 204 has no body to describe
                    continue
                schemas = [media.get("schema") for media in (response.get("content") or {}).values()]
                if not schemas or not all(schemas):
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == []
    assert {"/api/eval", "/api/sandboxes", "/auth/api-keys", "/api/metrics/performance"} <= set(spec["paths"])
    assert {"/api/v1/models", "/api/v1/models/{model_id}/statistics", "/api/v1/session"} <= set(spec["paths"])
    assert {"/health", "/api/v1/evaluate", "/api/v1/suite", "/api/v1/prompts/{name}"} <= set(spec["paths"])


# --- the lookup itself ---------------------------------------------------------------


def test_path_spaces_are_matched_by_whole_segments():
    assert claims("/api/execute", "/api/execute")
    assert claims("/api/execute", "/api/execute/")
    assert claims("/api/execute", "/api/execute/exec_1")
    assert not claims("/api/execute", "/api/executefoo")
    assert not claims("/api/execute", "/api")


def test_the_longest_claim_wins_and_the_default_takes_the_rest():
    platform = Surface("platform-api.md", Router(path="/", route_handlers=[]), PLATFORM_SPACES)
    sandbox = Surface("sandbox-api.md", Router(path="/", route_handlers=[]), SANDBOX_SPACES)
    experiments = Surface("experiments-api.md", Router(path="/", route_handlers=[]), EXPERIMENTS_SPACES)
    llm_eval = Surface("llm-eval-api.md", Router(path="/", route_handlers=[]), LLM_EVAL_SPACES)
    surfaces = [platform, sandbox, experiments, llm_eval]
    assert surface_for(surfaces, platform, "/api/v1/suite-runs/srun_1") is llm_eval
    assert surface_for(surfaces, platform, "/health") is llm_eval
    assert surface_for(surfaces, platform, "/api/health") is sandbox
    assert surface_for(surfaces, platform, "/api/v1/models/model_1") is experiments
    assert surface_for(surfaces, platform, "/api/v1/sessions") is experiments
    assert surface_for(surfaces, platform, "/api/v1/experimentsx") is platform
    check_disjoint(surfaces)
    assert surface_for(surfaces, platform, "/ws/monitor") is sandbox
    assert surface_for(surfaces, platform, "/ws/monitor/x") is sandbox
    assert surface_for(surfaces, platform, "/ws") is platform
    assert surface_for(surfaces, platform, "/ws/monitorx") is platform
    assert surface_for(surfaces, sandbox, "/elsewhere") is sandbox


def test_two_documents_may_not_claim_one_path_space():
    first = Surface("a.md", Router(path="/", route_handlers=[]), ("/api/v1/models",))
    second = Surface("b.md", Router(path="/", route_handlers=[]), ("/api/v1/models/",))
    with pytest.raises(ValueError, match="claimed by a.md and b.md"):
        check_disjoint([first, second])
    check_disjoint([first, Surface("c.md", Router(path="/", route_handlers=[]), ("/api/v1/modelsx",))])
