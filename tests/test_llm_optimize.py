"""POST /api/v1/optimize through a real server, against a scripted model server on
loopback that speaks OpenAI's wire protocol both as the model under test and as the
judge: the judge proposes templates, the model obeys an instruction a template may
carry, and the suite's graders score what it answers. The optimised score must be
the suite's own score of the optimised template, computed again through the suite API."""

from __future__ import annotations

import json
import re

import pytest

from appliance.client import ApplianceClient
from tests.llm_servers import Reply, Seen
from tests.llm_support import assert_llm_error

OPTIMIZER_MARK = "You improve prompt templates"
ORIGINAL = "Say {{.word}}."
WORSE = "Say {{.word}}. Reply with nothing but ok."
BETTER = "Say {{.word}}. Begin with ANSWER: and then the word."
WORDS = ["apple", "river", "cloud", "stone"]


@pytest.fixture(scope="module")
def optimised_suite(llm):
    with llm.admin() as admin:
        made = admin.post("/api/v1/prompts", json={"name": "sayer", "template": ORIGINAL})
        assert made.status_code == 201, made.text
        suite = {
            "name": "sayer-tests",
            "prompt": "sayer",
            "evaluators": [{"type": "starts_with", "expected": "ANSWER:"}],
            "cases": [
                {"id": word, "input": {"word": word}, "evaluators": [{"type": "icontains", "expected": "{{.word}}"}]}
                for word in WORDS
            ],
        }
        made = admin.post("/api/v1/suites", json=suite)
        assert made.status_code == 201, made.text
    return "sayer-tests"


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def obedient_model(proposals: list[str]):
    """A model that says the word it is asked to, and obeys the two instructions the
    templates above may add; a judge (the entry `model_judge`) that answers `proposals`
    in turn."""
    asked = {"judge": 0}

    def script(seen: Seen) -> Reply | str:
        if seen.body.get("model") == "judge":
            assert OPTIMIZER_MARK in seen.text
            answer = proposals[min(asked["judge"], len(proposals) - 1)]
            asked["judge"] += 1
            return answer
        text = seen.text
        if "nothing but ok" in text:
            return "ok"
        word = re.search(r"Say (\w+)\.", text)
        said = word.group(1) if word else "?"
        return f"ANSWER: {said}" if "Begin with ANSWER:" in text else said

    return script


def proposal(template: str, *suggestions: str) -> str:
    return (
        "Here is my proposal:\n```json\n"
        + json.dumps({"template": template, "suggestions": list(suggestions)})
        + "\n```"
    )


def test_optimisation_raises_the_suites_score_to_its_own_score_of_the_kept_template(admin, scripted, optimised_suite):
    scripted.reset(
        obedient_model(
            [
                proposal(WORSE, "Ask for a short reply"),
                "I would rather not.",  # no template: a candidate not scored
                proposal(BETTER, "Add an explicit output format"),
            ]
        )
    )
    response = admin.post(
        "/api/v1/optimize",
        json={"prompt": "sayer", "iterations": 5, "strategy": "iterative", "judge_model": "model_judge"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # The document's members.
    assert body["original_score"] == pytest.approx(0.5)  # icontains passes, starts_with does not
    assert body["optimized_score"] == pytest.approx(1.0)
    assert body["iterations"] == 3  # the third reached 1: no fourth
    assert body["suggestions"] == ["Add an explicit output format"]
    assert body["optimized_template"] == BETTER
    assert (body["suite"], body["judge_model"], body["improved"]) == ("sayer-tests", "model_judge", True)

    tried = body["candidates"]
    assert [(c["iteration"], c["score"], c["kept"]) for c in tried] == [
        (0, 0.5, True),
        (1, 0.0, False),
        (2, None, False),
        (3, 1.0, True),
    ]
    assert "holds no template" in tried[2]["error"] and "rather not" in tried[2]["error"]
    assert tried[1]["template"] == WORSE and tried[1]["suggestions"] == ["Ask for a short reply"]

    # The judge saw the failing cases: the output and the failing grader of each.
    judged = [s for s in scripted.seen if s.body.get("model") == "judge"]
    assert len(judged) == 3
    first = judged[0].text
    assert ORIGINAL in first and "{{.word}}" in first
    assert all(f'<case id="{w}">' in first for w in WORDS) and "starts_with" in first
    # An iteration after one that improved nothing shows what was tried and how it scored.
    assert WORSE in judged[1].text and "0.0000" in judged[1].text

    # Each candidate ran as a suite run, kept and readable.
    for candidate in (tried[0], tried[1], tried[3]):
        run = admin.get(f"/api/v1/suite-runs/{candidate['run_id']}", params={"limit": 0}).json()["run"]
        assert run["status"] == "completed" and run["suite"] == "sayer-tests"
        assert run["suite_result"]["avg_score"] == pytest.approx(candidate["score"])
    assert body["optimized_run_id"] == tried[3]["run_id"] and body["original_run_id"] == tried[0]["run_id"]

    # Independently: the optimised template saved as the prompt's next version, and the
    # suite run through the suite API on it, scores what the optimiser reported.
    saved = admin.put("/api/v1/prompts/sayer", json={"template": body["optimized_template"]})
    assert saved.status_code == 201, saved.text
    version = saved.json()["version"]
    again = admin.post("/api/v1/suite", json={"suite": "sayer-tests", "prompt_version": version, "cache": False})
    assert again.status_code == 200, again.text
    assert again.json()["avg_score"] == pytest.approx(body["optimized_score"])
    before = admin.post("/api/v1/suite", json={"suite": "sayer-tests", "prompt_version": "1.0", "cache": False})
    assert before.json()["avg_score"] == pytest.approx(body["original_score"])


def test_nothing_better_keeps_the_original_and_asks_the_judge_once_per_candidate(admin, scripted, optimised_suite):
    scripted.reset(obedient_model([proposal(WORSE, "Be brief"), proposal(ORIGINAL, "No change")]))
    body = admin.post(
        "/api/v1/optimize",
        json={
            "prompt": "sayer",
            "version": "1.0",
            "iterations": 1,
            "candidates": 2,
            "judge_model": "model_judge",
            "cache": False,
        },
    ).json()
    assert body["original_score"] == pytest.approx(0.5) and body["optimized_score"] == pytest.approx(0.5)
    assert body["optimized_template"] == ORIGINAL and body["suggestions"] == [] and body["improved"] is False
    assert body["iterations"] == 1
    worse, same = body["candidates"][1:]
    assert worse["score"] == 0.0 and same["score"] is None and "already tried" in same["error"]
    assert len([s for s in scripted.seen if s.body.get("model") == "judge"]) == 2


def test_the_client_optimizes(llm, scripted, optimised_suite):
    scripted.reset(obedient_model([proposal(BETTER, "Add an explicit output format")]))
    with ApplianceClient(llm.url, api_key=llm.admin_key) as client:
        body = client.optimize(
            "sayer", iterations=2, suite="sayer-tests", judge_model="model_judge", version="1.0", cache=False
        )
    assert body["optimized_score"] == pytest.approx(1.0) and body["iterations"] == 1


def test_bad_requests_are_refused_before_any_model_call(admin, scripted, optimised_suite):
    runs = admin.get("/api/v1/suite-runs", params={"limit": 1}).json()["total"]
    cases = [
        ({"iterations": 3}, 400, "INVALID_REQUEST", "prompt"),
        ({"prompt": "nope"}, 404, "NOT_FOUND", "nope"),
        ({"prompt": "sayer", "iterations": 0}, 400, "INVALID_REQUEST", "iterations"),
        ({"prompt": "sayer", "iterations": 11}, 400, "INVALID_REQUEST", "from 1 to 10"),
        ({"prompt": "sayer", "strategy": "genetic"}, 400, "INVALID_REQUEST", "iterative"),
        ({"prompt": "sayer", "candidates": 9}, 400, "INVALID_REQUEST", "candidates"),
        ({"prompt": "sayer", "judge_model": "model_nowhere"}, 404, "NOT_FOUND", "model_nowhere"),
        ({"prompt": "sayer", "suite": "no-such-suite"}, 404, "NOT_FOUND", "no-such-suite"),
        ({"prompt": "sayer", "cases": ["pear"]}, 400, "INVALID_REQUEST", "pear"),
        ({"prompt": "sayer", "colour": "blue"}, 400, "INVALID_REQUEST", "colour"),
    ]
    for body, status, code, word in cases:
        assert_llm_error(admin.post("/api/v1/optimize", json=body), status, code, word)
    admin.post("/api/v1/prompts", json={"name": "lonely", "template": "Hi {{.who}}"})
    assert_llm_error(
        admin.post("/api/v1/optimize", json={"prompt": "lonely"}), 400, "INVALID_REQUEST", "no suite", "suite"
    )
    chat = {"name": "chatty", "messages": [{"role": "user", "content": "Say {{.word}}."}]}
    assert admin.post("/api/v1/prompts", json=chat).status_code == 201
    assert_llm_error(
        admin.post("/api/v1/optimize", json={"prompt": "chatty", "suite": "sayer-tests"}),
        400,
        "INVALID_REQUEST",
        "chat prompt",
    )
    twin = admin.get("/api/v1/suites/sayer-tests").json()
    twin = {k: twin[k] for k in ("prompt", "evaluators", "cases")}
    assert admin.post("/api/v1/suites", json={**twin, "name": "sayer-twin"}).status_code == 201
    assert_llm_error(
        admin.post("/api/v1/optimize", json={"prompt": "sayer"}), 400, "INVALID_REQUEST", "sayer-tests, sayer-twin"
    )
    assert scripted.seen == []
    assert admin.get("/api/v1/suite-runs", params={"limit": 1}).json()["total"] == runs
