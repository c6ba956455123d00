"""llm_judge: a model grades the output against a rubric (`criteria`, the document's
name, or `rubric`/`value`, promptfoo's). The judge is asked for one JSON object, and
its answer is read robustly: a JSON object anywhere (fenced or not, the last one that
holds a verdict), its pass as `pass`/`passed`/`verdict`, its score on 0-1 (or 0-10,
0-100, scaled), else `Score: 7/10` and `PASS`/`FAIL` lines. An answer that says
neither is a clear failure with what the judge wrote, never a guess.
"""

from __future__ import annotations

import json
import re
from typing import Any

from appliance.core.llm.calls import ChatMessage, Parameters
from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.core.llm.templates import as_text
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.graders.base import GradingContext, result
from appliance.services.llm.graders.structured import embedded_json

DEFAULT_THRESHOLD = 0.5
SHOWN = 300

SYSTEM = (
    "You grade an AI model's response against a rubric. Be strict and fair, and judge only what the rubric "
    "asks. Reply with one JSON object and nothing else: "
    '{"reason": "<one or two sentences>", "score": <a number from 0 to 1>, "pass": <true or false>}'
)


def judge_messages(rubric: str, question: str, output: str) -> list[ChatMessage]:
    parts = [f"<rubric>\n{rubric}\n</rubric>"]
    if question:
        parts.append(f"<question>\n{question}\n</question>")
    parts.append(f"<response>\n{output}\n</response>")
    return [ChatMessage("system", SYSTEM), ChatMessage("user", "\n\n".join(parts))]


class Verdict:
    def __init__(self, passed: bool | None, score: float | None, reason: str) -> None:
        self.passed = passed
        self.score = score
        self.reason = reason


_TRUE = {"true", "pass", "passed", "yes", "y", "correct", "1"}
_FALSE = {"false", "fail", "failed", "no", "n", "incorrect", "0"}


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _scaled(value: Any, scale: float | None = None) -> float | None:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*%?\s*", value)
        if not match:
            return None
        value, scale = float(match.group(1)), float(match.group(2)) if match.group(2) else scale
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    if scale:
        number /= scale
    elif number > 10:
        number /= 100
    elif number > 1:
        number /= 10
    return number if 0 <= number <= 1 else None


def _from_object(data: dict[str, Any]) -> Verdict | None:
    lowered = {str(k).lower(): v for k, v in data.items()}
    passed = next((_truth(lowered[k]) for k in ("pass", "passed", "verdict", "result") if k in lowered), None)
    score = next((_scaled(lowered[k]) for k in ("score", "rating", "grade") if k in lowered), None)
    if passed is None and score is None:
        return None
    reason = next(
        (as_text(lowered[k]) for k in ("reason", "reasoning", "explanation", "rationale") if k in lowered), ""
    )
    return Verdict(passed, score, reason)


def _from_text(text: str) -> Verdict | None:
    score = None
    for match in re.finditer(r"(?im)\b(?:score|rating)\s*[:=]\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?", text):
        score = _scaled(float(match.group(1)), float(match.group(2)) if match.group(2) else None)
    passed = None
    verdicts = re.finditer(
        r"(?im)\b(?:verdict|result|grade|decision)\s*[:=]\s*\**\s*(pass|fail|yes|no)\b|^\W*(pass|fail)\W*$", text
    )
    for match in verdicts:
        passed = (match.group(1) or match.group(2)).lower() in ("pass", "yes")
    if passed is None and score is None:
        return None
    return Verdict(passed, score, text.strip())


def read_verdict(text: str) -> Verdict | None:
    objects = [v for v in embedded_json(text) if isinstance(v, dict)]
    for data in reversed(objects):
        verdict = _from_object(data)
        if verdict is not None:
            return verdict
    return _from_text(text)


class LlmJudge:
    def __init__(self, calls: ModelCalls, choice: ModelChoice) -> None:
        self._calls = calls
        self._choice = choice

    def problems(self, spec: GraderSpec) -> list[str]:
        rubric = spec.criteria or spec.rubric or spec.target
        if not isinstance(rubric, str) or not rubric.strip():
            return ["llm_judge needs `criteria` (or `rubric`, or `value`): what a good response does"]
        return []

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        rubric = as_text(spec.criteria or spec.rubric or spec.target)
        judge = await self._choice.judge_for(context.identity, spec.model, context.model)
        answer = await self._calls.complete(
            judge,
            judge_messages(rubric, context.question, context.output),
            Parameters(temperature=0.0),
            use_cache=context.use_cache,
        )
        details: dict[str, Any] = {"judge": judge.id, "tokens_used": answer.tokens}
        verdict = read_verdict(answer.text)
        if verdict is None:
            shown = json.dumps(answer.text[:SHOWN])
            return result(
                spec,
                False,
                0.0,
                f"the judge's answer could not be read as a verdict: {shown}",
                reasoning=answer.text,
                details={**details, "unparseable": True},
            )
        threshold = DEFAULT_THRESHOLD if spec.threshold is None else spec.threshold
        score = verdict.score if verdict.score is not None else (1.0 if verdict.passed else 0.0)
        passed = verdict.passed if verdict.passed is not None else score >= threshold
        if spec.threshold is not None:
            passed = passed and score >= threshold
        message = verdict.reason.splitlines()[0][:SHOWN] if verdict.reason else ("pass" if passed else "fail")
        return result(spec, passed, score, message, reasoning=verdict.reason, details=details)
