"""The graders that run programs in a sandbox: `code` (the model's code against the
case's tests) and `python` (a custom grader's code, never run in the server)."""

from __future__ import annotations

import json

from appliance.core.languages import find_language, supported_names
from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.core.llm.templates import as_text
from appliance.services.evaluation.evaluations import EvalRequest
from appliance.services.llm.graders.base import GradingContext, result
from appliance.services.llm.graders.programs import (
    code_program,
    extract_code,
    grader_program,
    last_lines,
    marker_line,
    new_marker,
    tests_passed,
    why_failed,
)
from appliance.services.llm.sandboxed import SandboxRunner

DEFAULT_THRESHOLD = 0.5


def _language_problem(spec: GraderSpec) -> list[str]:
    if spec.language and find_language(spec.language) is None:
        return [f"language {spec.language!r} is not one the sandboxes run; one of {', '.join(supported_names())}"]
    return []


def _program_details(evaluation_id: str, output: str, error: str) -> dict[str, str]:
    return {"eval_id": evaluation_id, "stdout": output[-2000:], "stderr": error[-2000:]}


class CodeExecution:
    def __init__(self, sandboxes: SandboxRunner, timeout: float) -> None:
        self._sandboxes = sandboxes
        self._timeout = timeout

    def problems(self, spec: GraderSpec) -> list[str]:
        found = _language_problem(spec)
        if not (spec.tests or "").strip() and spec.target is None:
            found.append(
                "code needs `tests`: code run after the model's (for Python, a `check` function with "
                "`entry_point`, as HumanEval's), or `expected`: what the program must print"
            )
        return found

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        language = find_language(spec.language or "python")
        name = language.name if language else "python"
        candidate = extract_code(context.output, name) if spec.extract_code else context.output
        marker = new_marker()
        program = code_program(
            candidate,
            prefix=spec.prefix or "",
            tests=spec.tests or "",
            entry_point=spec.entry_point,
            language=name,
            marker=marker,
        )
        evaluation = await self._sandboxes.run(
            context.identity, EvalRequest(code=program, language=name, timeout=spec.timeout or self._timeout)
        )
        details = _program_details(evaluation.eval_id, evaluation.output, evaluation.error)
        passed = tests_passed(evaluation, marker, name)
        if passed and spec.target is not None:
            printed = evaluation.output.replace(marker, "").strip()
            if printed != as_text(spec.target).strip():
                return result(
                    spec,
                    False,
                    0.0,
                    f"printed {json.dumps(printed[:200])}, not the expected output",
                    reasoning=last_lines(evaluation.output),
                    details=details,
                )
        if passed:
            return result(spec, True, 1.0, "the tests passed", details=details)
        return result(
            spec,
            False,
            0.0,
            f"the tests failed: {why_failed(evaluation)}",
            reasoning=last_lines(evaluation.error or evaluation.output, 8),
            details=details,
        )


class PythonGrader:
    def __init__(self, sandboxes: SandboxRunner, timeout: float) -> None:
        self._sandboxes = sandboxes
        self._timeout = timeout

    def problems(self, spec: GraderSpec) -> list[str]:
        source = spec.code if spec.code is not None else spec.target
        if not isinstance(source, str) or not source.strip():
            return [
                "python needs `code` (or `value`): a `def grade(output, context)`, an expression, or a "
                "function body that returns a bool, a number or {pass, score, reason}"
            ]
        if source.strip().startswith("file://"):
            return ["python graders are given as code, not file:// paths"]
        return []

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        source = spec.code if spec.code is not None else as_text(spec.target)
        marker = new_marker()
        facts = {
            "vars": context.values,
            "case_id": context.case_id,
            "prompt": context.question,
            "expected": spec.expected,
        }
        evaluation = await self._sandboxes.run(
            context.identity,
            EvalRequest(
                code=grader_program(source, context.output, facts, marker),
                language="python",
                timeout=spec.timeout or self._timeout,
            ),
        )
        details = _program_details(evaluation.eval_id, evaluation.output, evaluation.error)
        said = marker_line(evaluation.output, marker) if evaluation.exit_code == 0 else None
        if said is None:
            return result(
                spec,
                False,
                0.0,
                f"the grader program failed: {why_failed(evaluation)}",
                reasoning=last_lines(evaluation.error or evaluation.output, 8),
                details=details,
            )
        try:
            answer = json.loads(said)
        except ValueError:
            return result(spec, False, 0.0, "the grader program's answer is not JSON", details=details)
        threshold = DEFAULT_THRESHOLD if spec.threshold is None else spec.threshold
        score = answer.get("score")
        passed = answer.get("pass")
        if score is None:
            score = 1.0 if passed else 0.0
        if passed is None:
            passed = float(score) >= threshold
        reason = str(answer.get("reason") or ("pass" if passed else "fail"))
        return result(spec, bool(passed), float(score), reason, details=details)
