"""Every grader end to end through POST /api/v1/evaluate and /api/v1/suite, against a
scripted model: the text and JSON graders, similarity, llm_judge (its verdict read
robustly, a clear failure when it cannot be), weights and thresholds, and the graders
whose programs run in the appliance's sandboxes: a HumanEval-style suite with 10 trials
whose pass@1 and pass@5 are the hand-computed values, custom Python graders, and model
code that attacks the sandbox it is graded in."""

from __future__ import annotations

import json
import math

import pytest

from tests.llm_servers import Reply, Seen
from tests.llm_support import assert_llm_error


@pytest.fixture(scope="module")
def llm(runtime_images, llm):
    """The shared appliance, started once the runtime images its code graders run in are there."""
    return llm


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def graded(admin, scripted, output: str, *specs: dict, **extra) -> dict:
    scripted.reset(lambda seen: output if not seen.is_judge else json.dumps({"pass": True, "score": 1}))
    body = {
        "prompt": "example",
        "input": {"user_request": "anything", "answer": "42"},
        "evaluators": list(specs),
        "cache": False,
        **extra,
    }
    response = admin.post("/api/v1/evaluate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- text and JSON graders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "spec", "passed", "score", "message"),
    [
        ("Hello there", {"type": "contains", "expected": "Hello"}, True, 1.0, "Found expected substring"),
        ("Hello there", {"type": "contains", "value": "hello"}, False, 0.0, "not found"),
        ("Hello there", {"type": "icontains", "expected": "HELLO"}, True, 1.0, "Found"),
        ("a b c", {"type": "contains_all", "expected": ["a", "c", "z"]}, False, 2 / 3, "Missing 'z'"),
        ("a b c", {"type": "contains-all", "value": "a, b"}, True, 1.0, "every"),
        ("a b c", {"type": "contains_any", "expected": ["x", "b"]}, True, 1.0, "Found 'b'"),
        ("A B C", {"type": "icontains-any", "value": ["x", "b"]}, True, 1.0, "Found 'b'"),
        ("  42\n", {"type": "equals", "expected": "42"}, True, 1.0, "equals"),
        ('{"a": [1, 2]}', {"type": "equals", "expected": {"a": [1, 2]}}, True, 1.0, "equals the expected value"),
        ("42", {"type": "equals", "expected": "{{.answer}}"}, True, 1.0, "equals"),
        ("order #1234 shipped", {"type": "regex", "expected": r"#\d{4}"}, True, 1.0, "Matched '#1234'"),
        ("no number", {"type": "regex", "expected": r"\d+"}, False, 0.0, "No match"),
        ("\nYes, indeed", {"type": "starts-with", "value": "Yes"}, True, 1.0, "starts with"),
        ("Hello there", {"type": "not-contains", "value": "bye"}, True, 1.0, "not contains"),
        ("Hello there", {"type": "contains", "expected": "Hello", "negate": True}, False, 0.0, "not contains"),
        ('```json\n{"a": 1}\n```', {"type": "is_json"}, True, 1.0, "valid JSON"),
        ("Sure: {'a': 1}", {"type": "is-json"}, False, 0.0, "not valid JSON"),
        (
            'Here you go: {"name": "Ada"} done',
            {"type": "contains_json", "schema": {"required": ["name"]}},
            True,
            1.0,
            "valid under the schema",
        ),
        (
            '{"name": 5}',
            {"type": "json_schema", "schema": {"properties": {"name": {"type": "string"}}}},
            False,
            0.0,
            "$.name: expected string",
        ),
        (
            '{"name": "Ada"}',
            {"type": "json_schema", "expected": {"type": "object", "required": ["name"]}},
            True,
            1.0,
            "matches the schema",
        ),
        (
            "the capital of France is Paris",
            {"type": "similarity", "expected": "Paris is the capital of France"},
            True,
            1.0,
            "token similarity 1.000",
        ),
        (
            "colour",
            {"type": "levenshtein", "value": "color", "threshold": 0.95},
            False,
            10 / 11,
            "character similarity 0.909",
        ),
        ("Paris", {"type": "similar", "value": "London", "threshold": 0.1}, False, 0.0, "below the threshold"),
    ],
)
def test_text_and_json_graders(admin, scripted, output, spec, passed, score, message):
    body = graded(admin, scripted, output, spec)
    (result,) = body["evaluations"]
    assert result["passed"] is passed and result["score"] == pytest.approx(score), result
    assert message in result["message"], result
    assert body["passed"] is passed


def test_weights_and_a_threshold_per_request(admin, scripted):
    specs = [
        {"type": "contains", "expected": "a", "weight": 3},
        {"type": "contains", "expected": "z"},
        {"type": "contains", "expected": "q", "weight": 0},
    ]
    strict = graded(admin, scripted, "abc", *specs)
    assert strict["passed"] is False and strict["score"] == pytest.approx(0.75)
    lenient = graded(admin, scripted, "abc", *specs, threshold=0.7)
    assert lenient["passed"] is True and lenient["score"] == pytest.approx(0.75)


# --- llm_judge ---------------------------------------------------------------------------------


def judged(admin, scripted, verdict: str | Reply, **spec) -> tuple[dict, list[Seen]]:
    scripted.reset(lambda seen: verdict if seen.is_judge else "A kind and complete answer.")
    body = {
        "prompt": "example",
        "input": {"user_request": "hi"},
        "cache": False,
        "evaluators": [{"type": "llm_judge", "criteria": "Is kind", **spec}],
    }
    response = admin.post("/api/v1/evaluate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["evaluations"][0], scripted.requests(judge=True)


def test_the_judge_is_any_configured_model(admin, scripted):
    result, (asked,) = judged(admin, scripted, '{"reason": "Kind.", "score": 0.8, "pass": true}', model="model_judge")
    assert (result["passed"], result["score"], result["message"]) == (True, 0.8, "Kind.")
    assert result["details"]["judge"] == "model_judge" and asked.body["model"] == "judge"
    assert asked.body["temperature"] == 0.0
    assert "<rubric>\nIs kind\n</rubric>" in asked.text and "A kind and complete answer." in asked.text


@pytest.mark.parametrize(
    ("verdict", "passed", "score"),
    [
        ('```json\n{"passed": "yes", "score": "8/10", "reasoning": "warm"}\n```', True, 0.8),
        ("Score: 3/10\nVerdict: FAIL\nIt was curt.", False, 0.3),
        ('{"score": 0.4}', False, 0.4),
        ("Let me think. The tone is kind.\nPASS", True, 1.0),
    ],
)
def test_verdicts_in_many_forms(admin, scripted, verdict, passed, score):
    result, _ = judged(admin, scripted, verdict)
    assert result["passed"] is passed and result["score"] == pytest.approx(score), result


def test_a_judge_threshold_applies(admin, scripted):
    result, _ = judged(admin, scripted, '{"pass": true, "score": 0.6}', threshold=0.7)
    assert result["passed"] is False


def test_an_unreadable_verdict_fails_clearly(admin, scripted):
    result, _ = judged(admin, scripted, "I would rather not say.")
    assert result["passed"] is False and result["score"] == 0.0
    assert "could not be read as a verdict" in result["message"] and "I would rather not say." in result["message"]
    assert result["details"]["unparseable"] is True


def test_a_judge_that_fails_fails_its_grader_only(admin, scripted):
    result, _ = judged(
        admin, scripted, Reply(status=400, body=b'{"error": {"message": "judge says no"}}'), model="model_judge"
    )
    assert result["passed"] is False and "could not grade" in result["message"] and "judge says no" in result["message"]
    assert result["details"]["error"] == "Provider error"


# --- programs in sandboxes ------------------------------------------------------------------

PROBLEMS = {
    "add": (
        'def add(a, b):\n    """Return a + b."""\n',
        "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    ),
    "is_even": (
        'def is_even(n):\n    """True when n is even."""\n',
        "def check(candidate):\n    assert candidate(4) is True\n    assert candidate(7) is False\n",
    ),
    "reverse": (
        'def reverse(s):\n    """s backwards."""\n',
        "def check(candidate):\n    assert candidate('abc') == 'cba'\n    assert candidate('') == ''\n",
    ),
    "fib": (
        'def fib(n):\n    """The n-th Fibonacci number, fib(0) = 0."""\n',
        "def check(candidate):\n    assert [candidate(i) for i in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]\n",
    ),
}
# Trials (of 10) in which the scripted model writes a correct solution.
CORRECT = {"add": 10, "is_even": 6, "reverse": 2, "fib": 0}
RIGHT = {
    "add": "```python\ndef add(a, b):\n    return a + b\n```",
    "is_even": "Here:\n```python\ndef is_even(n):\n    return n % 2 == 0\n```",
    # The body only, HumanEval's completion style: the grader's prefix is the prompt.
    "reverse": "    return s[::-1]\n",
    "fib": "",
}
WRONG = [
    "```python\ndef {name}(*args):\n    return None\n```",  # wrong answer: an assertion fails
    "```python\ndef {name}(x:\n```",  # a syntax error
    "```python\ndef {name}(*args):\n    raise RuntimeError('nope')\n```",
    "```python\nimport os\ndef {name}(*args):\n    os._exit(0)\n```",  # exits 0 before the tests finish
]


def humaneval_script(seen: Seen) -> str:
    name = next(n for n in PROBLEMS if f"def {n}(" in seen.last_user)
    trial = (seen.seed or 100) - 100
    if trial < CORRECT[name]:
        return RIGHT[name]
    wrong = WRONG[trial % len(WRONG)].format(name=name)
    return "    return s\n" if name == "reverse" and trial % 2 else wrong


@pytest.fixture(scope="module")
def humaneval_suite(llm):
    with llm.admin() as admin:
        admin.post("/api/v1/prompts", json={"name": "complete", "template": "Complete the function:\n{{.prompt}}"})
        cases = []
        for name, (prompt, tests) in PROBLEMS.items():
            grader = {"type": "code", "tests": tests, "entry_point": name, "timeout": 5}
            if name == "reverse":
                grader["prefix"] = "{{.prompt}}"
            cases.append({"id": f"HumanEval/{name}", "input": {"prompt": prompt}, "evaluators": [grader]})
        response = admin.post("/api/v1/suites", json={"name": "humaneval-mini", "prompt": "complete", "cases": cases})
        assert response.status_code == 201, response.text
    return "humaneval-mini"


def by_hand(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)


def test_a_humaneval_style_suite_grades_in_sandboxes_with_pass_at_1_and_5(admin, scripted, humaneval_suite):
    scripted.reset(humaneval_script)
    # Hand-computed: pass@1 = c/10; pass@5 = 1 - C(10-c, 5)/C(10, 5), so c=2 gives 1 - 56/252.
    expected = {
        1: {"add": 1.0, "is_even": 0.6, "reverse": 0.2, "fib": 0.0},
        5: {"add": 1.0, "is_even": 1.0, "reverse": 1 - 56 / 252, "fib": 0.0},
    }
    for k in (1, 5):
        response = admin.post(
            "/api/v1/suite", json={"suite": humaneval_suite, "model": "model_priced", "trials": 10, "k": k}
        )
        assert response.status_code == 200, response.text
        result = response.json()
        for case in result["results"]:
            name = case["case_id"].removeprefix("HumanEval/")
            assert case["passed_trials"] == CORRECT[name], case
            assert case["pass_at_k"] == pytest.approx(expected[k][name]), case
            assert case["pass_at_k"] == pytest.approx(by_hand(10, CORRECT[name], k))
        assert result["pass_at_k"] == pytest.approx(sum(expected[k].values()) / 4, abs=1e-6)
    assert result["pass_at_k"] == pytest.approx((1 + 1 + (1 - 56 / 252) + 0) / 4, abs=1e-6)
    assert len(scripted.requests()) == 40  # the second run's answers came from the cache

    transcripts = admin.get(f"/api/v1/suite-runs/{result['id']}", params={"limit": 100}).json()["transcripts"]
    messages = {t["graders"][0]["message"] for t in transcripts if not t["passed"]}
    assert any("AssertionError" in m for m in messages), messages
    assert any("SyntaxError" in m for m in messages), messages
    assert any("RuntimeError" in m for m in messages), messages
    assert "the tests failed: ended before the tests finished (its last line is not the grader's marker)" in messages
    evaluations = {t["graders"][0]["details"]["eval_id"] for t in transcripts}
    assert len(evaluations) == 40
    # The programs ran as the caller's evaluations, in a few batches of the batch lane.
    stored = [admin.get(f"/api/eval-status/{eval_id}").json() for eval_id in list(evaluations)[:10]]
    assert all(s["status"] in ("completed", "failed", "timeout") for s in stored)


ATTACKS = {
    # Each is a model's "solution" of add() that attacks the sandbox it is graded in.
    "exit-early": "import os\nos._exit(0)\ndef add(a, b): return a + b",
    "fake-marker": "print('__appliance_grader_0000__')\nimport sys\nsys.exit(0)",
    "read-host-key": "print(open('{key_path}').read())\ndef add(a, b): return a + b",
    "network": "import urllib.request\nurllib.request.urlopen('{model_url}/v1/models', timeout=3)\n"
    "def add(a, b): return a + b",
    # PID 1 of the sandbox ignores the signal; the code after it is right, and graded so.
    "kill-init": "import os, signal\nos.kill(1, signal.SIGKILL)\ndef add(a, b): return a + b",
    "fork-bomb": "import os\nwhile True:\n    os.fork()",
    "memory": "x = bytearray(1 << 34)\ndef add(a, b): return a + b",
    "forever": "while True:\n    pass",
    "leave-behind": "import subprocess\nsubprocess.Popen(['sleep', '60'])\nopen('/tmp/left', 'w').write('x')\n"
    "def add(a, b): return a - b",
    "honest": "def add(a, b):\n    import os\n    assert not os.path.exists('/tmp/left')\n    return a + b",
}


def test_model_code_that_attacks_the_grader_sandbox(llm, admin, scripted):
    tests = PROBLEMS["add"][1]
    cases = [
        {
            "id": name,
            "input": {"attack": name},
            "evaluators": [{"type": "code", "tests": tests, "entry_point": "add", "timeout": 3}],
        }
        for name in ATTACKS
    ]
    admin.post("/api/v1/prompts", json={"name": "attack", "template": "{{.attack}}"})
    assert admin.post("/api/v1/suites", json={"name": "attacks", "prompt": "attack", "cases": cases}).status_code == 201
    key_path = llm.data_dir / "admin.key"
    scripted.reset(
        lambda seen: "```python\n" + ATTACKS[seen.last_user].format(key_path=key_path, model_url=scripted.url) + "\n```"
    )
    response = admin.post("/api/v1/suite", json={"suite": "attacks", "model": "model_chat", "cache": False})
    assert response.status_code == 200, response.text
    outcome = {c["case_id"]: c["passed"] for c in response.json()["results"]}
    assert outcome == {name: name in ("honest", "kill-init") for name in ATTACKS}, outcome
    assert len(scripted.requests()) == len(ATTACKS)  # the network attack reached nothing
    transcripts = admin.get(f"/api/v1/suite-runs/{response.json()['id']}").json()["transcripts"]
    said = {t["case_id"]: t["graders"][0]["message"] for t in transcripts}
    assert "timed out" in said["forever"], said
    assert "marker" in said["exit-early"] and "marker" in said["fake-marker"], said
    assert "FileNotFoundError" in said["read-host-key"], said
    assert llm.admin_key not in json.dumps(transcripts)
    assert admin.get("/health").json() == {"status": "ok"}


# --- custom Python graders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "extra", "passed", "score", "message"),
    [
        (
            "def grade(output, context):\n    ok = output.strip() == context['vars']['answer']\n"
            "    said = 'compared with ' + context['vars']['answer']\n"
            "    return {'pass': ok, 'score': 1.0 if ok else 0.0, 'reason': said}",
            {},
            True,
            1.0,
            "compared with 42",
        ),
        ("output.strip() == '42'", {}, True, 1.0, "pass"),
        ("n = int(output)\nreturn n / 100", {}, False, 0.42, "fail"),
        ("n = int(output)\nreturn n / 100", {"threshold": 0.4}, True, 0.42, "pass"),
        ("def get_assert(output, context):\n    return context['case_id'] == 'evaluate'", {}, True, 1.0, "pass"),
        ("1 / 0", {}, False, 0.0, "ZeroDivisionError"),
        ("open('/etc/appliance-secret').read()", {}, False, 0.0, "FileNotFoundError"),
        ("return 'yes'", {}, False, 0.0, "a grader returns a bool"),
    ],
)
def test_custom_python_graders_run_in_a_sandbox(admin, scripted, code, extra, passed, score, message):
    body = graded(admin, scripted, "42", {"type": "python", "code": code, **extra})
    (result,) = body["evaluations"]
    assert result["passed"] is passed and result["score"] == pytest.approx(score), result
    assert message in result["message"], result
    assert result["details"]["eval_id"].startswith("eval_")


def test_output_cannot_break_out_of_a_python_grader(admin, scripted):
    hostile = "\"\"\"'''\nimport os; os._exit(0)\n"
    body = graded(admin, scripted, hostile, {"type": "python", "value": "'os._exit' in output"})
    assert body["evaluations"][0]["passed"] is True


def test_a_code_grader_needs_its_tests(admin, scripted):
    response = admin.post(
        "/api/v1/evaluate", json={"prompt": "example", "input": {"user_request": "x"}, "evaluators": [{"type": "code"}]}
    )
    assert_llm_error(response, 400, "INVALID_REQUEST", "tests")
    response = admin.post(
        "/api/v1/evaluate",
        json={
            "prompt": "example",
            "input": {"user_request": "x"},
            "evaluators": [{"type": "code", "tests": "x", "language": "cobol"}],
        },
    )
    assert_llm_error(response, 400, "INVALID_REQUEST", "cobol")
    assert scripted.requests() == []
