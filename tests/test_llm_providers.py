"""The providers through a real server, each against the wire protocol it speaks on
loopback (tests/llm_servers.py): OpenAI-style chat and completions (streamed and not),
Anthropic's Messages API, Ollama's native API; what is retried and what is not (a wrong
answer never); hangs, garbage and 5xx; keys from the environment or a 0600 file that
never show in a log, an answer or the database."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from tests.llm_servers import Reply, Seen, words
from tests.llm_support import ANTHROPIC_KEY, assert_llm_error
from tests.support import free_port

FILE_KEY = "sk-ant-file-" + os.urandom(12).hex()
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def model_key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "anthropic.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(FILE_KEY + "\n")
    return path


@pytest.fixture
def scripted(model_server):
    model_server.reset(lambda seen: ANSWER)
    yield model_server
    model_server.reset()


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def evaluate(admin, model: str, **extra):
    body = {
        "prompt": "example",
        "input": {"user_request": "Capital of France?"},
        "model": model,
        "cache": False,
        "evaluators": [{"type": "icontains", "expected": "paris"}],
        **extra,
    }
    return admin.post("/api/v1/evaluate", json=body)


PROMPT_TEXT = (
    "You are a helpful assistant. Answer the user's request in a friendly and concise way.\n\nUser: Capital of France?"
)


@pytest.mark.parametrize(
    ("model", "wire", "streamed", "model_name"),
    [
        ("model_chat", "openai-chat", False, "scripted-chat"),
        ("model_chat-stream", "openai-chat", True, "scripted-chat"),
        ("model_completions", "openai-completions", False, "scripted-completions"),
        ("model_completions-stream", "openai-completions", True, "scripted-completions"),
        ("model_claude", "anthropic", False, "claude-scripted"),
        ("model_claude-stream", "anthropic", True, "claude-scripted"),
        ("model_ollama", "ollama-chat", False, "scripted-llama:latest"),  # named by /api/tags
        ("model_ollama-stream", "ollama-chat", True, "scripted-llama"),
        ("model_ollama-generate", "ollama-generate", False, "scripted-llama"),
    ],
)
def test_each_wire_protocol(admin, scripted, model, wire, streamed, model_name):
    response = evaluate(admin, model)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == ANSWER and body["passed"] is True and body["model"] == model
    (seen,) = scripted.requests(wire)
    assert seen.body["model"] == model_name and seen.streamed is streamed
    # The tokens the server counted: the words it was sent and the words it answered.
    assert body["tokens_used"] == words(seen.text) + words(ANSWER)
    if wire == "openai-chat":
        assert seen.messages == [{"role": "user", "content": PROMPT_TEXT}]
        assert seen.body.get("stream_options") == ({"include_usage": True} if streamed else None)
    elif wire in ("openai-completions", "ollama-generate"):
        assert seen.body["prompt"] == PROMPT_TEXT
    elif wire == "anthropic":
        assert seen.headers["x-api-key"] == ANTHROPIC_KEY and seen.headers["anthropic-version"] == "2023-06-01"
        assert seen.body["max_tokens"] == (300 if model == "model_claude" else 1024)
        assert seen.messages == [{"role": "user", "content": PROMPT_TEXT}] and "system" not in seen.body
    else:
        assert seen.messages == [{"role": "user", "content": PROMPT_TEXT}] and seen.body["options"] == {}


def test_parameters_in_each_protocols_words(admin, scripted):
    parameters = {"temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "seed": 7, "stop": ["END"]}
    for model in ("model_chat", "model_claude", "model_ollama-stream"):
        assert evaluate(admin, model, parameters=parameters).status_code == 200
    openai, anthropic, ollama = scripted.requests()
    assert {k: openai.body[k] for k in parameters} == parameters
    assert {k: anthropic.body.get(k) for k in ("temperature", "max_tokens", "top_p", "stop_sequences", "seed")} == {
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "seed": None,
    }
    assert ollama.body["options"] == {"temperature": 0.2, "top_p": 0.9, "seed": 7, "num_predict": 50, "stop": ["END"]}


def test_anthropic_takes_system_turns_apart(admin, scripted):
    turns = [{"role": "user", "content": "And Spain?"}]
    assert evaluate(admin, "model_claude", turns=turns).status_code == 200
    (seen,) = scripted.requests("anthropic")
    assert seen.body["system"] == PROMPT_TEXT and seen.messages == [{"role": "user", "content": "And Spain?"}]


# --- failures ----------------------------------------------------------------------------------


def failing_first(times: int, failure: Reply):
    count = {"n": 0}

    def script(seen: Seen) -> Reply | str:
        count["n"] += 1
        return failure if count["n"] <= times else ANSWER

    return script


def fragile(scripted) -> list[Seen]:
    return [s for s in scripted.requests() if s.body.get("model") == "fragile"]


def test_5xx_is_retried_until_it_answers(admin, scripted):
    scripted.reset(failing_first(2, Reply(status=500, body=b'{"error": {"message": "boom"}}')))
    response = evaluate(admin, "model_fragile")
    assert response.status_code == 200 and response.json()["passed"] is True
    assert len(fragile(scripted)) == 3


def test_5xx_past_the_retries_is_a_provider_error(admin, scripted):
    scripted.reset(lambda seen: Reply(status=503, body=b'{"error": {"message": "overloaded here"}}'))
    error = assert_llm_error(evaluate(admin, "model_fragile"), 502, "PROVIDER_ERROR", "3 attempts", "overloaded here")
    assert "model_fragile" in error["message"] and len(fragile(scripted)) == 3


def test_429_waits_as_long_as_retry_after_says(admin, scripted):
    times: list[float] = []

    def script(seen: Seen) -> Reply | str:
        times.append(time.monotonic())
        if len(times) == 1:
            return Reply(status=429, body=b'{"error": {"message": "slow down"}}', headers={"Retry-After": "1"})
        return ANSWER

    scripted.reset(script)
    assert evaluate(admin, "model_fragile").status_code == 200
    assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_a_retry_after_past_the_limit_is_not_waited_for(admin, scripted):
    scripted.reset(lambda seen: Reply(status=429, body=b"{}", headers={"Retry-After": "60"}))
    assert_llm_error(evaluate(admin, "model_fragile"), 502, "PROVIDER_ERROR", "60 s", "llm_retry_max_seconds")
    assert len(fragile(scripted)) == 1


def test_a_wrong_answer_is_never_retried(admin, scripted):
    scripted.reset(lambda seen: "Madrid, obviously.")
    body = evaluate(admin, "model_fragile").json()
    assert body["passed"] is False and body["response"] == "Madrid, obviously."
    assert len(fragile(scripted)) == 1


@pytest.mark.parametrize(
    ("reply", "words_"),
    [
        (
            Reply(status=400, body=b'{"error": {"message": "context too long", "type": "invalid_request_error"}}'),
            ["refused", "400", "context too long"],
        ),
        (Reply(status=404, body=b'{"error": "model \\"fragile\\" not found"}'), ["404", "not found"]),
        (Reply(body=b"<html>502 gateway</html>"), ["not JSON", "502 gateway"]),
        (Reply(body=b'{"unexpected": true}'), ["not with a chat completion"]),
    ],
)
def test_refusals_and_garbage_are_not_retried(admin, scripted, reply, words_):
    scripted.reset(lambda seen: reply)
    assert_llm_error(evaluate(admin, "model_fragile"), 502, "PROVIDER_ERROR", *words_)
    assert len(fragile(scripted)) == 1


def test_a_hanging_server_times_out_after_its_retries(admin, scripted):
    scripted.reset(lambda seen: Reply(hang=True))
    began = time.monotonic()
    error = assert_llm_error(evaluate(admin, "model_fragile"), 504, "TIMEOUT", "1 s", "3 attempts")
    assert 3 <= time.monotonic() - began < 30 and "model_fragile" in error["message"]
    assert len(fragile(scripted)) == 3


def test_a_server_that_is_not_there(admin, scripted):
    port = free_port()
    made = admin.post(
        "/api/v1/models",
        json={
            "model": {
                "name": "Nowhere",
                "provider": "openai-compatible",
                "config": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "x", "max_retries": 1},
            }
        },
    )
    assert made.status_code == 201, made.text
    assert_llm_error(evaluate(admin, made.json()["data"]["id"]), 502, "PROVIDER_ERROR", "ConnectError", "2 attempts")


def test_a_stream_cut_short_is_retried(admin, scripted):
    scripted.reset(failing_first(1, Reply(text=ANSWER, cut_stream=True)))
    body = evaluate(admin, "model_chat-stream").json()
    assert body["response"] == ANSWER and len(scripted.requests("openai-chat")) == 2


def test_anthropic_overloaded_is_retried(admin, scripted):
    overloaded = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    scripted.reset(failing_first(1, Reply(status=529, body=overloaded.encode())))
    assert evaluate(admin, "model_claude").status_code == 200
    assert len(scripted.requests("anthropic")) == 2


def test_a_suite_whose_every_call_fails_fails(admin, scripted):
    scripted.reset(lambda seen: Reply(status=500, body=b"{}"))
    response = admin.post("/api/v1/suite", json={"suite": "example-tests", "model": "model_fragile", "cache": False})
    error = assert_llm_error(response, 502, "PROVIDER_ERROR", "every call of the suite failed")
    run = admin.get(f"/api/v1/suite-runs/{error['details']['run_id']}").json()["run"]
    assert run["status"] == "failed" and "every call" in run["error"]
    assert run["suite_result"]["errors"] == 5


def test_a_failing_case_is_counted_apart(admin, scripted):
    def script(seen: Seen) -> Reply | str:
        if "capital of France" in seen.text:
            return Reply(status=400, body=b'{"error": {"message": "no"}}')
        return "Hello 4 Paris"

    scripted.reset(script)
    result = admin.post(
        "/api/v1/suite", json={"suite": "example-tests", "model": "model_fragile", "trials": 2, "cache": False}
    ).json()
    assert result["status"] == "completed" and result["errors"] == 2
    failed = next(c for c in result["results"] if c["case_id"] == "test-3")
    assert failed["errors"] == 2 and failed["passed"] is False and "no" in failed["error"]
    assert next(c for c in result["results"] if c["case_id"] == "test-2")["passed"] is True


# --- keys ------------------------------------------------------------------------------------


def test_a_key_from_a_0600_file(admin, scripted, model_key_file):
    assert evaluate(admin, "model_keyfile").status_code == 200
    (seen,) = scripted.requests("anthropic")
    assert seen.headers["x-api-key"] == FILE_KEY
    os.chmod(model_key_file, 0o644)
    try:
        assert_llm_error(evaluate(admin, "model_keyfile"), 400, "INVALID_REQUEST", "chmod 600")
    finally:
        os.chmod(model_key_file, 0o600)
    assert len(scripted.requests("anthropic")) == 1


def test_a_missing_key_variable_is_said_before_any_call(admin, scripted):
    made = admin.post(
        "/api/v1/models",
        json={
            "model": {
                "name": "No Key",
                "provider": "anthropic",
                "config": {"base_url": scripted.url, "model": "claude-scripted", "api_key_env": "NOT_SET_ANYWHERE"},
            }
        },
    ).json()["data"]
    assert_llm_error(evaluate(admin, made["id"]), 400, "INVALID_REQUEST", "NOT_SET_ANYWHERE")
    assert scripted.requests() == []


def test_a_refused_key_is_not_echoed(admin, scripted):
    def echo(seen: Seen) -> Reply:
        said = f"Incorrect API key provided: {seen.headers.get('x-api-key')}"
        return Reply(status=401, body=json.dumps({"error": {"type": "authentication_error", "message": said}}).encode())

    scripted.reset(echo)
    response = evaluate(admin, "model_claude")
    error = assert_llm_error(response, 502, "PROVIDER_ERROR", "refused", "Incorrect API key provided: ***")
    assert ANTHROPIC_KEY not in response.text and ANTHROPIC_KEY not in error["message"]
    assert len(scripted.requests("anthropic")) == 1


def test_keys_are_never_logged_answered_or_stored(llm, admin, scripted):
    for model in ("model_claude", "model_claude-stream", "model_keyfile"):
        response = evaluate(admin, model)
        assert ANTHROPIC_KEY not in response.text and FILE_KEY not in response.text
    for path in ("/api/v1/models/model_claude", "/api/v1/models/model_keyfile", "/api/v1/suite-runs"):
        text = admin.get(path).text
        assert ANTHROPIC_KEY not in text and FILE_KEY not in text
    assert ANTHROPIC_KEY not in llm.log() and FILE_KEY not in llm.log()
    for path in llm.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert ANTHROPIC_KEY.encode() not in content and FILE_KEY.encode() not in content, path


# --- embeddings ------------------------------------------------------------------------------


def test_similarity_by_embeddings(admin, scripted):
    expected = "Paris is the capital"
    spec = {"type": "similarity", "expected": expected, "model": "model_embed", "threshold": 0.5}
    body = evaluate(admin, "model_chat", evaluators=[spec]).json()
    (graded,) = body["evaluations"]

    def vector(text: str) -> list[float]:
        return [float(text.lower().count(chr(97 + i))) for i in range(26)]

    a, b = vector(ANSWER), vector(expected)
    cosine = sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )
    assert graded["score"] == pytest.approx(cosine) and graded["passed"] is True
    assert graded["details"]["method"] == "embedding"
    (embedded,) = scripted.requests("openai-embeddings")
    assert embedded.body == {"model": "scripted-embed", "input": [ANSWER, expected]}
