"""A promptfoo config (promptfooconfig.yaml) as prompts and suites of this library.

Taken over: `prompts` (texts, {raw|id|label} objects, chat prompts written as a JSON
list of {role, content}), `tests` with `vars`, `assert` (type, value, threshold,
weight; promptfoo's type names map to the graders', `not-` included), `threshold`,
`description`, and `defaultTest`'s assertions and vars; Nunjucks `{{ var }}` becomes
`{{.var}}`. One prompt makes one suite named as asked; several make `<name>-1`,
`<name>-2`, ... each with its own prompt. `providers` are not imported (the registry
holds models, with their keys kept out of files): the suites run on the model a request
names or the default, and the notes say which providers the config named. What cannot
be taken over (file:// references, JavaScript, list-valued vars that promptfoo expands)
is refused with the reason, never dropped silently.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import yaml

from appliance.core.errors import ValidationError
from appliance.core.llm.grading import GraderSpec
from appliance.core.llm.prompts import Case, PromptFields, SuiteFields, Turn
from appliance.core.llm.templates import from_double_braces
from appliance.services.llm.library import Loader

ASSERTION_FIELDS = {"type", "value", "threshold", "weight"}
IGNORED_FIELDS = {"metric", "description"}


def _refuse(message: str) -> ValidationError:
    return ValidationError(f"this promptfoo config cannot be imported: {message}", details={"field": "config"})


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _refuse(f"{where} must be a text")
    if value.strip().startswith("file://"):
        raise _refuse(f"{where} refers to {value.strip()}; files cannot be read here: paste their content")
    return value


def _prompt(entry: Any, index: int) -> PromptFields:
    where = f"prompts[{index}]"
    if isinstance(entry, dict):
        raw = entry.get("raw", entry.get("id"))
        description = str(entry.get("label") or "")
    else:
        raw, description = entry, ""
    text = from_double_braces(_text(raw, where))
    try:
        chat = json.loads(text)
    except ValueError:
        chat = None
    if isinstance(chat, list) and chat and all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in chat):
        turns = [Turn(role=str(t["role"]), content=from_double_braces(str(t["content"]))) for t in chat]
        return PromptFields(description=description, messages=turns)
    return PromptFields(description=description, template=text)


def _assertion(entry: Any, where: str, notes: list[str]) -> GraderSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise _refuse(f"{where} must be an assertion with a type")
    kind = entry["type"]
    unknown = set(entry) - ASSERTION_FIELDS - IGNORED_FIELDS
    if unknown:
        notes.append(f"{where}: {', '.join(sorted(unknown))} not taken over ({kind})")
    value = entry.get("value")
    if isinstance(value, str):
        value = from_double_braces(_text(value, f"{where}.value"))
    spec = GraderSpec(type=kind, weight=float(entry.get("weight", 1.0)))
    bare = kind.lower().removeprefix("not-")
    if bare in ("is-json", "contains-json") and isinstance(value, dict):
        return msgspec.structs.replace(spec, schema=value)
    if bare in ("llm-rubric", "model-graded-closedqa", "g-eval"):
        return msgspec.structs.replace(spec, rubric=value, threshold=entry.get("threshold"))
    if bare == "python":
        return msgspec.structs.replace(spec, code=value, threshold=entry.get("threshold"))
    if bare == "levenshtein":
        notes.append(f"{where}: levenshtein's threshold is an edit distance; imported as character similarity 0.8")
        return msgspec.structs.replace(spec, value=value, threshold=0.8)
    return msgspec.structs.replace(spec, value=value, threshold=entry.get("threshold"))


def _assertions(entries: Any, where: str, notes: list[str]) -> list[GraderSpec]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _refuse(f"{where} must be a list of assertions")
    return [_assertion(entry, f"{where}[{index}]", notes) for index, entry in enumerate(entries)]


def _vars(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        raise _refuse(f"{where} refers to {value}; files cannot be read here: write the vars out")
    if not isinstance(value, dict):
        raise _refuse(f"{where} must be a mapping of variables")
    for name, item in value.items():
        if isinstance(item, list):
            raise _refuse(
                f"{where}.{name} is a list, which promptfoo expands into one test per value: write those tests out"
            )
        if isinstance(item, str) and item.strip().startswith("file://"):
            raise _refuse(f"{where}.{name} refers to {item.strip()}; paste its content")
    return dict(value)


def _case(entry: Any, index: int, defaults: dict[str, Any], notes: list[str]) -> Case:
    where = f"tests[{index}]"
    if not isinstance(entry, dict):
        raise _refuse(f"{where} must be a test (a mapping)")
    threshold = entry.get("threshold")
    return Case(
        id=str(entry.get("id") or f"test-{index + 1}"),
        description=str(entry.get("description") or ""),
        input={**defaults, **_vars(entry.get("vars"), f"{where}.vars")},
        evaluators=_assertions(entry.get("assert"), f"{where}.assert", notes),
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
    )


def _provider_names(providers: Any) -> list[str]:
    items = providers if isinstance(providers, list) else [providers] if providers else []
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            names.append(str(item.get("id") or item.get("label") or next(iter(item), "?")))
    return names


def from_promptfoo(name: str, text: str) -> tuple[list[PromptFields], list[SuiteFields], list[str]]:
    """(prompts, suites, notes) for the config `text`; ValidationError on what cannot
    be taken over."""
    try:
        config = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        raise _refuse(f"not YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise _refuse("the config must be a mapping with prompts and tests")
    notes: list[str] = []
    prompts_given = config.get("prompts")
    if isinstance(prompts_given, str | dict):
        prompts_given = [prompts_given]
    if not isinstance(prompts_given, list) or not prompts_given:
        raise _refuse("it has no prompts")
    tests = config.get("tests")
    if isinstance(tests, str):
        raise _refuse(f"tests refers to {tests}; write the tests out")
    if not isinstance(tests, list) or not tests:
        raise _refuse("it has no tests")
    default = config.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise _refuse("defaultTest must be a mapping")
    shared = _assertions(default.get("assert"), "defaultTest.assert", notes)
    default_vars = _vars(default.get("vars"), "defaultTest.vars")
    cases = [_case(entry, index, default_vars, notes) for index, entry in enumerate(tests)]
    for key in set(config) - {"description", "prompts", "providers", "tests", "defaultTest"}:
        notes.append(f"{key} is not taken over")
    providers = _provider_names(config.get("providers"))
    if providers:
        notes.append(
            f"providers ({', '.join(providers)}) are not imported: run the suite with `model` naming a registry entry, "
            "or on the default model"
        )
    several = len(prompts_given) > 1
    prompts: list[PromptFields] = []
    suites: list[SuiteFields] = []
    description = str(config.get("description") or "")
    for index, entry in enumerate(prompts_given):
        own = f"{name}-{index + 1}" if several else name
        prompt = msgspec.structs.replace(_prompt(entry, index), name=own)
        prompts.append(prompt)
        suites.append(
            SuiteFields(
                name=own,
                description=description or "imported from promptfoo",
                prompt=own,
                evaluators=shared,
                cases=cases,
            )
        )
    return prompts, suites, notes
