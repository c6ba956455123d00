"""Graders that compare text: contains, icontains, contains_all/any (and their i-
forms), equals, regex and starts_with. What is looked for is the spec's `expected`
(the document's name) or `value` (promptfoo's)."""

from __future__ import annotations

import json
import re
from typing import Any

from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.core.llm.templates import as_text
from appliance.services.llm.graders.base import GradingContext, result

SHOWN = 80


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def _needs_text(spec: GraderSpec) -> list[str]:
    target = spec.target
    if target is None or (isinstance(target, str) and not target):
        return [f"{spec.type} needs `expected` (or `value`): the text to look for"]
    if isinstance(target, dict | list):
        return [f"{spec.type}'s `expected` must be a text"]
    return []


class Contains:
    def __init__(self, ignore_case: bool) -> None:
        self._ignore_case = ignore_case

    def problems(self, spec: GraderSpec) -> list[str]:
        return _needs_text(spec)

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        expected = as_text(spec.target)
        output = context.output
        if self._ignore_case:
            expected, output = expected.casefold(), output.casefold()
        if expected in output:
            return result(spec, True, 1.0, "Found expected substring")
        return result(spec, False, 0.0, f"Expected substring {_shown(as_text(spec.target))} not found")


def _terms(target: Any) -> list[str]:
    if isinstance(target, list):
        return [as_text(t) for t in target]
    return [part.strip() for part in as_text(target).split(",") if part.strip()]


class ContainsSeveral:
    """contains_all (every term) and contains_any (one term is enough)."""

    def __init__(self, every: bool, ignore_case: bool) -> None:
        self._every = every
        self._ignore_case = ignore_case

    def problems(self, spec: GraderSpec) -> list[str]:
        if not _terms(spec.target):
            return [f"{spec.type} needs `expected`: a list of texts (or one text, comma-separated)"]
        return []

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        terms = _terms(spec.target)
        output = context.output.casefold() if self._ignore_case else context.output
        found = [t for t in terms if (t.casefold() if self._ignore_case else t) in output]
        missing = [t for t in terms if t not in found]
        if self._every:
            passed = not missing
            message = "Found every expected substring" if passed else f"Missing {', '.join(map(_shown, missing))}"
            return result(spec, passed, len(found) / len(terms), message)
        passed = bool(found)
        message = f"Found {_shown(found[0])}" if passed else f"None of {', '.join(map(_shown, terms))} found"
        return result(spec, passed, 1.0 if passed else 0.0, message)


class Equals:
    """Texts are compared with surrounding whitespace trimmed; a non-text `expected`
    (a number, object, list) is compared with the output read as JSON."""

    def problems(self, spec: GraderSpec) -> list[str]:
        return [] if spec.target is not None else ["equals needs `expected` (or `value`)"]

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        target = spec.target
        if isinstance(target, str):
            passed = context.output.strip() == target.strip()
            return result(
                spec,
                passed,
                float(passed),
                "Output equals the expected text"
                if passed
                else (f"Expected {_shown(target.strip())}, got {_shown(context.output.strip())}"),
            )
        try:
            value = json.loads(context.output)
        except ValueError:
            return result(spec, False, 0.0, f"Expected the JSON value {_shown(json.dumps(target))}; output is not JSON")
        passed = value == target
        message = "Output equals the expected value" if passed else f"Expected {_shown(json.dumps(target))}"
        return result(spec, passed, float(passed), message)


class Regex:
    def problems(self, spec: GraderSpec) -> list[str]:
        found = _needs_text(spec)
        if found:
            return found
        try:
            re.compile(as_text(spec.target))
        except re.error as exc:
            return [f"regex {as_text(spec.target)!r} does not compile: {exc}"]
        return []

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        pattern = as_text(spec.target)
        match = re.search(pattern, context.output)
        if match:
            return result(spec, True, 1.0, f"Matched {_shown(match.group(0))}")
        return result(spec, False, 0.0, f"No match for /{pattern}/")


class StartsWith:
    """Leading whitespace of the output is not counted (models often begin with a newline)."""

    def problems(self, spec: GraderSpec) -> list[str]:
        return _needs_text(spec)

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        expected = as_text(spec.target)
        passed = context.output.lstrip().startswith(expected)
        message = "Output starts with the expected text" if passed else f"Output does not start with {_shown(expected)}"
        return result(spec, passed, float(passed), message)
