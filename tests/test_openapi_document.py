"""The OpenAPI document: served as committed (docs/openapi.yaml), every error status with
its document's error body, and what it says of credentials and integer bounds holds.

tests/test_openapi_conformance.py runs schemathesis against it; these are the checks that
need no generated traffic."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from appliance.core.paging import MAX_OFFSET
from appliance.http.app_factory import document_surfaces
from appliance.http.dependencies import DEPENDENCIES
from appliance.http.surfaces import Surface, claims
from tests.support import ROOT, assert_sandbox_error
from tests.test_api_errors import assert_error

COMMITTED = ROOT / "docs" / "openapi.yaml"
REGENERATE = "python -m appliance openapi > docs/openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture(scope="module")
def served(server) -> str:
    with server.client() as client:
        response = client.get("/api/openapi.yaml")
    assert response.status_code == 200
    return response.text


def test_the_served_document_is_the_committed_one(served):
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    assert served == committed, (
        f"docs/openapi.yaml is not what the server serves at /api/openapi.yaml: regenerate it with "
        f"`{REGENERATE}` and commit it"
    )


def test_appliance_openapi_prints_the_served_document_without_a_server(served):
    printed = subprocess.run(
        [sys.executable, "-m", "appliance", "openapi"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == served


# The component name of the error body each document's routes answer with; a new
# document served adds its line.
ERROR_BODIES = {
    "platform-api.md": "ErrorBody",
    "sandbox-api.md": "SandboxErrorBody",
    "experiments-api.md": "ExperimentsErrorBody",
    "llm-eval-api.md": "LlmErrorBody",
}


def surface_body(surface: Surface) -> str:
    assert surface.document in ERROR_BODIES, f"add {surface.document}'s error body to ERROR_BODIES"
    return ERROR_BODIES[surface.document]


def surface_of(path: str) -> Surface | None:
    """The document whose path space holds `path` (the longest claim wins)."""
    best: tuple[int, Surface] | None = None
    for surface in document_surfaces(0):
        for space in surface.path_spaces:
            if claims(space, path) and (best is None or len(space) > best[0]):
                best = (len(space), surface)
    return best[1] if best else None


def test_every_error_response_has_its_documents_error_body(served):
    """Each document's own error body (the platform's {error, detail, status_code}, the
    sandbox API's and the experiments API's {"error": {...}}): never Litestar's own
    {status_code, detail, extra}. Which document a path is in: its surface's path spaces."""
    document = yaml.safe_load(served)
    bodies = {surface.document: surface_body(surface) for surface in document_surfaces(0)}
    platform = document["components"]["schemas"]["ErrorBody"]
    sandbox = document["components"]["schemas"]["SandboxErrorBody"]
    assert set(platform["properties"]) == {"error", "detail", "status_code"}
    assert set(sandbox["properties"]) == {"error"}
    wrong = []
    for path, method, operation in operations(document):
        owner = surface_of(path)
        expected = bodies[owner.document] if owner else "ErrorBody"
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != f"#/components/schemas/{expected}":
                wrong.append(f"{method.upper()} {path} {status}: {schema}")
    assert not wrong, "\n".join(wrong)


# What each document answers an invalid request with (the experiments API says 422).
VALIDATION_STATUS = {"experiments-api.md": "422"}
# Operations that look at no credential and count against no rate limit (their security
# is `[{}]`): llm-eval-api.md's health check.
PUBLIC = {("get", "/health")}


def test_every_operation_documents_401_and_429_and_400_where_it_takes_input(served):
    document = yaml.safe_load(served)
    missing = []
    for path, method, operation in operations(document):
        public = (method, path) in PUBLIC
        assert public == (operation.get("security") == [{}]), f"{method.upper()} {path}: {operation.get('security')}"
        needed = set() if public else {"401", "429"}
        owner = surface_of(path)
        invalid = VALIDATION_STATUS.get(owner.document if owner else "", "400")
        if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
            needed.add(invalid)
        if missing_here := needed - set(operation["responses"]):
            missing.append(f"{method.upper()} {path}: {sorted(missing_here)}")
    assert not missing, "\n".join(missing)


def test_no_dependency_is_named_like_a_parameter_or_a_body_field(served):
    """Litestar fills a parameter named like a dependency from the dependency, and calls a
    bad value of a body field named like one a 500 (it blames the dependency)."""
    document = yaml.safe_load(served)
    schemas = document["components"]["schemas"]
    clashes = []
    for path, method, operation in operations(document):
        names = {p["name"] for p in operation.get("parameters", [])}
        for media in operation.get("requestBody", {}).get("content", {}).values():
            schema = media["schema"]
            for option in schema.get("oneOf", [schema]):
                if "$ref" in option:
                    option = schemas[option["$ref"].rsplit("/", 1)[-1]]
                names |= set(option.get("properties", {}))
        if clash := names & set(DEPENDENCIES):
            clashes.append(f"{method.upper()} {path}: {sorted(clash)}")
    assert not clashes, "\n".join(clashes)


def test_the_document_states_the_offset_bound(served):
    document = yaml.safe_load(served)
    for path in ("/api/evaluations", "/api/sandboxes"):
        offset = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "offset")
        assert offset["schema"]["maximum"] == MAX_OFFSET, offset


def test_each_list_documents_its_own_filters_and_sorts(served):
    """experiments-api.md's lists: every `filter[...]` the list takes is a documented
    query parameter, and `sort` names the list's fields (a generated client knows them)."""
    from appliance.core.experiments import EXPERIMENT_LIST

    document = yaml.safe_load(served)
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/experiments"]["get"]["parameters"]}
    assert {f"filter[{f.param}]" for f in EXPERIMENT_LIST.filters} <= set(parameters)
    assert "pending" in parameters["filter[status]"]["description"]
    assert all(field in parameters["sort"]["description"] for field in EXPERIMENT_LIST.sorts)


@pytest.mark.parametrize("offset", [MAX_OFFSET + 1, 742885928866148307586028404736])
def test_an_offset_past_sqlites_integers_is_a_400_in_each_documents_shape(server, offset):
    with server.admin() as client:
        assert_error(client.get("/api/evaluations", params={"status": "completed", "limit": 2, "offset": offset}), 400)
        assert_sandbox_error(client.get("/api/sandboxes", params={"offset": offset}), 400, "VALIDATION_ERROR", "offset")


def test_the_largest_offset_is_an_empty_page(server):
    with server.admin() as client:
        page = client.get("/api/evaluations", params={"offset": MAX_OFFSET})
        assert page.status_code == 200, page.text
        assert page.json()["evaluations"] == [] and page.json()["offset"] == MAX_OFFSET
        sandboxes = client.get("/api/sandboxes", params={"offset": MAX_OFFSET})
        assert sandboxes.status_code == 200, sandboxes.text
        assert sandboxes.json()["sandboxes"] == []


def test_a_non_text_form_field_in_an_upload_is_a_400(server):
    """A part without a filename is a text field; bytes that are not text are refused."""
    files = {"sandbox_id": (None, b"sbx_x"), "file": (None, b"\x89PNG\r\n\x1a\n\xff\xfe")}
    with server.admin() as client:
        assert_sandbox_error(client.post("/api/files/upload", files=files), 400, "VALIDATION_ERROR", "filename")


def test_a_bad_field_named_like_a_service_is_a_400(server):
    with server.admin() as client:
        assert_error(client.post("/api/eval-batch", json={"evaluations": {}}), 400, "evaluations")


def documented_statuses(document: dict, path: str, method: str) -> set[int]:
    return {int(status) for status in document["paths"][path][method]["responses"]}


def test_revoking_a_key_answers_only_documented_statuses(server, served):
    """The one operation the schemathesis run leaves out (it would revoke its own key)."""
    from tests.test_auth import create_key

    document = yaml.safe_load(served)
    documented = documented_statuses(document, "/auth/api-keys/{key_id}", "delete")
    reader = create_key(server, "revoke-reader", "read")
    create_key(server, "revoke-victim", "read")
    with server.admin() as admin, server.client(reader) as reader_client, server.client() as anonymous:
        keys = admin.get("/auth/api-keys").json()["api_keys"]
        victim_id = next(k["key_id"] for k in keys if k["name"] == "revoke-victim" and k["revoked_at"] is None)
        answers = {
            401: anonymous.delete(f"/auth/api-keys/{victim_id}"),
            403: reader_client.delete(f"/auth/api-keys/{victim_id}"),
            404: admin.delete("/auth/api-keys/ak_000000000000"),
            200: admin.delete(f"/auth/api-keys/{victim_id}"),
        }
    codes = {401: "AUTHENTICATION_REQUIRED", 403: "INSUFFICIENT_PERMISSIONS", 404: "RESOURCE_NOT_FOUND"}
    for status, response in answers.items():
        assert status in documented, (status, documented)
        if status in codes:
            assert_sandbox_error(response, status, codes[status])
        else:
            assert response.status_code == 200 and response.json()["status"] == "revoked", response.text


def test_a_full_queue_is_a_documented_503_in_each_documents_shape(fresh_server):
    """The 503 the schemathesis run keeps clear of (any 5xx fails its not_a_server_error)."""
    server = fresh_server(env={"APPLIANCE_MAX_QUEUE_LENGTH": "1", "APPLIANCE_WORKERS": "1"})
    sleeper = {"code": "import time; time.sleep(60)", "language": "python", "timeout": 60}
    with server.admin() as client:
        document = yaml.safe_load(client.get("/api/openapi.yaml").text)
        answers = [client.post("/api/eval", json=sleeper) for _ in range(4)]
        assert [r.status_code for r in answers[:1]] == [200], answers[0].text
        full = next((r for r in answers if r.status_code == 503), None)
        assert full is not None, [r.status_code for r in answers]
        assert_error(full, 503, "queue is full")
        assert_sandbox_error(client.post("/api/execute", json=sleeper), 503, "SERVICE_UNAVAILABLE", "queue is full")
        for path in ("/api/eval", "/api/execute"):
            assert 503 in documented_statuses(document, path, "post")
        for r in answers:
            if r.status_code == 200:
                client.post(f"/api/eval/{r.json()['eval_id']}/kill")
