"""llm-eval-api.md through a real server, against a scripted model server on loopback:
evaluate, suites with trials and pass@k, prompts and suites as versioned YAML,
transcripts, the cache, a server's concurrency limit, the client, and the document's
error shape (the surface itself, keys, rate limits and CORS: test_llm_eval_surface.py)."""

from __future__ import annotations

import math
import time

import pytest

from appliance.client import ApplianceClient
from tests.llm_servers import Reply, Seen, words
from tests.llm_support import assert_llm_error
from tests.support import eventually
from tests.test_auth import create_key

DOC_EVALUATE = {
    "prompt": "example",
    "input": {"user_request": "Hello world"},
    "evaluators": [
        {"type": "contains", "expected": "hello"},
        {"type": "llm_judge", "criteria": "Response should be friendly"},
    ],
}


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def runs_stored(admin) -> int:
    return admin.get("/api/v1/suite-runs", params={"limit": 1}).json()["total"]


# --- evaluate --------------------------------------------------------------------------------


def test_the_documents_evaluate_example(admin, scripted):
    response = admin.post("/api/v1/evaluate", json=DOC_EVALUATE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"passed", "score", "response", "evaluations", "latency_ms", "tokens_used"} <= set(body)
    assert body["response"] == "Hello! How can I help you today?"
    contains, judge = body["evaluations"]
    # contains is case-sensitive (icontains is not): "hello" is not in "Hello! ..."
    assert (contains["type"], contains["passed"], contains["score"]) == ("contains", False, 0.0)
    assert (judge["type"], judge["passed"], judge["score"]) == ("llm_judge", True, 0.9)
    assert judge["message"] == "The response meets the rubric."
    assert body["passed"] is False and body["score"] == pytest.approx(0.45)

    asked = scripted.requests("openai-chat", judge=False)
    assert len(asked) == 1
    sent = asked[0].messages
    assert sent == [
        {
            "role": "user",
            "content": (
                "You are a helpful assistant. Answer the user's request in a friendly and concise way."
                "\n\nUser: Hello world"
            ),
        }
    ]
    assert asked[0].body["model"] == "scripted-model"  # the default model's server named it
    assert body["tokens_used"] == words(asked[0].text) + words(body["response"])
    assert isinstance(body["latency_ms"], int) and body["latency_ms"] >= 0
    judged = scripted.requests("openai-chat", judge=True)[0]
    assert "Response should be friendly" in judged.text and "Hello! How can I help you today?" in judged.text
    assert body["judge_tokens_used"] == words(judged.text) + words(judged_answer(judged))


def judged_answer(seen: Seen) -> str:
    from tests.llm_servers import default_script

    answer = default_script(seen)
    return answer if isinstance(answer, str) else answer.text


def test_latency_is_measured(admin, scripted):
    scripted.reset(lambda seen: Reply(text="Hello there", delay=0.3))
    body = admin.post("/api/v1/evaluate", json={**DOC_EVALUATE, "evaluators": [], "cache": False}).json()
    assert 300 <= body["latency_ms"] < 5000 and body["passed"] is True and body["score"] == 1.0


@pytest.mark.parametrize(
    ("body", "status", "code", "words_"),
    [
        ({"input": {"user_request": "x"}}, 400, "INVALID_REQUEST", ["Missing required field: prompt"]),
        ({"prompt": "example", "input": {}}, 400, "INVALID_REQUEST", ["user_request", "input"]),
        ({"prompt": "nope", "input": {}}, 404, "NOT_FOUND", ["prompt 'nope'"]),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "evaluators": [{"type": "telepathy"}]},
            400,
            "INVALID_REQUEST",
            ["telepathy"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "evaluators": [{"type": "contains"}]},
            400,
            "INVALID_REQUEST",
            ["evaluators[0]", "expected"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "evaluators": [{"type": "contains", "expectd": "a"}]},
            400,
            "INVALID_REQUEST",
            ["expectd"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "evaluators": [{"type": "regex", "expected": "("}]},
            400,
            "INVALID_REQUEST",
            ["does not compile"],
        ),
        (
            {
                "prompt": "example",
                "input": {"user_request": "x"},
                "evaluators": [{"type": "contains", "expected": "{{.missing}}"}],
            },
            400,
            "INVALID_REQUEST",
            ["missing"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "parameters": {"temperature": 9}},
            400,
            "INVALID_REQUEST",
            ["temperature"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "model": "model_nope"},
            404,
            "NOT_FOUND",
            ["model_nope"],
        ),
        (
            {"prompt": "example", "input": {"user_request": "x"}, "model": "model_embed"},
            400,
            "INVALID_REQUEST",
            ["embedding"],
        ),
        ({"prompt": "example", "input": {"user_request": "x"}, "unknown": 1}, 400, "INVALID_REQUEST", ["unknown"]),
        ({"prompt": 5}, 400, "INVALID_REQUEST", ["prompt"]),
    ],
)
def test_a_bad_request_is_said_and_changes_nothing(admin, scripted, body, status, code, words_):
    before = runs_stored(admin)
    assert_llm_error(admin.post("/api/v1/evaluate", json=body), status, code, *words_)
    assert scripted.requests() == [] and runs_stored(admin) == before


def test_the_model_a_request_names(admin, scripted):
    request = {**DOC_EVALUATE, "evaluators": [], "cache": False}
    for reference in ("model_chat", "Scripted Chat"):
        body = admin.post("/api/v1/evaluate", json={**request, "model": reference}).json()
        assert body["model"] == "model_chat", body
    ambiguous = admin.post("/api/v1/evaluate", json={**request, "model": "scripted-chat"})
    assert_llm_error(ambiguous, 400, "INVALID_REQUEST", "model_chat", "model_chat-stream")
    by_provider_name = admin.post("/api/v1/evaluate", json={**request, "model": "scripted-completions"})
    assert_llm_error(by_provider_name, 400, "INVALID_REQUEST", "2 entries")
    assert {s.body["model"] for s in scripted.requests()} == {"scripted-chat"}


# --- prompts and suites ----------------------------------------------------------------------


def test_prompts_and_suites_as_documented(admin):
    prompts = admin.get("/api/v1/prompts").json()
    assert set(prompts) == {"prompts"}
    example = next(p for p in prompts["prompts"] if p["name"] == "example")
    assert example["version"] == "1.0" and example["is_system_prompt"] is True
    shown = admin.get("/api/v1/prompts/example").json()
    assert {"name", "version", "is_system_prompt", "template"} <= set(shown)
    assert "{{.user_request}}" in shown["template"] and shown["variables"] == ["user_request"]
    suites = admin.get("/api/v1/suites").json()
    assert set(suites) == {"suites"}
    listed = next(s for s in suites["suites"] if s["name"] == "example-tests")
    assert (listed["prompt"], listed["case_count"]) == ("example", 5)
    suite = admin.get("/api/v1/suites/example-tests").json()
    assert [c["id"] for c in suite["cases"]] == [f"test-{n}" for n in range(1, 6)]
    assert_llm_error(admin.get("/api/v1/prompts/nope"), 404, "NOT_FOUND", "nope")
    assert_llm_error(admin.get("/api/v1/prompts/example", params={"version": "9"}), 404, "NOT_FOUND", "1.0")


def test_prompts_are_versioned_yaml_files(llm, admin):
    first = {"name": "greeter", "template": "Greet {{.who}}.", "description": "says hello"}
    created = admin.post("/api/v1/prompts", json=first)
    assert created.status_code == 201 and created.json()["version"] == "1.0"
    stored = llm.data_dir / "prompts" / "greeter" / "1.0.yaml"
    assert "Greet {{.who}}." in stored.read_text()
    again = admin.post("/api/v1/prompts", json={**first, "version": "1.0"})
    assert again.status_code == 200  # the same content: nothing new
    clash = admin.post("/api/v1/prompts", json={**first, "version": "1.0", "template": "Hi {{.who}}."})
    assert_llm_error(clash, 409, "CONFLICT", "never rewritten")
    updated = admin.put("/api/v1/prompts/greeter", json={"template": "Hi {{.who}}!", "is_system_prompt": True})
    assert updated.status_code == 201 and updated.json()["version"] == "1.1"
    assert updated.json()["versions"] == ["1.0", "1.1"]
    assert admin.get("/api/v1/prompts/greeter").json()["template"] == "Hi {{.who}}!"
    assert admin.get("/api/v1/prompts/greeter", params={"version": "1.0"}).json()["template"] == "Greet {{.who}}."
    bad = admin.post("/api/v1/prompts", json={"name": "bad", "template": "{{if .x}}y{{end}}"})
    assert_llm_error(bad, 400, "INVALID_REQUEST", "placeholder")
    assert_llm_error(admin.post("/api/v1/prompts", json={"name": "../x", "template": "t"}), 400, "INVALID_REQUEST")
    assert_llm_error(admin.put("/api/v1/prompts/a", json={"name": "b", "template": "t"}), 400, "INVALID_REQUEST")

    dropped = llm.data_dir / "prompts" / "by-hand.yml"
    dropped.write_text("version: 2.0\ntemplate: 'Written by hand about {{.topic}}'\n")
    (llm.data_dir / "prompts" / "broken.yaml").write_text("template: [unclosed\n")
    listed = {p["name"]: p for p in admin.get("/api/v1/prompts").json()["prompts"]}
    assert listed["by-hand"]["version"] == "2.0" and "broken" not in listed
    assert "broken.yaml is left out" in llm.log()


def test_suites_are_checked_when_saved(admin):
    suite = {
        "name": "checked",
        "prompt": "example",
        "cases": [
            {"input": {"user_request": "a"}, "evaluators": [{"type": "contains"}]},
        ],
    }
    error = assert_llm_error(admin.post("/api/v1/suites", json=suite), 400, "INVALID_REQUEST", "expected")
    assert "cases[0].evaluators[0]" in error["details"]["fields"]
    no_prompt = {**suite, "prompt": "nowhere", "cases": [{"input": {}}]}
    assert_llm_error(admin.post("/api/v1/suites", json=no_prompt), 400, "INVALID_REQUEST", "nowhere")
    twice = {**suite, "cases": [{"id": "a", "input": {}}, {"id": "a", "input": {}}]}
    assert_llm_error(admin.post("/api/v1/suites", json=twice), 400, "INVALID_REQUEST", "earlier case")
    made = admin.post("/api/v1/suites", json={**suite, "cases": [{"input": {"user_request": "a"}}]})
    assert made.status_code == 201 and made.json()["case_count"] == 1


# --- suites: trials, pass@k, transcripts -------------------------------------------------------

# Trials a case gets right out of 10: the scripted model answers "right" when its seed
# (the model's seed 100 plus the trial number) is below 100 + this.
RIGHT_OUT_OF_TEN = {"0": 0, "1": 3, "2": 7, "3": 10}


def seeded_script(seen: Seen) -> str:
    case = seen.last_user.removeprefix("Case ")
    return "right" if seen.seed is not None and seen.seed - 100 < RIGHT_OUT_OF_TEN[case] else "wrong"


@pytest.fixture
def counting_suite(admin):
    admin.post("/api/v1/prompts", json={"name": "counting", "template": "Case {{.n}}"})
    suite = {
        "name": "counting",
        "prompt": "counting",
        "cases": [
            {"id": f"case-{n}", "input": {"n": n}, "evaluators": [{"type": "equals", "expected": "right"}]}
            for n in RIGHT_OUT_OF_TEN
        ],
    }
    admin.post("/api/v1/suites", json=suite)
    return "counting"


def by_hand_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("k", [1, 5])
def test_trials_and_pass_at_k_against_hand_computed_values(admin, scripted, counting_suite, k):
    scripted.reset(seeded_script)
    response = admin.post("/api/v1/suite", json={"suite": "counting", "model": "model_priced", "trials": 10, "k": k})
    assert response.status_code == 200, response.text
    result = response.json()
    # pass@1 = c/10; pass@5 = 1 - C(10-c, 5)/C(10, 5): c=3 -> 1 - 21/252, c=7 -> 1 (10-7 < 5)
    expected = {
        1: {"case-0": 0.0, "case-1": 0.3, "case-2": 0.7, "case-3": 1.0},
        5: {"case-0": 0.0, "case-1": 1 - 21 / 252, "case-2": 1.0, "case-3": 1.0},
    }[k]
    hat = {
        1: {"case-0": 0.0, "case-1": 0.3, "case-2": 0.7, "case-3": 1.0},
        5: {"case-0": 0.0, "case-1": 0.0, "case-2": 21 / 252, "case-3": 1.0},
    }[k]
    for case in result["results"]:
        c = RIGHT_OUT_OF_TEN[case["case_id"].removeprefix("case-")]
        assert case["pass_at_k"] == pytest.approx(expected[case["case_id"]])
        assert case["pass_at_k"] == pytest.approx(by_hand_pass_at_k(10, c, k))
        assert case["pass_hat_k"] == pytest.approx(hat[case["case_id"]])
        assert (case["trials"], case["passed_trials"]) == (10, c)
        assert case["passed"] is (c > 5) and case["score"] == pytest.approx(c / 10)
    assert (result["suite"], result["total_cases"], result["passed_cases"], result["failed_cases"]) == (
        "counting",
        4,
        2,
        2,
    )
    assert result["pass_rate"] == 0.5 and result["avg_score"] == pytest.approx(0.5)
    assert result["pass_at_k"] == pytest.approx(sum(expected.values()) / 4, abs=1e-6)
    assert result["k"] == k and result["trials"] == 10

    # Each trial is its own call (seeds 100..109), cached by trial: the second k costs no call.
    seen = scripted.requests("openai-chat")
    assert len(seen) == (40 if k == 1 else 0)
    if k == 1:
        assert sorted({s.seed for s in seen}) == list(range(100, 110))
        assert all(s.body["temperature"] == 0.7 for s in seen)
        tokens = result["tokens_used"]
        assert tokens == sum(words(s.text) + 1 for s in seen)
        assert result["cost"] == pytest.approx(sum(words(s.text) * 0.001 + 1 * 0.002 for s in seen))


def test_k_is_at_most_trials_and_trials_are_capped(admin, counting_suite):
    assert_llm_error(
        admin.post("/api/v1/suite", json={"suite": "counting", "trials": 3, "k": 4}), 400, "INVALID_REQUEST", "k"
    )
    assert_llm_error(
        admin.post("/api/v1/suite", json={"suite": "counting", "trials": 101}), 400, "INVALID_REQUEST", "llm_max_trials"
    )
    assert_llm_error(
        admin.post("/api/v1/suite", json={"trials": 1}), 400, "INVALID_REQUEST", "Missing required field: suite"
    )
    assert_llm_error(admin.post("/api/v1/suite", json={"suite": "nope"}), 404, "NOT_FOUND", "nope")
    assert_llm_error(
        admin.post("/api/v1/suite", json={"suite": "counting", "cases": ["case-9"]}), 400, "INVALID_REQUEST", "case-9"
    )


def test_the_documents_suite_example(admin, scripted):
    response = admin.post("/api/v1/suite", json={"prompt": "example", "suite": "example-tests", "trials": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"suite", "total_cases", "passed_cases", "failed_cases", "pass_rate", "avg_score", "results"} <= set(body)
    assert body["suite"] == "example-tests" and body["total_cases"] == 5
    assert body["passed_cases"] + body["failed_cases"] == 5
    for case in body["results"]:
        assert {"case_id", "passed", "score", "pass_at_k"} <= set(case)
    # "Hello! How can I help you today?" greets back (test-1) and is judged friendly (test-5).
    passed = {c["case_id"] for c in body["results"] if c["passed"]}
    assert passed == {"test-1", "test-5"}


def test_every_case_and_trial_has_its_transcript(llm, admin, scripted, counting_suite):
    scripted.reset(seeded_script)
    result = admin.post(
        "/api/v1/suite", json={"suite": "counting", "model": "model_priced", "trials": 2, "cache": False}
    ).json()
    page = admin.get(f"/api/v1/suite-runs/{result['id']}", params={"limit": 1000}).json()
    run = page["run"]
    assert (run["kind"], run["status"], run["suite"], run["prompt"], run["model"]) == (
        "suite",
        "completed",
        "counting",
        "counting",
        "model_priced",
    )
    assert run["progress"]["done"] == run["progress"]["total"] == 8
    assert run["suite_result"]["results"] == result["results"]
    assert page["total_transcripts"] == 8 and len(page["transcripts"]) == 8
    first = page["transcripts"][0]
    assert (first["case_id"], first["trial"]) == ("case-0", 0)
    (exchange,) = first["exchanges"]
    assert exchange["messages"] == [{"role": "user", "content": "Case 0"}]
    assert exchange["output"] == first["output"] == "wrong"
    assert (exchange["seed"], exchange["temperature"], exchange["cached"]) == (100, 0.7, False)
    assert exchange["tokens_in"] == 2 and exchange["tokens_out"] == 1
    assert exchange["cost"] == pytest.approx(2 * 0.001 + 0.002)
    (grader,) = first["graders"]
    assert (grader["type"], grader["passed"], grader["score"]) == ("equals", False, 0.0)
    assert "Expected 'right'" in grader["message"]
    only = admin.get(f"/api/v1/suite-runs/{result['id']}", params={"case_id": "case-3"}).json()
    assert [t["case_id"] for t in only["transcripts"]] == ["case-3", "case-3"] and only["total_transcripts"] == 2
    listed = admin.get("/api/v1/suite-runs").json()
    assert listed["runs"][0]["id"] == result["id"]

    other = create_key(llm, "llm-other", owner="someone-else")
    with llm.client(other) as client:
        assert_llm_error(client.get(f"/api/v1/suite-runs/{result['id']}"), 404, "NOT_FOUND")
        assert all(r["id"] != result["id"] for r in client.get("/api/v1/suite-runs").json()["runs"])


def test_a_suite_run_followed_without_waiting(admin, scripted, counting_suite):
    scripted.reset(lambda seen: Reply(text="right", delay=0.2))
    started = admin.post(
        "/api/v1/suite", json={"suite": "counting", "model": "model_chat", "trials": 3, "wait": False, "cache": False}
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "running" and body["id"].startswith("srun_") and body["results"] == []
    seen_running = admin.get(f"/api/v1/suite-runs/{body['id']}").json()["run"]
    assert seen_running["status"] == "running" and seen_running["progress"]["total"] == 12

    def finished():
        run = admin.get(f"/api/v1/suite-runs/{body['id']}", params={"limit": 0}).json()["run"]
        return run if run["status"] == "completed" else None

    run = eventually(finished, message="the suite run completed")
    assert run["suite_result"]["passed_cases"] == 4 and run["progress"]["done"] == 12


def test_a_running_suite_can_be_cancelled(admin, scripted, counting_suite):
    scripted.reset(lambda seen: Reply(text="right", delay=2))
    body = admin.post(
        "/api/v1/suite", json={"suite": "counting", "model": "model_chat", "trials": 5, "wait": False, "cache": False}
    ).json()
    cancelled = admin.delete(f"/api/v1/suite-runs/{body['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "failed"
    assert cancelled.json()["error"] == "cancelled"
    assert_llm_error(admin.delete(f"/api/v1/suite-runs/{body['id']}"), 409, "CONFLICT", "failed")


def test_multi_turn_cases_replay_a_dialogue_on_a_chat_prompt(admin, scripted):
    prompt = {"name": "chatty", "messages": [{"role": "system", "content": "You are {{.persona}}."}]}
    assert admin.post("/api/v1/prompts", json=prompt).status_code == 201
    suite = {
        "name": "dialogue",
        "prompt": "chatty",
        "cases": [
            {
                "id": "two-turns",
                "input": {"persona": "a pirate", "thing": "gold"},
                "turns": [
                    {"role": "user", "content": "Hello"},
                    {"role": "user", "content": "Where is the {{.thing}}?"},
                ],
                "evaluators": [{"type": "icontains", "expected": "{{.thing}}"}],
            }
        ],
    }
    assert admin.post("/api/v1/suites", json=suite).status_code == 201
    scripted.reset(lambda seen: f"Arr, answer {len(seen.messages)} about gold")
    result = admin.post("/api/v1/suite", json={"suite": "dialogue", "cache": False}).json()
    assert result["results"][0]["passed"] is True
    first, second = scripted.requests("openai-chat")
    assert first.messages == [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hello"}]
    assert second.messages == [
        *first.messages,
        {"role": "assistant", "content": "Arr, answer 2 about gold"},
        {"role": "user", "content": "Where is the gold?"},
    ]
    transcript = admin.get(f"/api/v1/suite-runs/{result['id']}").json()["transcripts"][0]
    assert len(transcript["exchanges"]) == 2 and transcript["output"] == "Arr, answer 4 about gold"


# --- the cache -------------------------------------------------------------------------------


def test_answers_are_cached_unless_a_request_says_no(admin, scripted):
    request = {**DOC_EVALUATE, "input": {"user_request": f"cache me {time.time()}"}, "evaluators": []}
    first = admin.post("/api/v1/evaluate", json=request).json()
    second = admin.post("/api/v1/evaluate", json=request).json()
    assert len(scripted.requests()) == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["response"] == first["response"] and second["tokens_used"] == first["tokens_used"]
    assert second["latency_ms"] == first["latency_ms"]  # the answer's, when it was given
    other_model = admin.post("/api/v1/evaluate", json={**request, "model": "model_completions"}).json()
    assert other_model["cached"] is False
    uncached = admin.post("/api/v1/evaluate", json={**request, "cache": False}).json()
    assert uncached["cached"] is False and len(scripted.requests()) == 3


def test_trials_are_cached_each_by_its_number(admin, scripted, counting_suite):
    scripted.reset(seeded_script)
    admin.post("/api/v1/suite", json={"suite": "counting", "model": "model_limited", "trials": 3})
    assert len(scripted.requests()) == 12
    admin.post("/api/v1/suite", json={"suite": "counting", "model": "model_limited", "trials": 4})
    assert len(scripted.requests()) == 16  # trials 0-2 from the cache, trial 3 asked


# --- limits ------------------------------------------------------------------------------------


def test_a_servers_concurrency_limit_holds(admin, scripted, counting_suite):
    scripted.reset(lambda seen: Reply(text="right", delay=0.1))
    result = admin.post(
        "/api/v1/suite", json={"suite": "counting", "model": "model_limited", "trials": 4, "cache": False}
    ).json()
    assert result["passed_cases"] == 4
    assert scripted.max_in_flight_of("limited") == 2  # model_limited: max_concurrency 2


def test_the_client_speaks_this_surface(llm, scripted):
    with ApplianceClient(llm.url, api_key=llm.admin_key) as client:
        assert client.llm_health() == {"status": "ok"}
        result = client.evaluate(
            "example", {"user_request": "Hi"}, [{"type": "icontains", "expected": "hello"}], cache=False
        )
        assert result.passed is True and result.evaluations[0].message == "Found expected substring"
        assert any(p.name == "example" for p in client.list_prompts())
        started = client.run_suite("example-tests", wait=False, cache=False)
        seen: list[int] = []
        run = client.wait_for_suite_run(started.id, progress=lambda r: seen.append(r.progress.done), interval=0.1)
        assert run.status == "completed" and seen[-1] == 5


def test_model_calls_show_in_the_models_statistics(admin, scripted):
    """Each call to a model server is a telemetry event (appliance.model.call), and the
    model registry's statistics are computed from those events: a model registered for
    this test has exactly the calls made to it."""
    created = admin.post(
        "/api/v1/models",
        json={
            "model": {
                "name": "Counted Chat",
                "provider": "openai-compatible",
                "type": "llm",
                "config": {"base_url": f"{scripted.url}/v1", "model": "scripted-chat"},
            }
        },
    )
    assert created.status_code == 201, created.text
    model_id = created.json()["data"]["id"]

    def statistics() -> dict:
        response = admin.get(f"/api/v1/models/{model_id}/statistics", params={"period": "1h"})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    assert statistics()["total_requests"] == 0
    scripted.reset(lambda seen: Reply(text="Hello there"))
    for _ in range(3):
        request = {**DOC_EVALUATE, "evaluators": [], "cache": False, "model": model_id}
        response = admin.post("/api/v1/evaluate", json=request)
        assert response.status_code == 200, response.text
    figures = eventually(lambda: statistics()["total_requests"] >= 3 and statistics(), message="the three calls")
    assert figures["total_requests"] == 3 and figures["success_rate"] == 1.0
    assert figures["avg_latency_ms"] >= 0 and figures["total_tokens"] > 0
