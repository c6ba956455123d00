"""Prompts and suites: what their YAML files hold, the rules they keep, and how a prompt
and a case become the messages a model is sent.

A prompt is a text `template` or chat `messages` (system, user and assistant turns),
each in the `{{.name}}` syntax. With `is_system_prompt: true` a text template is the
system turn of the conversations its cases add user turns to; a case with no turn of
its own gets the template as its one user message (a conversation of a system turn
alone is refused by several APIs).

A suite names its prompt and lists cases: each case's `input` fills the templates, its
`turns` go on the conversation (a user turn after a user turn is answered by the model
first: multi-turn cases replay a dialogue), and its `evaluators`, with the suite's own,
grade the last answer.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from appliance.core.errors import ValidationError
from appliance.core.llm.calls import ChatMessage, Parameters, parameter_problems
from appliance.core.llm.grading import GraderSpec, normalize_type
from appliance.core.llm.templates import render, template_problems

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,31}$")
CASE_ID = re.compile(r"^[^\x00-\x1f]{1,200}$")
NAME_RULE = "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
VERSION_RULE = "must be 1-32 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
MAX_CASES = 100_000

Problems = dict[str, list[str]]


class Turn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    content: str


class Prompt(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    version: str = "1.0"
    description: str = ""
    is_system_prompt: bool = False
    template: str = ""
    messages: list[Turn] = msgspec.field(default_factory=list)
    parameters: Parameters | None = None


class Case(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    id: str = ""  # default: test-<its 1-based place>
    description: str = ""
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    turns: list[Turn] = msgspec.field(default_factory=list)
    evaluators: list[GraderSpec] = msgspec.field(default_factory=list)
    threshold: float | None = None


class Suite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    version: str = "1.0"
    description: str = ""
    prompt: str = ""
    prompt_version: str | None = None
    # A model registry entry (id or name) the suite runs on when a request names none.
    model: str | None = None
    evaluators: list[GraderSpec] = msgspec.field(default_factory=list)  # every case's too
    cases: list[Case] = msgspec.field(default_factory=list)


def with_case_ids(suite: Suite) -> Suite:
    """Cases without an id get `test-<n>`, n their 1-based place."""
    cases = [c if c.id else msgspec.structs.replace(c, id=f"test-{i + 1}") for i, c in enumerate(suite.cases)]
    return msgspec.structs.replace(suite, cases=cases)


# --- versions ------------------------------------------------------------------------------


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Orders versions as people read them: 1.2 < 1.10 < 2.0; a part that is not a
    number sorts after the numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.+_-]", version))


def next_version(version: str) -> str:
    """The version after `version`: its last number one up (1.0 -> 1.1), or `.1` added."""
    match = re.search(r"(\d+)$", version)
    if match is None:
        return f"{version}.1"
    return version[: match.start()] + str(int(match.group(1)) + 1)


# --- rules ---------------------------------------------------------------------------------


def _name_problems(name: str, version: str) -> Problems:
    problems: Problems = {}
    if not NAME.match(name):
        problems["name"] = [NAME_RULE]
    if not VERSION.match(version):
        problems["version"] = [VERSION_RULE]
    return problems


def _turn_problems(turns: list[Turn], path: str, roles: tuple[str, ...]) -> Problems:
    problems: Problems = {}
    for index, turn in enumerate(turns):
        if turn.role not in roles:
            problems[f"{path}[{index}].role"] = [f"must be one of {', '.join(roles)}"]
        found = template_problems(turn.content)
        if found:
            problems[f"{path}[{index}].content"] = found
    return problems


def prompt_problems(prompt: Prompt) -> Problems:
    problems = _name_problems(prompt.name, prompt.version)
    if bool(prompt.template) == bool(prompt.messages):
        problems["template"] = ["give a text `template` or chat `messages`, one of the two"]
    found = template_problems(prompt.template)
    if found:
        problems["template"] = found
    problems.update(_turn_problems(prompt.messages, "messages", ("system", "user", "assistant")))
    if prompt.parameters is not None:
        problems.update(parameter_problems(prompt.parameters))
    return problems


def grader_problems(spec: GraderSpec, path: str) -> Problems:
    """What is wrong with one grader as written (its type, its numbers); what each type
    needs beyond that is checked by the grader itself (services/llm/graders)."""
    problems: Problems = {}
    try:
        normalize_type(spec.type)
    except ValidationError as exc:
        problems[f"{path}.type"] = [exc.detail]
    if spec.weight < 0:
        problems[f"{path}.weight"] = ["must be 0 or more"]
    if spec.threshold is not None and not 0 <= spec.threshold <= 1:
        problems[f"{path}.threshold"] = ["must be a number from 0 to 1"]
    if spec.timeout is not None and spec.timeout <= 0:
        problems[f"{path}.timeout"] = ["must be more than 0 seconds"]
    return problems


def suite_problems(suite: Suite) -> Problems:
    problems = _name_problems(suite.name, suite.version)
    if not NAME.match(suite.prompt):
        problems["prompt"] = ["name the prompt the suite's cases are sent with; it " + NAME_RULE]
    if suite.prompt_version is not None and not VERSION.match(suite.prompt_version):
        problems["prompt_version"] = [VERSION_RULE]
    if not suite.cases:
        problems["cases"] = ["a suite needs at least one case"]
    elif len(suite.cases) > MAX_CASES:
        problems["cases"] = [f"at most {MAX_CASES} cases"]
    for index, spec in enumerate(suite.evaluators):
        problems.update(grader_problems(spec, f"evaluators[{index}]"))
    seen: set[str] = set()
    for index, case in enumerate(with_case_ids(suite).cases):
        path = f"cases[{index}]"
        if not CASE_ID.match(case.id):
            problems[f"{path}.id"] = ["must be 1-200 characters without control characters"]
        elif case.id in seen:
            problems[f"{path}.id"] = [f"{case.id!r} is the id of an earlier case too"]
        seen.add(case.id)
        problems.update(_turn_problems(case.turns, f"{path}.turns", ("user", "assistant")))
        if case.turns and case.turns[-1].role != "user":
            problems[f"{path}.turns"] = ["the last turn must be the user's: the model answers it"]
        if case.threshold is not None and not 0 <= case.threshold <= 1:
            problems[f"{path}.threshold"] = ["must be a number from 0 to 1"]
        for number, spec in enumerate(case.evaluators):
            problems.update(grader_problems(spec, f"{path}.evaluators[{number}]"))
    return problems


# --- conversations -------------------------------------------------------------------------


def opening(prompt: Prompt, values: dict[str, Any], has_turns: bool) -> list[ChatMessage]:
    """The prompt's part of a conversation, rendered (MissingVariable if `values` lacks
    one); `has_turns`: the case adds turns of its own."""
    where = f"prompt {prompt.name!r}"
    if prompt.messages:
        return [ChatMessage(t.role, render(t.content, values, where)) for t in prompt.messages]
    text = render(prompt.template, values, where)
    role = "system" if prompt.is_system_prompt and has_turns else "user"
    return [ChatMessage(role, text)]


def case_turns(case: Case, where: str) -> list[ChatMessage]:
    return [ChatMessage(t.role, render(t.content, case.input, where)) for t in case.turns]


# --- what the library lists ----------------------------------------------------------------


class PromptSummary(msgspec.Struct, kw_only=True):
    name: str
    version: str  # the latest
    is_system_prompt: bool
    description: str = ""
    versions: list[str] = msgspec.field(default_factory=list)  # oldest first
    source: str = "data"  # "builtin": shipped with the appliance; "data": DATA_DIR


class PromptDetail(msgspec.Struct, kw_only=True):
    name: str
    version: str
    is_system_prompt: bool
    template: str
    messages: list[Turn] = msgspec.field(default_factory=list)
    description: str = ""
    parameters: Parameters | None = None
    variables: list[str] = msgspec.field(default_factory=list)
    versions: list[str] = msgspec.field(default_factory=list)
    source: str = "data"


class SuiteSummary(msgspec.Struct, kw_only=True):
    name: str
    prompt: str
    case_count: int
    version: str = "1.0"
    description: str = ""
    versions: list[str] = msgspec.field(default_factory=list)
    source: str = "data"


class PromptFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A prompt as POST/PUT /api/v1/prompts take it: no version, the next one."""

    name: str | None = None  # PUT takes it from the path
    version: str | None = None
    description: str = ""
    is_system_prompt: bool = False
    template: str = ""
    messages: list[Turn] = msgspec.field(default_factory=list)
    parameters: Parameters | None = None

    def prompt(self, name: str, version: str) -> Prompt:
        return Prompt(
            name=name,
            version=version,
            description=self.description,
            is_system_prompt=self.is_system_prompt,
            template=self.template,
            messages=self.messages,
            parameters=self.parameters,
        )


class SuiteFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A suite as POST/PUT /api/v1/suites take it: no version, the next one."""

    name: str | None = None
    version: str | None = None
    description: str = ""
    prompt: str = ""
    prompt_version: str | None = None
    model: str | None = None
    evaluators: list[GraderSpec] = msgspec.field(default_factory=list)
    cases: list[Case] = msgspec.field(default_factory=list)

    def suite(self, name: str, version: str) -> Suite:
        return Suite(
            name=name,
            version=version,
            description=self.description,
            prompt=self.prompt,
            prompt_version=self.prompt_version,
            model=self.model,
            evaluators=self.evaluators,
            cases=self.cases,
        )


class PromptfooImport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/suites/import: a promptfoo config (YAML or JSON text)."""

    name: str
    config: str


class ImportedSuites(msgspec.Struct, kw_only=True):
    suites: list[SuiteSummary]
    prompts: list[PromptSummary]
    notes: list[str] = msgspec.field(default_factory=list)  # what was not taken over, and why
