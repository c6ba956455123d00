"""Graders of JSON output: is_json (the whole output is JSON; a lone ```json fence
around it is allowed), contains_json (a JSON object or array somewhere in it) and
json_schema (the output's JSON is valid under a schema). is_json and contains_json take
an optional schema too, as promptfoo's is-json and contains-json do."""

from __future__ import annotations

import json
import re
from typing import Any

from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.services.llm.graders.base import GradingContext, result
from appliance.services.llm.graders.jsonschema import schema_problems, validate

FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```$", re.DOTALL)
_NOT_FOUND = object()


def whole_json(output: str) -> Any:
    """The output as one JSON value, or _NOT_FOUND."""
    text = output.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_FOUND


def embedded_json(output: str) -> list[Any]:
    """Every JSON object or array that starts somewhere in the output and is whole."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = 0
    while True:
        starts = [i for i in (output.find("{", index), output.find("[", index)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(output, start)
        except ValueError:
            index = start + 1
            continue
        found.append(value)
        index = end


def _schema_of(spec: GraderSpec) -> Any:
    if spec.schema is not None:
        return spec.schema
    return spec.target if isinstance(spec.target, dict) else None


def _schema_check(spec: GraderSpec) -> list[str]:
    schema = _schema_of(spec)
    return [] if schema is None else schema_problems(schema)


class IsJson:
    def problems(self, spec: GraderSpec) -> list[str]:
        return _schema_check(spec)

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        value = whole_json(context.output)
        if value is _NOT_FOUND:
            return result(spec, False, 0.0, "Output is not valid JSON")
        return _against_schema(spec, value, "Output is valid JSON")


class ContainsJson:
    def problems(self, spec: GraderSpec) -> list[str]:
        return _schema_check(spec)

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        values = embedded_json(context.output)
        if not values:
            return result(spec, False, 0.0, "Output contains no JSON object or array")
        schema = _schema_of(spec)
        if schema is None:
            return result(spec, True, 1.0, "Output contains JSON")
        problems: list[str] = []
        for value in values:
            problems = validate(schema, value)
            if not problems:
                return result(spec, True, 1.0, "Output contains JSON valid under the schema")
        return result(spec, False, 0.0, f"No JSON in the output is valid under the schema: {'; '.join(problems[:3])}")


class JsonSchema:
    def problems(self, spec: GraderSpec) -> list[str]:
        if _schema_of(spec) is None:
            return ["json_schema needs `schema` (or `expected`): the JSON schema the output must match"]
        return _schema_check(spec)

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        value = whole_json(context.output)
        if value is _NOT_FOUND:
            values = embedded_json(context.output)
            if not values:
                return result(spec, False, 0.0, "Output holds no JSON to check against the schema")
            value = values[0]
        return _against_schema(spec, value, "Output is JSON")


def _against_schema(spec: GraderSpec, value: Any, ok: str) -> GraderResult:
    schema = _schema_of(spec)
    if schema is None:
        return result(spec, True, 1.0, ok)
    problems = validate(schema, value)
    if problems:
        return result(
            spec,
            False,
            0.0,
            f"JSON does not match the schema: {'; '.join(problems[:3])}",
            details={"schema_errors": problems},
        )
    return result(spec, True, 1.0, f"{ok} and matches the schema")
