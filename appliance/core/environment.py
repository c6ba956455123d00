"""Environment variables a request gives a sandbox: one set of rules for an execution's
(POST /api/execute, /ws/execute) and a persistent sandbox's (POST and PUT /api/sandboxes).

Names as POSIX shells take them (`[A-Za-z_][A-Za-z0-9_]*`, at most `MAX_NAME_CHARS`), at
most `MAX_VARS` variables and `MAX_BYTES` in all, no NUL. Refused: what the sandbox
itself sets and its runner and compilers rely on (`PATH`, `HOME`, `TMPDIR`, `PWD`), and
the dynamic loader's `LD_*`, which would reach into every process the sandbox starts.
"""

from __future__ import annotations

import re

from appliance.core.errors import ValidationError

MAX_VARS = 100
MAX_NAME_CHARS = 256
MAX_BYTES = 64 * 1024  # names and values together
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = frozenset({"PATH", "HOME", "TMPDIR", "PWD"})
RESERVED_PREFIXES = ("LD_",)


def environment_problem(values: dict[str, str]) -> str | None:
    """Why these variables cannot be a sandbox's environment, or None."""
    if len(values) > MAX_VARS:
        return f"{len(values)} environment variables; at most {MAX_VARS}"
    for name, value in values.items():
        shown = repr(name if len(name) <= 60 else name[:57] + "...")
        if len(name) > MAX_NAME_CHARS or not NAME.match(name):
            return (
                f"environment variable name {shown} is not valid: use letters, digits and _, not starting with a digit"
            )
        if name in RESERVED or name.startswith(RESERVED_PREFIXES):
            return (
                f"environment variable {shown} is set by the sandbox and cannot "
                f"be overridden (reserved: {', '.join(sorted(RESERVED))}, LD_*)"
            )
        if "\0" in value:
            return f"environment variable {shown} contains a NUL character"
    size = sum(len(name.encode()) + len(value.encode()) + 2 for name, value in values.items())
    if size > MAX_BYTES:
        return f"environment holds {size} bytes; at most {MAX_BYTES}"
    return None


def check_environment(values: dict[str, str] | None) -> dict[str, str]:
    """The variables, or a ValidationError on the field `environment`."""
    values = values or {}
    problem = environment_problem(values)
    if problem is not None:
        raise ValidationError(problem, details={"field": "environment", "reason": problem})
    return dict(values)
