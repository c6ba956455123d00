"""A case made ready to run: its prompt's messages and its own turns rendered with its
input, its graders prepared. Everything a request can get wrong about its cases is
found here, before the first model call."""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.core.errors import ValidationError, invalid_fields
from appliance.core.llm.calls import ChatMessage, Completion
from appliance.core.llm.grading import GraderSpec
from appliance.core.llm.prompts import Case, Prompt, case_turns, opening
from appliance.core.llm.runs import Exchange
from appliance.services.llm.graders.base import Grading


class Plan(msgspec.Struct, kw_only=True):
    index: int  # the case's place in its suite
    case_id: str
    values: dict[str, Any]
    opening: list[ChatMessage]
    turns: list[ChatMessage]
    graders: list[GraderSpec]
    threshold: float | None


def plan_case(prompt: Prompt, case: Case, index: int, shared: list[GraderSpec], grading: Grading, path: str) -> Plan:
    """ValidationError (with the problems by field when there are several) if the case
    cannot run."""
    where = f"case {case.id!r}"
    return Plan(
        index=index,
        case_id=case.id,
        values=case.input,
        opening=opening(prompt, case.input, has_turns=bool(case.turns)),
        turns=case_turns(case, where),
        graders=grading.prepare([*shared, *case.evaluators], case.input, f"{path}evaluators"),
        threshold=case.threshold,
    )


def plan_cases(prompt: Prompt, cases: list[Case], shared: list[GraderSpec], grading: Grading) -> list[Plan]:
    """Every case planned, or one ValidationError naming every case's problems."""
    plans: list[Plan] = []
    problems: dict[str, list[str]] = {}
    for index, case in enumerate(cases):
        path = f"cases[{index}]"
        try:
            plans.append(plan_case(prompt, case, index, shared, grading, f"{path}."))
        except ValidationError as exc:
            fields = (exc.details or {}).get("fields")
            if isinstance(fields, dict):
                problems.update({str(k): [str(m) for m in v] for k, v in fields.items() if isinstance(v, list)})
            else:
                problems[f"{path} ({case.id})"] = [exc.detail]
    if problems:
        raise invalid_fields(problems)
    return plans


def exchange(messages: list[ChatMessage], completion: Completion) -> Exchange:
    return Exchange(
        messages=list(messages),
        output=completion.text,
        latency_ms=completion.latency_ms,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        model=completion.model,
        cost=completion.cost,
        cached=completion.cached,
        attempts=completion.attempts,
        temperature=completion.temperature,
        seed=completion.seed,
    )
