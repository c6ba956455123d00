"""Templates in the document's Go-template syntax: `{{.user_request}}`, with dotted
paths into nested inputs (`{{.user.name}}`). Nothing else of Go's template language is
taken: a template with any other `{{ ... }}` action is refused when it is saved, so a
typo never reaches a model as literal braces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from appliance.core.errors import ValidationError

PLACEHOLDER = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class MissingVariable(ValidationError):
    """The input does not give a value a template needs."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"{where} needs the variable {name!r}, which the input does not give",
            details={"field": f"input.{name}", "reason": "missing variable"},
        )
        self.name = name


def template_problems(text: str) -> list[str]:
    """Actions in `text` that are not `{{.name}}` placeholders."""
    return [
        f"{action!r} is not a placeholder; write {{{{.name}}}} (letters, digits, _ and dots)"
        for action in ACTION.findall(text)
        if not PLACEHOLDER.fullmatch(action)
    ]


def variables(text: str) -> list[str]:
    """The variables `text` uses, each once, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def _lookup(values: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    current: Any = values
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def as_text(value: Any) -> str:
    """A value as a template writes it: text as it is, JSON for everything else."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def render(text: str, values: Mapping[str, Any], where: str = "the template") -> str:
    """`text` with every placeholder replaced; MissingVariable names the first that
    `values` does not give."""

    def replace(match: re.Match[str]) -> str:
        found, value = _lookup(values, match.group(1))
        if not found:
            raise MissingVariable(match.group(1), where)
        return as_text(value)

    return PLACEHOLDER.sub(replace, text)


def from_double_braces(text: str) -> str:
    """promptfoo's (Nunjucks) `{{ name }}` placeholders as this syntax's `{{.name}}`."""
    return re.sub(
        r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}", lambda m: f"{{{{.{m.group(1)}}}}}", text
    )
