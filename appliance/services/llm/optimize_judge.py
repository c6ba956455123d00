"""What the optimiser asks its judge model, and how it reads the answer.

The judge is shown the current template, the placeholders it must keep, its score, the
cases it fails (input, the model's output, each failing grader's message) and the
templates already tried with their scores, so an iteration after one that improved
nothing asks something new (and a cached answer is never the same candidate again).
It answers one JSON object `{"template": ..., "suggestions": [...]}`; the answer is
read as the llm_judge grader reads verdicts (a JSON object anywhere, fenced or not),
else the first fenced block is taken as the template. An answer with neither is a
candidate not scored, saying why, never a guess.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from appliance.core.llm.calls import ChatMessage
from appliance.core.llm.runs import Transcript
from appliance.core.llm.templates import template_problems, variables
from appliance.services.llm.graders.structured import embedded_json

SHOWN_OUTPUT = 600
SHOWN_ANSWER = 300
MAX_SUGGESTIONS = 10

SYSTEM = (
    "You improve prompt templates. A template is sent to an AI model with its {{.name}} placeholders filled in "
    "from each test case, and graders check the model's answer. Given the current template, the cases it fails "
    "and the templates already tried, write one improved template that makes the model pass more cases. Keep "
    "every placeholder of the current template, written exactly as {{.name}}, and use no other {{ }} syntax. "
    "Reply with one JSON object and nothing else: "
    '{"template": "<the whole improved template>", "suggestions": ["<each change you made, in a few words>"]}'
)


class Failure(msgspec.Struct, kw_only=True):
    case_id: str
    input: dict[str, Any]
    output: str
    graders: list[str]  # each failing grader: "type: message"
    error: str | None = None


class Tried(msgspec.Struct, kw_only=True):
    template: str
    score: float | None
    note: str = ""


class Proposal(msgspec.Struct, kw_only=True):
    template: str
    suggestions: list[str]


def failure_of(transcript: Transcript, case_input: dict[str, Any]) -> Failure:
    return Failure(
        case_id=transcript.case_id,
        input=case_input,
        output=transcript.output,
        graders=[f"{g.type}: {g.message}" for g in transcript.graders if not g.passed],
        error=transcript.error,
    )


def judge_messages(current: str, score: float, failures: list[Failure], tried: list[Tried]) -> list[ChatMessage]:
    keep = ", ".join("{{." + name + "}}" for name in variables(current)) or "(none)"
    parts = [
        f"<template>\n{current}\n</template>",
        f"<placeholders>{keep}</placeholders>",
        f"<score>{score:.4f} (the mean grader score over the suite's cases; 1 is best)</score>",
    ]
    shown = []
    for failure in failures:
        lines = [f'<case id="{failure.case_id}">', f"<input>{json.dumps(failure.input, ensure_ascii=False)}</input>"]
        if failure.error:
            lines.append(f"<error>{failure.error}</error>")
        else:
            lines.append(f"<output>{failure.output[:SHOWN_OUTPUT]}</output>")
        lines += [f"<grader>{text}</grader>" for text in failure.graders]
        lines.append("</case>")
        shown.append("\n".join(lines))
    parts.append("<failures>\n" + "\n".join(shown) + "\n</failures>" if shown else "<failures>none</failures>")
    if tried:
        entries = [
            f'<candidate score="{"not scored" if t.score is None else f"{t.score:.4f}"}">\n{t.template}\n</candidate>'
            + (f"\n<note>{t.note}</note>" if t.note else "")
            for t in tried
        ]
        parts.append("<already_tried>\n" + "\n".join(entries) + "\n</already_tried>")
    return [ChatMessage("system", SYSTEM), ChatMessage("user", "\n\n".join(parts))]


def _suggestions(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(s).strip() for s in value if isinstance(s, str | int | float) and str(s).strip()][:MAX_SUGGESTIONS]


def read_proposal(text: str) -> Proposal | str:
    """The proposal, or why the answer holds none."""
    for data in reversed([v for v in embedded_json(text) if isinstance(v, dict)]):
        lowered = {str(k).lower(): v for k, v in data.items()}
        template = next(
            (lowered[k] for k in ("template", "optimized_template", "improved_template", "prompt") if k in lowered),
            None,
        )
        if isinstance(template, str) and template.strip():
            found: Any = next((lowered[k] for k in ("suggestions", "changes", "suggestion") if k in lowered), [])
            return Proposal(template=template.strip(), suggestions=_suggestions(found))
    fenced = re.search(r"```[^\n]*\n(.*?)```", text, re.DOTALL)
    if fenced and fenced.group(1).strip():
        return Proposal(template=fenced.group(1).strip(), suggestions=[])
    return f"the judge's answer holds no template: {json.dumps(text[:SHOWN_ANSWER])}"


def proposal_problem(template: str, current: str, tried: list[str]) -> str | None:
    """Why a proposed template is not worth scoring, or None."""
    found = template_problems(template)
    if found:
        return "the template is not valid: " + "; ".join(found)
    dropped = [name for name in variables(current) if name not in variables(template)]
    if dropped:
        return "the template drops the placeholder(s) " + ", ".join("{{." + n + "}}" for n in dropped)
    if template.strip() == current.strip() or template.strip() in (t.strip() for t in tried):
        return "the same as a template already tried"
    return None
