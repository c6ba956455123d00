"""The programs the `code` and `python` graders run in a sandbox, and how their ends
are read.

A `code` program is the spec's `prefix`, the model's code (the first fenced block in
the language asked, else the first block, else the whole answer), the `tests`, and for
Python `check(entry_point)` when an entry point is named: HumanEval's layout. It passes
when it exits 0 and, for Python, its last line is a marker printed after the tests: a
model's code that exits early with status 0 (`os._exit(0)`, `sys.exit()` in a
finally) has not passed the tests and does not pass.

A `python` (custom) grader gets the output and a context (the case's input as `vars`,
`case_id`, the `prompt` answered, `expected`) as JSON, base64-encoded into its program
so no output can break out of a string; its answer (bool, number, or a dict with
pass/score/reason, as promptfoo's) comes back after a marker on stdout.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import textwrap
from typing import Any

from appliance.core.evaluations import EvalStatus, Evaluation

FENCE = re.compile(r"```([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
LANGUAGE_TAGS = {
    "python": ("python", "py", "python3"),
    "javascript": ("javascript", "js", "node"),
    "typescript": ("typescript", "ts"),
    "go": ("go", "golang"),
    "rust": ("rust", "rs"),
    "java": ("java",),
    "c": ("c",),
    "cpp": ("cpp", "c++", "cc", "cxx"),
    "bash": ("bash", "sh", "shell"),
}


def new_marker() -> str:
    return f"__appliance_grader_{secrets.token_hex(12)}__"


def extract_code(output: str, language: str) -> str:
    blocks = FENCE.findall(output)
    if not blocks:
        return output.strip("\n")
    tags = LANGUAGE_TAGS.get(language, (language,))
    for tag, body in blocks:
        if tag.lower() in tags:
            return str(body)
    return str(blocks[0][1])


def code_program(
    candidate: str, *, prefix: str, tests: str, entry_point: str | None, language: str, marker: str
) -> str:
    parts = [p for p in (prefix, candidate, tests) if p.strip()]
    if language == "python":
        if entry_point:
            parts.append(f"check({entry_point})")
        parts.append(f"print({marker!r}, flush=True)")
    return "\n\n".join(parts) + "\n"


def _encoded(value: Any) -> str:
    return base64.b64encode(json.dumps(value, ensure_ascii=False).encode()).decode()


def _is_expression(source: str) -> bool:
    """promptfoo's one-line form (`output.strip() == '42'`); anything else (`return x`,
    statements) is a function's body. Only compiled here, never run in the server."""
    if "\n" in source.strip():
        return False
    try:
        compile(source.strip(), "<grader>", "eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def grader_program(code: str, output: str, context: dict[str, Any], marker: str) -> str:
    source = textwrap.dedent(code).strip("\n")
    if re.search(r"^def (grade|get_assert)\(", source, re.MULTILINE):
        name = "grade" if re.search(r"^def grade\(", source, re.MULTILINE) else "get_assert"
        body, call = source, f"{name}(output, context)"
    elif _is_expression(source):
        body, call = "", f"({source.strip()})"
    else:
        body, call = "def __grade(output, context):\n" + textwrap.indent(source, "    "), "__grade(output, context)"
    return f"""import base64 as __b64, json as __json
output = __json.loads(__b64.b64decode({_encoded(output)!r}).decode("utf-8"))
context = __json.loads(__b64.b64decode({_encoded(context)!r}).decode("utf-8"))

{body}

__result = {call}


def __answer(value):
    if isinstance(value, bool):
        return {{"pass": value, "score": 1.0 if value else 0.0, "reason": ""}}
    if isinstance(value, (int, float)):
        return {{"pass": None, "score": float(value), "reason": ""}}
    if isinstance(value, dict):
        passed = value.get("pass", value.get("passed"))
        score = value.get("score")
        reason = value.get("reason", value.get("message", ""))
        return {{"pass": None if passed is None else bool(passed),
                 "score": None if score is None else float(score), "reason": str(reason)}}
    raise TypeError("a grader returns a bool, a number or a dict with pass, score and reason, not %r" % (value,))


print({marker!r} + __json.dumps(__answer(__result)), flush=True)
"""


def last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:500]


def why_failed(evaluation: Evaluation) -> str:
    """One line on why a program did not pass."""
    if evaluation.status is EvalStatus.TIMEOUT:
        return f"timed out after {evaluation.timeout:g} s ({evaluation.reason or 'timeout'})"
    if evaluation.reason and evaluation.reason not in ("output_truncated",):
        detail = last_lines(evaluation.error, 1)
        return f"{evaluation.reason}" + (f": {detail}" if detail else "")
    if evaluation.exit_code not in (0, None):
        return f"exit code {evaluation.exit_code}: {last_lines(evaluation.error) or last_lines(evaluation.output)}"
    return "ended before the tests finished (its last line is not the grader's marker)"


def marker_line(output: str, marker: str) -> str | None:
    """What follows the last line starting with `marker`, or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(marker):
            return line[len(marker) :]
    return None


def tests_passed(evaluation: Evaluation, marker: str, language: str) -> bool:
    if evaluation.status is not EvalStatus.COMPLETED or evaluation.exit_code != 0:
        return False
    if language != "python":
        return True
    lines = [line for line in evaluation.output.splitlines() if line.strip()]
    return bool(lines) and lines[-1] == marker
