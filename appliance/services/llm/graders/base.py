"""What a grader is handed and answers, and `Grading`, which prepares a case's graders
before anything runs (names, required fields, `{{.variables}}` in their texts: every
problem is a 400 before the first model call) and runs them on an answer."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import msgspec

from appliance.core.errors import AppError, invalid_fields
from appliance.core.identity import Identity
from appliance.core.llm.calls import ChatMessage
from appliance.core.llm.grading import GraderResult, GraderSpec, canonical_spec
from appliance.core.llm.prompts import grader_problems
from appliance.core.llm.templates import render, template_problems
from appliance.core.models import Model

# Text fields of a spec that may use the case's variables (not `code`: Python may hold
# braces of its own).
TEMPLATED = ("criteria", "rubric", "tests", "entry_point", "prefix")


class GradingContext(msgspec.Struct, kw_only=True):
    identity: Identity
    output: str
    values: dict[str, Any]  # the case's input
    messages: list[ChatMessage]  # the conversation the output answers
    case_id: str
    model: Model  # the model under evaluation
    use_cache: bool = True

    @property
    def question(self) -> str:
        """The last user message: what the output answers."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


class Grader(Protocol):
    def problems(self, spec: GraderSpec) -> list[str]:
        """What `spec` lacks for this grader ([] if nothing)."""
        ...

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult: ...


def result(spec: GraderSpec, passed: bool, score: float, message: str, **extra: Any) -> GraderResult:
    return GraderResult(
        type=spec.type, passed=passed, score=max(0.0, min(1.0, score)), message=message, weight=spec.weight, **extra
    )


def _rendered(value: Any, values: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        return render(value, values, where)
    if isinstance(value, list):
        return [_rendered(v, values, where) for v in value]
    return value


class Grading:
    def __init__(self, graders: dict[str, Grader]) -> None:
        self._graders = graders

    def prepare(self, specs: list[GraderSpec], values: dict[str, Any], path: str) -> list[GraderSpec]:
        """The specs canonical and rendered with `values`; ValidationError naming each
        problem by its place (`cases[2].evaluators[0].expected`)."""
        problems: dict[str, list[str]] = {}
        prepared: list[GraderSpec] = []
        for index, spec in enumerate(specs):
            where = f"{path}[{index}]"
            found = grader_problems(spec, where)
            if found:
                problems.update(found)
                continue
            spec = canonical_spec(spec)
            try:
                spec = self._render(spec, values, where)
            except AppError as exc:
                problems[where] = [exc.detail]
                continue
            lacking = self._graders[spec.type].problems(spec)
            if lacking:
                problems[where] = lacking
                continue
            prepared.append(spec)
        if problems:
            raise invalid_fields(problems)
        return prepared

    @staticmethod
    def _render(spec: GraderSpec, values: dict[str, Any], where: str) -> GraderSpec:
        changes: dict[str, Any] = {}
        for name in ("expected", "value", *TEMPLATED):
            value = getattr(spec, name)
            if value is None:
                continue
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and template_problems(text):
                    raise AppError(f"{name}: {template_problems(text)[0]}")
            changes[name] = _rendered(value, values, f"{where}.{name}")
        return msgspec.structs.replace(spec, **changes)

    async def grade(self, specs: list[GraderSpec], context: GradingContext) -> list[GraderResult]:
        """Every grader on one output, at once; a grader that fails to run (its judge
        down, its sandbox refused) fails, saying why, and the others still count."""
        return list(await asyncio.gather(*(self._one(spec, context) for spec in specs)))

    async def _one(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        try:
            graded = await self._graders[spec.type].grade(spec, context)
        except AppError as exc:
            return result(spec, False, 0.0, f"{spec.type} could not grade: {exc.detail}", details={"error": exc.title})
        if not spec.negate:
            return graded
        return msgspec.structs.replace(
            graded, passed=not graded.passed, score=1.0 - graded.score, message=f"not {spec.type}: {graded.message}"
        )
