"""Run tags: labels to find runs by (`filter[tag]` on run lists) and to group them by in a
statistical test (`group_field` `tags` or `tags.<key>`, services/statistics/sources.py).

A tag is 1 to 64 letters, digits or `_ . : / = + @ -` (no spaces, commas or braces). By
convention a tag `<key>:<value>` (`model:gpt4`) says which value of `<key>` a run has,
and statistics can compare runs by that value. A run has at most `MAX_RUN_TAGS`; a tag
given twice counts once.

Where they come from:
- a planned run: the config's `run_tags`, a list of tag patterns in which `{name}` is the
  run's value of hyperparameter `name` (`["baseline", "model:{model}"]` gives the run of
  point `{"model": "gpt4"}` the tags `baseline` and `model:gpt4`); every name a pattern
  uses must be a hyperparameter of every planned point;
- an external run: `tags` when it is created over the API;
- a run's program, while it runs: a stdout line `{"tags": ["..."]}` adds tags
  (services/experiments/output.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from appliance.core.experiments import JsonObject
from appliance.services.experiments.config import invalid

MAX_RUN_TAGS = 32
TAG_RULE = "1 to 64 letters, digits or _ . : / = + @ - (no spaces, commas or braces)"
_TAG = re.compile(r"^[A-Za-z0-9_.:/=+@\-]{1,64}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def is_tag(text: object) -> bool:
    return isinstance(text, str) and _TAG.match(text) is not None


def check_tags(tags: Iterable[object], field: str, current: Sequence[str] = ()) -> list[str]:
    """`current` with `tags` added (in order, once each), or a ValidationError naming `field`."""
    merged = list(current)
    for tag in tags:
        if not is_tag(tag):
            shown = repr(tag)[:80]
            raise invalid(field, f"{field}: {shown} is no tag: a tag is {TAG_RULE}")
        assert isinstance(tag, str)
        if tag not in merged:
            merged.append(tag)
    if len(merged) > MAX_RUN_TAGS:
        raise invalid(field, f"{field}: a run has at most {MAX_RUN_TAGS} tags")
    return merged


def check_patterns(patterns: Sequence[str], points: Sequence[JsonObject]) -> None:
    """Every tag every planned point gets from `patterns` (the config's run_tags) is a
    tag; a ValidationError naming config.run_tags otherwise."""
    field = "config.run_tags"
    for i, pattern in enumerate(patterns):
        names = _PLACEHOLDER.findall(pattern)
        if not is_tag(_PLACEHOLDER.sub("x", pattern)):
            raise invalid(
                f"{field}.{i}",
                f"{field}.{i}: {pattern[:80]!r} is no tag pattern: a tag is {TAG_RULE}, and {{name}} stands for "
                "the value of hyperparameter name",
            )
        for name in names:
            missing = next((p for p in points if name not in p), None)
            if missing is not None:
                raise invalid(
                    f"{field}.{i}",
                    f"{field}.{i}: {{{name}}} names no hyperparameter of every planned run "
                    f"(the point {_short(missing)} has none)",
                )
    for point in points:
        check_tags(expand(patterns, point), field)


def expand(patterns: Sequence[str], hyperparameters: JsonObject) -> list[str]:
    """The tags of a planned run with these hyperparameters (patterns checked before)."""
    tags: list[str] = []
    for pattern in patterns:
        tag = _PLACEHOLDER.sub(lambda m: _text(hyperparameters[m.group(1)]), pattern)
        if tag not in tags:
            tags.append(tag)
    return tags


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(point: JsonObject) -> str:
    text = repr(dict(point))
    return text if len(text) <= 80 else text[:77] + "..."
