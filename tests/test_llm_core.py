"""The parts of LLM evaluation that need no server: templates, pass@k and pass^k, how
graders add up, the judge's verdicts, the JSON schema validator, the promptfoo import,
the per-server limiter and Retry-After."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from appliance.core.errors import ValidationError
from appliance.core.llm.calls import ChatMessage, as_completion_prompt
from appliance.core.llm.grading import GraderResult, GraderSpec, canonical_spec, combine, pass_at_k, pass_hat_k
from appliance.core.llm.prompts import Case, Prompt, Turn, case_turns, next_version, opening, version_key
from appliance.core.llm.templates import MissingVariable, from_double_braces, render, template_problems, variables
from appliance.core.models import looks_like_secret_key
from appliance.services.llm.graders.jsonschema import schema_problems, validate
from appliance.services.llm.graders.judge import read_verdict
from appliance.services.llm.graders.programs import extract_code
from appliance.services.llm.graders.similarity import character_similarity, token_similarity
from appliance.services.llm.limits import ServerLimiter
from appliance.services.llm.promptfoo import from_promptfoo
from appliance.services.llm.providers.base import retry_after

# --- templates -------------------------------------------------------------------------------


def test_go_style_placeholders_render_with_nested_values():
    text = "Hi {{.user.name}}, you asked: {{ .question }} ({{.count}}, {{.tags}})"
    assert variables(text) == ["user.name", "question", "count", "tags"]
    rendered = render(text, {"user": {"name": "Ada"}, "question": "why?", "count": 3, "tags": ["a", "b"]})
    assert rendered == 'Hi Ada, you asked: why? (3, ["a", "b"])'


def test_a_missing_variable_is_named():
    with pytest.raises(MissingVariable) as caught:
        render("{{.user_request}}", {}, "prompt 'example'")
    assert caught.value.status_code == 400
    assert "user_request" in caught.value.detail and "prompt 'example'" in caught.value.detail
    assert caught.value.details == {"field": "input.user_request", "reason": "missing variable"}


def test_other_go_template_actions_are_refused():
    assert template_problems("{{.ok}} and {{ .also_ok }}") == []
    assert len(template_problems("{{if .x}}yes{{end}} {{name}}")) == 3


def test_promptfoo_placeholders_become_go_style():
    assert from_double_braces("Tell me about {{ topic }} and {{a.b}}") == "Tell me about {{.topic}} and {{.a.b}}"


# --- prompts and conversations ----------------------------------------------------------------


def test_a_system_prompt_is_the_system_turn_only_when_the_case_adds_turns():
    prompt = Prompt(name="p", template="Be brief. {{.x}}", is_system_prompt=True)
    assert opening(prompt, {"x": "1"}, has_turns=False) == [ChatMessage("user", "Be brief. 1")]
    assert opening(prompt, {"x": "1"}, has_turns=True) == [ChatMessage("system", "Be brief. 1")]
    case = Case(id="c", input={"q": "why"}, turns=[Turn("user", "{{.q}}?")])
    assert case_turns(case, "case") == [ChatMessage("user", "why?")]


def test_versions_order_as_read_and_count_on():
    assert sorted(["1.10", "1.2", "2.0", "1.9"], key=version_key) == ["1.2", "1.9", "1.10", "2.0"]
    assert next_version("1.0") == "1.1" and next_version("2.9") == "2.10" and next_version("beta") == "beta.1"


def test_a_conversation_for_a_completions_api():
    assert as_completion_prompt([ChatMessage("user", "Hi")]) == "Hi"
    text = as_completion_prompt([ChatMessage("system", "S"), ChatMessage("user", "U")])
    assert text == "System: S\n\nUser: U\n\nAssistant:"


# --- grading ---------------------------------------------------------------------------------


def test_promptfoo_names_and_negation():
    assert canonical_spec(GraderSpec(type="llm-rubric")).type == "llm_judge"
    spec = canonical_spec(GraderSpec(type="not-starts-with"))
    assert (spec.type, spec.negate) == ("starts_with", True)
    assert canonical_spec(GraderSpec(type="levenshtein")).method == "character"
    with pytest.raises(ValidationError, match="python"):
        canonical_spec(GraderSpec(type="javascript"))
    with pytest.raises(ValidationError, match="unknown grader type"):
        canonical_spec(GraderSpec(type="telepathy"))


def graded(passed: bool, score: float, weight: float = 1.0) -> GraderResult:
    return GraderResult(type="x", passed=passed, score=score, message="", weight=weight)


def test_weights_and_thresholds():
    results = [graded(True, 1.0, weight=3), graded(False, 0.0, weight=1), graded(False, 0.2, weight=0)]
    assert combine(results, None) == (False, 0.75)  # every counted grader must pass
    assert combine(results, 0.7) == (True, 0.75)  # or the weighted score reach the threshold
    assert combine(results, 0.8) == (False, 0.75)
    assert combine([], None) == (True, 1.0)


@pytest.mark.parametrize(("n", "c", "k"), [(10, 3, 1), (10, 3, 5), (10, 0, 5), (10, 10, 3), (5, 2, 4), (20, 7, 10)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    expected = 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_hat_k(n, c, k) == pytest.approx(math.comb(c, k) / math.comb(n, k))


def test_pass_at_k_by_hand():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_hat_k(10, 8, 2) == pytest.approx(28 / 45)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


@pytest.mark.parametrize(
    ("answer", "passed", "score"),
    [
        ('{"reason": "fine", "score": 0.8, "pass": true}', True, 0.8),
        ('Sure.\n```json\n{"passed": "no", "score": "3/10", "reasoning": "rude"}\n```', False, 0.3),
        ('{"draft": 1} then {"verdict": "PASS", "rating": 9}', True, 0.9),
        ("Score: 7/10\nVerdict: FAIL", False, 0.7),
        ("The answer is friendly.\n\nPASS", True, None),
        ('{"score": 85}', None, 0.85),
    ],
)
def test_judge_verdicts_are_read_robustly(answer, passed, score):
    verdict = read_verdict(answer)
    assert verdict is not None
    assert verdict.passed is passed
    assert verdict.score == (pytest.approx(score) if score is not None else None)


@pytest.mark.parametrize("answer", ["I think it is quite good overall.", "", '{"comment": "nice"}', "No idea."])
def test_an_answer_without_a_verdict_is_not_guessed(answer):
    assert read_verdict(answer) is None


def test_similarity_methods():
    assert token_similarity("Paris is the capital of France", "the capital of France is Paris") == pytest.approx(1.0)
    assert token_similarity("cats", "dogs") == 0.0
    assert 0.8 < character_similarity("colour", "color") < 1.0


def test_code_is_taken_from_the_fence_of_its_language():
    output = "Here:\n```text\nnot code\n```\n```python\ndef f():\n    return 1\n```\nDone."
    assert extract_code(output, "python") == "def f():\n    return 1\n"
    assert extract_code("def g(): pass", "python") == "def g(): pass"
    assert extract_code("```\nx = 1\n```", "python") == "x = 1\n"


# --- JSON schema ---------------------------------------------------------------------------


SCHEMA = {
    "type": "object",
    "required": ["name", "tags"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 2, "pattern": "^[A-Z]"},
        "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 150},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True, "maxItems": 2},
        "kind": {"$ref": "#/$defs/kind"},
        "type": {"type": "string"},  # a property called "type" is a property, not a keyword
    },
    "$defs": {"kind": {"oneOf": [{"const": "x"}, {"type": "number", "multipleOf": 0.5}]}},
}


def test_valid_json_under_the_schema():
    assert schema_problems(SCHEMA) == []
    assert validate(SCHEMA, {"name": "Ada", "age": 36, "tags": ["a"], "kind": 1.5, "type": "t"}) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"name": "Ada"}, "missing required property 'tags'"),
        ({"name": "ada", "tags": []}, "does not match"),
        ({"name": "Ada", "tags": ["a", "a"]}, "unique"),
        ({"name": "Ada", "tags": ["c"]}, "must be one of"),
        ({"name": "Ada", "tags": [], "age": 150}, "less than 150"),
        ({"name": "Ada", "tags": [], "age": 3.5}, "expected integer"),
        ({"name": "Ada", "tags": [], "extra": 1}, "not allowed"),
        ({"name": "Ada", "tags": [], "kind": 1.2}, "exactly one of oneOf"),
        ({"name": "Ada", "tags": [], "age": True}, "expected integer"),
    ],
)
def test_invalid_json_is_said_where(value, fragment):
    problems = validate(SCHEMA, value)
    assert any(fragment in p for p in problems), problems


def test_a_broken_schema_is_refused():
    assert schema_problems({"type": "strnig"})
    assert schema_problems({"properties": {"x": {"pattern": "("}}})
    assert schema_problems([1])


# --- promptfoo ---------------------------------------------------------------------------


PROMPTFOO = """
description: Tweets
prompts:
  - "Write a tweet about {{ topic }}"
providers: [openai:gpt-4o-mini, {id: "ollama:chat:llama3"}]
defaultTest:
  assert:
    - type: not-icontains
      value: hashtag
tests:
  - description: bananas
    vars: {topic: bananas}
    assert:
      - type: icontains
        value: "{{topic}}"
      - type: llm-rubric
        value: is funny
        weight: 2
      - type: python
        value: len(output) < 280
    threshold: 0.5
  - vars: {topic: rain}
    assert:
      - type: is-json
        value: {type: object}
      - type: similar
        value: rain is wet
        threshold: 0.6
"""


def test_a_promptfoo_config_becomes_a_prompt_and_a_suite():
    prompts, suites, notes = from_promptfoo("tweets", PROMPTFOO)
    assert [p.name for p in prompts] == ["tweets"] and prompts[0].template == "Write a tweet about {{.topic}}"
    (suite,) = suites
    assert suite.prompt == "tweets" and suite.description == "Tweets"
    assert [e.type for e in suite.evaluators] == ["not-icontains"]
    first, second = suite.cases
    assert first.description == "bananas" and first.input == {"topic": "bananas"} and first.threshold == 0.5
    assert [(e.type, e.value, e.rubric, e.code, e.weight) for e in first.evaluators] == [
        ("icontains", "{{.topic}}", None, None, 1.0),
        ("llm-rubric", None, "is funny", None, 2.0),
        ("python", None, None, "len(output) < 280", 1.0),
    ]
    assert second.evaluators[0].schema == {"type": "object"} and second.evaluators[1].threshold == 0.6
    assert any("openai:gpt-4o-mini" in note and "ollama:chat:llama3" in note for note in notes)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("prompts: [file://p.txt]\ntests: [{vars: {a: 1}}]", "file://p.txt"),
        ("prompts: [hi]\ntests: tests.csv", "tests.csv"),
        ("prompts: [hi]\ntests: [{vars: {a: [1, 2]}}]", "one test per value"),
        ("prompts: [hi]", "no tests"),
        ("{{{", "not YAML"),
    ],
)
def test_what_promptfoo_cannot_give_is_refused(config, fragment):
    with pytest.raises(ValidationError, match="cannot be imported") as caught:
        from_promptfoo("x", config)
    assert fragment in caught.value.detail


# --- limits and retries ------------------------------------------------------------------


def test_per_minute_limit_waits_for_the_window():
    async def scenario() -> list[float]:
        now = [0.0]
        limiter = ServerLimiter(clock=lambda: now[0], window=0.3)
        limiter.configure(concurrency=10, per_minute=2)
        started: list[float] = []
        loop = asyncio.get_running_loop()
        begin = loop.time()

        async def call() -> None:
            async with limiter.slot():
                started.append(loop.time() - begin)
                now[0] = loop.time() - begin

        async def tick() -> None:
            while len(started) < 3:
                await asyncio.sleep(0.01)
                now[0] = loop.time() - begin

        await asyncio.gather(call(), call(), call(), tick())
        return started

    started = asyncio.run(scenario())
    assert started[1] < 0.1 and started[2] >= 0.25, started


def test_concurrency_limit_and_pause():
    async def scenario() -> tuple[int, float]:
        limiter = ServerLimiter()
        limiter.configure(concurrency=2, per_minute=0)
        most = 0

        async def call() -> None:
            nonlocal most
            async with limiter.slot():
                most = max(most, limiter.active)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(call() for _ in range(6)))
        limiter.pause(0.2)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with limiter.slot():
            waited = loop.time() - began
        return most, waited

    most, waited = asyncio.run(scenario())
    assert most == 2 and waited >= 0.19


def test_retry_after_in_its_three_forms():
    assert retry_after(httpx.Headers({"retry-after": "3"})) == 3.0
    assert retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after(httpx.Headers({"retry-after": later})) or 0) <= 30
    assert retry_after(httpx.Headers({})) is None and retry_after(httpx.Headers({"retry-after": "soon"})) is None


def test_where_a_key_is_named_is_no_secret():
    assert not looks_like_secret_key("api_key_file") and not looks_like_secret_key("api_key_env")
    assert looks_like_secret_key("api_key")
