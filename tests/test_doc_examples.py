"""Every request example in the API documents the appliance serves works against a real
server: each body, query, form, curl command and WebSocket message of
docs/reference/<document> is sent as written and must be accepted (2xx; a WebSocket
answers with something other than an error).

Sent as written except what cannot be taken literally, swapped here and only here:
placeholder ids (`sb_123456`, `{snapshot_id}`, ...) become ids of things this test made
first (`DOCUMENTED_ID`, `PATH_PARAMETERS`), placeholder credentials become real ones
(`CREDENTIALS`), an `expires_at` in the past becomes one a year ahead, and the
documents' placeholder paths get a real one (`PLACEHOLDER_VALUES`).

Serving a document means adding a `Document` to `DOCUMENTS` (and taking it off
`NOT_SERVED_YET`): its `requests` name every endpoint its examples go to and how to send
them, so an example added to a document that this test does not know fails here; its
`page` in docs/ must name every endpoint the document declares. An endpoint of a served
document that a later issue serves is `not_served_yet(why)`: its examples are skipped,
saying why (llm-eval-api.md's leaderboard and benchmark, issue 19).

llm-eval-api.md's examples go to an appliance pointed at a local model server in one
setting (`APPLIANCE_DEFAULT_MODEL_URL`), the scripted server of tests/llm_servers.py
standing in for the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.doc_examples import Example, read_examples
from tests.llm_servers import ScriptedModelServer
from tests.sandbox_support import remove_sandbox_containers
from tests.support import HANG_SECONDS, ROOT, ServerProcess, eventually, start_server

REFERENCE = ROOT / "docs" / "reference"

Send = Callable[["Appliance", Example], None]


@dataclass(frozen=True)
class Document:
    name: str
    # The page of docs/ that says what the document leaves open; it names every endpoint.
    page: str
    # The path an example's path is served at (documents may write paths relative to
    # their base URL; curl and WebSocket URLs are always whole).
    served_path: Callable[[str], str]
    # (method, served path without query) -> how to send its examples.
    requests: dict[tuple[str, str], Send]
    # Extra path placeholders of this document -> the id prefix of what they name.
    path_parameters: dict[str, str] = field(default_factory=dict)

    def endpoint(self, example: Example) -> tuple[str, str]:
        return self.served(example.method, example.path, example.absolute)

    def served(self, method: str, path: str, absolute: bool) -> tuple[str, str]:
        path = path.partition("?")[0]
        return method, path if absolute else self.served_path(path)


# --- what cannot be taken literally --------------------------------------------------------

# A documented id: a prefix the appliance uses and a made-up tail.
DOCUMENTED_ID = re.compile(r"^(sb|snap|alert|eval|exec|key)_[0-9a-z_]+$")
PATH_PARAMETERS = {
    "sandbox_id": "sb",
    "snapshot_id": "snap",
    "alert_id": "alert",
    "eval_id": "eval",
    "key_id": "key",
}
CREDENTIALS = ("your-api-key-here", "your-api-key", "your-jwt-token")
# "/path/to/destination": where an upload goes, which must be under the sandbox's /sandbox.
PLACEHOLDER_VALUES = {"/path/to/destination": "/sandbox/path/to/destination"}
UPLOADED = b"print('uploaded by the documentation example')\n"


class Appliance:
    """The server the examples go to, and what they refer to, made on first use."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = server.admin()
        self.made: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def ok(self, response: httpx.Response) -> dict[str, Any]:
        assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def once(self, name: str, make: Callable[[], str]) -> str:
        if name not in self.made:
            self.made[name] = make()
        return self.made[name]

    def id_for(self, prefix: str, example: Example) -> str:
        if prefix == "alert":
            # Acknowledging takes an active alert; resolving one that may be acknowledged already.
            return self.open_alert("active" if example.path.endswith("/acknowledge") else "active,acknowledged")
        makers: dict[str, Callable[[], str]] = {
            "sb": self.sandbox,
            "snap": self.snapshot,
            "eval": lambda: self.ok(self.http.post("/api/eval", json={"code": "print(1)"}))["eval_id"],
            "exec": lambda: self.ok(self.http.post("/api/execute", json={"language": "python", "code": "print(1)"}))[
                "execution_id"
            ],
            "key": lambda: self.ok(self.http.post("/auth/api-keys", json={"name": "doc-examples"}))["key_id"],
            "exp": self.experiment,
        }
        if prefix not in makers:
            pytest.fail(f"{example.describe()}: this test cannot make a {prefix}_ id; teach Appliance.id_for")
        return self.once(prefix, makers[prefix])

    def sandbox(self) -> str:
        sandbox_id: str = self.ok(self.http.post("/api/sandboxes", json={"name": "doc-examples", "runtime": "python"}))[
            "sandbox_id"
        ]
        eventually(
            lambda: self.ok(self.http.get(f"/api/sandboxes/{sandbox_id}"))["status"] == "running",
            message=f"sandbox {sandbox_id} running",
        )
        return sandbox_id

    def experiment(self) -> str:
        body = {"experiment": {"name": "doc-examples", "config": {"type": "external"}}}
        experiment_id: str = self.ok(self.http.post("/api/v1/experiments", json=body))["data"]["id"]
        return experiment_id

    def snapshot(self) -> str:
        sandbox_id = self.once("sb", self.sandbox)
        snapshots = f"/api/sandboxes/{sandbox_id}/snapshots"
        snapshot_id: str = self.ok(self.http.post(snapshots, json={"name": "doc-examples"}))["snapshot_id"]

        def completed() -> bool:
            listed = self.ok(self.http.get(snapshots))["snapshots"]
            return any(s["snapshot_id"] == snapshot_id and s["status"] == "completed" for s in listed)

        eventually(completed, message=f"snapshot {snapshot_id} completed")
        return snapshot_id

    def open_alert(self, statuses: str) -> str:
        def found() -> str | None:
            for status in statuses.split(","):
                alerts = self.ok(self.http.get("/api/alerts", params={"status": status}))["alerts"]
                if alerts:
                    return str(alerts[0]["alert_id"])
            return None

        alert_id: str = eventually(found, message=f"an alert that is {statuses} (the server's CPU rule opens one)")
        return alert_id

    def credential(self, placeholder: str) -> str:
        if placeholder == "your-jwt-token":
            return self.once("jwt", lambda: self.ok(self.http.post("/api/auth/token"))["access_token"])
        return self.server.admin_key

    # --- swapping ---------------------------------------------------------------------------

    def concrete(self, document: Document, example: Example) -> Example:
        """The example with everything that cannot be taken literally swapped."""
        path = re.sub(
            r"\{(\w+)\}|(?<=/):(\w+)",
            lambda m: self.path_value(document, example, m.group(1) or m.group(2)),
            example.path,
        )
        headers = dict(example.headers)
        for name, value in headers.items():
            for placeholder in CREDENTIALS:
                if placeholder in value:
                    headers[name] = value.replace(placeholder, self.credential(placeholder))
                    break
        return replace(
            example,
            path=path,
            body=self.swap(example, example.body),
            form={name: self.swap(example, value) for name, value in example.form.items()},
            headers=headers,
        )

    def path_value(self, document: Document, example: Example, name: str) -> str:
        prefix = {**PATH_PARAMETERS, **document.path_parameters}.get(name)
        if prefix is None:
            pytest.fail(f"{example.describe()}: no id for the path placeholder {name!r}; add it to PATH_PARAMETERS")
        return self.id_for(prefix, example)

    def swap(self, example: Example, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.swap(example, v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.swap(example, v, key) for v in value]
        if not isinstance(value, str):
            return value
        if key == "expires_at" and datetime.fromisoformat(value) < datetime.now(UTC):
            return (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        documented_id = DOCUMENTED_ID.match(value)
        if documented_id:
            return self.id_for(documented_id.group(1), example)
        return PLACEHOLDER_VALUES.get(value, value)


# --- how examples are sent -----------------------------------------------------------------


def send(appliance: Appliance, document: Document, example: Example) -> httpx.Response | None:
    """Send one example (swapped) and check it was accepted; the HTTP response, if any."""
    sent = appliance.concrete(document, example)
    path = sent.path if sent.absolute else document.served_path(sent.path)
    if sent.method == "WS":
        url = f"{appliance.server.ws_url}{path}?api_key={appliance.server.admin_key}"
        with connect(url, open_timeout=HANG_SECONDS) as socket:
            socket.send(json.dumps(sent.body))
            answer = json.loads(socket.recv(HANG_SECONDS))
        assert answer.get("type") != "error", f"{example.describe()}: sent {sent.body}, got {answer}"
        return None
    headers = dict(sent.headers)
    if not {"x-api-key", "authorization"} & {name.lower() for name in headers}:
        headers["X-API-Key"] = appliance.server.admin_key
    parts: dict[str, Any] = {"headers": headers}
    if sent.form or sent.files:
        parts["data"] = sent.form
        parts["files"] = {name: (filename or "uploaded_file.py", UPLOADED) for name, filename in sent.files.items()}
    elif sent.body is not None:
        parts["json"] = sent.body
    with httpx.Client(base_url=appliance.server.url, timeout=HANG_SECONDS) as client:
        response = client.request(sent.method, path, **parts)
    assert response.is_success, (
        f"{example.describe()}: {sent.method} {path} with {sent.body or sent.form} -> "
        f"{response.status_code} {response.text}"
    )
    return response


def document_of(example: Example) -> Document:
    return next(d for d in DOCUMENTS if d.name == example.document)


def as_written(appliance: Appliance, example: Example) -> None:
    send(appliance, document_of(example), example)


def creates_a_sandbox(appliance: Appliance, example: Example) -> None:
    """As written; the sandbox it made is deleted at once (two cores: no idle sandboxes)."""
    response = send(appliance, document_of(example), example)
    assert response is not None
    appliance.ok(appliance.http.delete(f"/api/sandboxes/{response.json()['sandbox_id']}", params={"force": "true"}))


def with_the_body_of(method: str, path: str) -> Send:
    """A curl that shows only how to authenticate (no method, no body, so a GET that
    the document serves only as `method`): its headers on the document's own example of
    `method path`, so the credential it shows is what gets the request in."""

    def send_headers(appliance: Appliance, example: Example) -> None:
        document = document_of(example)
        bodies = [e for e in READINGS[document.name].examples if document.endpoint(e) == (method, path)]
        assert bodies, f"{example.describe()}: {document.name} has no example of {method} {path} any more"
        send(appliance, document, replace(bodies[0], headers=example.headers, line=example.line))

    return send_headers


def not_a_request(why: str) -> Send:
    def nothing_to_send(appliance: Appliance, example: Example) -> None:
        pass

    nothing_to_send.__doc__ = why  # what the document shows there, which no client sends
    return nothing_to_send


def not_served_yet(why: str) -> Send:
    """An endpoint of a served document that a later issue serves: skipped, saying so
    (its example is read and known here, so it is checked the day its route comes)."""

    def skipped(appliance: Appliance, example: Example) -> None:
        pytest.skip(f"{example.describe()}: {why}")

    return skipped


def with_a_served_type(appliance: Appliance, example: Example) -> None:
    """experiments-api.md's create example is an experiment of type `ensemble`, which comes
    with the LLM issues: as written it is refused naming config.type and the types served;
    with `config` of a served type (`external`) and the rest as written, it is created."""
    document = document_of(example)
    with httpx.Client(base_url=appliance.server.url, timeout=HANG_SECONDS) as client:
        refused = client.post(example.path, json=example.body, headers={"X-API-Key": appliance.server.admin_key})
    assert refused.status_code == 422 and "config.type" in refused.json()["error"]["details"], refused.text
    assert "code" in refused.json()["error"]["message"], refused.text
    body = {"experiment": {**example.body["experiment"], "config": {"type": "external"}}}
    response = send(appliance, document, replace(example, body=body))
    assert response is not None and response.status_code == 201
    created = response.json()["data"]
    assert (created["name"], created["tags"]) == (body["experiment"]["name"], body["experiment"]["tags"])


def with_a_recent_timestamp(appliance: Appliance, example: Example) -> None:
    """experiments-api.md's event is stamped 2024-01-15, older than an event may be
    (telemetry_max_past_seconds, a year): as written it is accepted as a request (202) and
    the event rejected for its timestamp; stamped now, the same event is stored."""
    document = document_of(example)
    response = send(appliance, document, example)
    assert response is not None and response.status_code == 202
    answer = response.json()["data"]
    assert answer["accepted"] == 0 and [r["field"] for r in answer["rejections"]] == ["timestamp"], answer
    now = datetime.now(UTC).isoformat()
    body = {"events": [{**event, "timestamp": now} for event in example.body["events"]]}
    response = send(appliance, document, replace(example, body=body))
    assert response is not None and response.json()["data"]["accepted"] == len(body["events"]), response.text


def with_a_real_cursor(appliance: Appliance, example: Example) -> None:
    """The document's cursor (`eyJpZCI6MTIzfQ`) is a placeholder: a cursor is signed by the
    appliance that issued it. Sent with a real one, from a first page of one item."""
    for _ in range(2):
        appliance.experiment()
    first = appliance.ok(appliance.http.get("/api/v1/experiments", params={"per_page": 1}))
    cursor = first["meta"]["next_cursor"]
    assert cursor, first
    path = re.sub(r"cursor=[^&]*", f"cursor={cursor}", example.path)
    response = send(appliance, document_of(example), replace(example, path=path))
    assert response is not None and response.json()["meta"]["page"] is None


# llm-eval-api.md's benchmarks, leaderboard and prompt optimisation (issue 19).
LLM_EVAL_LATER = not_served_yet("not served yet: the leaderboard, benchmarks and optimisation come with issue 19")


def report_runs(appliance: Appliance, experiment_id: str, scores: dict[str, list[float]]) -> None:
    """Completed runs reported from outside: one per score, its hyperparameter `model`
    the group the score is listed under, its metric `accuracy` the score."""
    for model, values in scores.items():
        for value in values:
            created = appliance.http.post(
                f"/api/v1/experiments/{experiment_id}/runs", json={"run": {"hyperparameters": {"model": model}}}
            )
            run_id = appliance.ok(created)["data"]["id"]
            appliance.ok(
                appliance.http.post(
                    f"/api/v1/runs/{run_id}/metrics", json={"metrics": [{"metrics": {"accuracy": value}}]}
                )
            )
            appliance.ok(appliance.http.post(f"/api/v1/runs/{run_id}/end", json={"status": "completed"}))


def on_an_experiment_with_its_groups(appliance: Appliance, example: Example) -> None:
    """The test example compares the groups model_a and model_b of exp_abc123 on accuracy
    and names no group_field: sent for an experiment whose runs carry those groups as
    their hyperparameter `model`, which the appliance then takes as the group field."""
    experiment_id = appliance.experiment()
    report_runs(appliance, experiment_id, {"model_a": [0.89, 0.91, 0.88, 0.90], "model_b": [0.82, 0.80, 0.83, 0.81]})
    body = {"test": {**example.body["test"], "experiment_id": experiment_id}}
    response = send(appliance, document_of(example), replace(example, body=body))
    assert response is not None and response.status_code == 201
    result = response.json()["data"]
    assert (result["experiment_id"], result["group_field"]) == (experiment_id, "hyperparameters.model")


def of_two_experiments_with_runs(appliance: Appliance, example: Example) -> None:
    """The comparison example names exp_1 and exp_2: sent for two experiments with
    completed runs; the answer is the LaTeX document."""
    ids = []
    for scores in ([0.80, 0.82, 0.81], [0.90, 0.93, 0.91]):
        experiment_id = appliance.experiment()
        report_runs(appliance, experiment_id, {"model": scores})
        ids.append(experiment_id)
    response = send(appliance, document_of(example), replace(example, body={**example.body, "experiment_ids": ids}))
    assert response is not None and "\\begin{document}" in response.text and "\\toprule" in response.text


def below_api(path: str) -> str:
    """sandbox-api.md's endpoint lines are relative to its base URL `.../api`; API keys
    are written (and served) at `/auth/api-keys`."""
    return path if path.startswith(("/api/", "/auth/", "/ws/")) else f"/api{path}"


DOCUMENTS = [
    Document(
        "platform-api.md",
        page="api.md",
        served_path=lambda path: path,
        requests={
            ("GET", "/api/eval"): with_the_body_of("POST", "/api/eval"),
            ("POST", "/api/eval"): as_written,
            ("POST", "/api/eval-batch"): as_written,
            ("GET", "/api/evaluations"): as_written,
            ("WS", "/ws"): not_a_request("'Message Format' of /ws is the status_update event the server sends"),
        },
    ),
    Document(
        "sandbox-api.md",
        page="sandbox-api.md",
        served_path=below_api,
        requests={
            ("POST", "/auth/api-keys"): as_written,
            ("POST", "/api/execute"): as_written,
            ("POST", "/api/sandboxes"): creates_a_sandbox,
            ("PUT", "/api/sandboxes/{sandbox_id}"): as_written,
            ("POST", "/api/files/upload"): as_written,
            ("POST", "/api/sandboxes/{sandbox_id}/snapshots"): as_written,
            ("POST", "/api/snapshots/{snapshot_id}/restore"): as_written,
            ("POST", "/api/alerts/{alert_id}/acknowledge"): as_written,
            ("POST", "/api/alerts/{alert_id}/resolve"): as_written,
            ("WS", "/ws/execute"): as_written,
            ("WS", "/ws/monitor"): as_written,
        },
    ),
    Document(
        "experiments-api.md",
        page="experiments-api.md",
        served_path=lambda path: path,
        requests={
            ("POST", "/api/v1/experiments"): with_a_served_type,
            ("PATCH", "/api/v1/experiments/:id"): as_written,
            ("POST", "/api/v1/experiments/:id/clone"): as_written,
            ("GET", "/api/v1/experiments"): with_a_real_cursor,
            ("POST", "/api/v1/models"): as_written,
            ("POST", "/api/v1/telemetry/events"): with_a_recent_timestamp,
            ("POST", "/api/v1/telemetry/export"): as_written,
            ("POST", "/api/v1/statistical-results"): on_an_experiment_with_its_groups,
            ("POST", "/api/v1/experiments/:id/export"): as_written,
            ("POST", "/api/v1/export/comparison"): of_two_experiments_with_runs,
        },
        path_parameters={"id": "exp"},
    ),
    Document(
        # Against a fresh install pointed at a local model server (the scripted one, with
        # APPLIANCE_DEFAULT_MODEL_URL): the document's curl examples send no key, the
        # appliance asks one (docs/llm-eval-api.md), so the admin key is added as for the
        # other documents' examples that show none.
        "llm-eval-api.md",
        page="llm-eval-api.md",
        served_path=lambda path: path,
        requests={
            ("POST", "/api/v1/evaluate"): as_written,
            ("POST", "/api/v1/suite"): as_written,
            ("GET", "/api/v1/leaderboard"): LLM_EVAL_LATER,
            ("POST", "/api/v1/benchmark"): LLM_EVAL_LATER,
            ("POST", "/api/v1/optimize"): as_written,
        },
    ),
]
# Documents in docs/reference/ that no router serves yet; their issues move them to DOCUMENTS.
NOT_SERVED_YET: set[str] = set()

READINGS = {document.name: read_examples(REFERENCE / document.name) for document in DOCUMENTS}
CASES = [
    pytest.param(document, example, id=f"{document.name}:{example.line}:{example.method} {example.path}")
    for document in DOCUMENTS
    for example in READINGS[document.name].examples
]

SERVER_ENV = {
    **{
        f"APPLIANCE_RATE_LIMIT_{bucket}": "100000"
        for bucket in ("ANONYMOUS", "AUTHENTICATED", "BATCH", "EXECUTE", "UPLOAD", "LLM")
    },
    # An alert to acknowledge and resolve: CPU is always at or above 0 %.
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.3",
    "APPLIANCE_ALERT_CPU_PERCENT": "0",
    "APPLIANCE_ALERT_CPU_FOR_SECONDS": "0",
}


@pytest.fixture(scope="module")
def appliance(runtime_images, tmp_path_factory, docker_client):
    # The local model server llm-eval-api.md's examples run against (a test double: no
    # model runs here); it answers as its default script does, the judge included.
    model_server = ScriptedModelServer().start()
    env = {**SERVER_ENV, "APPLIANCE_DEFAULT_MODEL_URL": f"{model_server.url}/v1"}
    server = start_server(tmp_path_factory.mktemp("doc-examples"), env=env)
    made = Appliance(server)
    yield made
    made.close()
    server.stop()
    model_server.stop()
    remove_sandbox_containers(docker_client, server.data_dir)


def test_every_reference_document_is_served_here_or_named_as_not_yet():
    documents = {path.name for path in REFERENCE.glob("*.md")} - {"README.md"}
    assert documents == {d.name for d in DOCUMENTS} | NOT_SERVED_YET


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_every_request_example_is_one_this_test_can_send(document):
    reading = READINGS[document.name]
    assert not reading.problems, "examples this test cannot read:\n" + "\n".join(reading.problems)
    found = {document.endpoint(example) for example in reading.examples}
    unknown = sorted(found - set(document.requests))
    assert not unknown, f"{document.name} has request examples for {unknown}: add each to its `requests`"
    gone = sorted(set(document.requests) - found)
    assert not gone, f"{document.name} has no request examples for {gone} any more: take them off `requests`"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_the_page_beside_the_document_names_every_endpoint(document):
    """docs/ stands on its own: each endpoint is on the document's page, as `METHOD /path`
    (a WebSocket as its path), placeholders' names aside."""

    def unnamed(text: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", text)

    page = unnamed((ROOT / "docs" / document.page).read_text())
    missing = []
    for method, path, absolute in READINGS[document.name].endpoints:
        method, served = document.served(method, path, absolute)
        named = f"`{unnamed(served)}" if method == "WS" else f"`{method} {unnamed(served)}"
        if named not in page:
            missing.append(f"{method} {served}")
    assert not missing, f"docs/{document.page} does not name {missing}"


@pytest.mark.parametrize(("document", "example"), CASES)
def test_request_example_is_accepted(appliance, document, example):
    how = document.requests.get(document.endpoint(example))
    if how is None:
        pytest.fail(f"{example.describe()}: no way to send it; add {document.endpoint(example)} to `requests`")
    how(appliance, example)
