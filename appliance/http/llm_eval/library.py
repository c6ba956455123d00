"""GET /api/v1/prompts, /api/v1/prompts/{name} and /api/v1/suites as the document
writes them, and the appliance's additions: GET /api/v1/suites/{name}, POST and PUT of
prompts and suites (a new version each), POST /api/v1/suites/import (promptfoo)."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec

from appliance.core.errors import ValidationError
from appliance.core.identity import Identity
from appliance.core.llm.prompts import (
    ImportedSuites,
    PromptDetail,
    PromptFields,
    PromptfooImport,
    Suite,
    SuiteFields,
    SuiteSummary,
)
from appliance.http.error_docs import errors, example
from appliance.http.llm_eval.schemas import PromptList, SuiteList
from appliance.services.llm.evaluate import LlmEvaluationService

FieldsT = TypeVar("FieldsT", PromptFields, SuiteFields)
SavedT = TypeVar("SavedT")


def _named(fields: FieldsT, path_name: str | None) -> FieldsT:
    """`fields` with the name it is saved under: the body's on POST, the path's on PUT
    (where the body may repeat it, but not name another)."""
    given = fields.name.strip() if fields.name else ""
    if path_name is None and not given:
        raise ValidationError("Missing required field: name", details={"field": "name", "reason": "missing"})
    if path_name is not None and fields.name and given != path_name:
        raise ValidationError(
            f"the body names {given!r}, the path {path_name!r}",
            details={"field": "name", "reason": "differs from the path"},
        )
    return msgspec.structs.replace(fields, name=given if path_name is None else path_name)


def _saved(saved: tuple[SavedT, bool]) -> Response[SavedT]:
    """A save answers 201 when it made the version, 200 when that version was there."""
    value, created = saved
    return Response(value, status_code=201 if created else 200)


PROMPT = {
    "name": "greeter",
    "is_system_prompt": True,
    "template": "You greet people warmly.\n\nUser: {{.user_request}}",
}
PROMPT_EXAMPLE = example("A template prompt", PROMPT)
NEW_VERSION_EXAMPLE = example("A new version", {k: v for k, v in PROMPT.items() if k != "name"})
SUITE = {
    "name": "greeter-tests",
    "prompt": "example",
    "cases": [
        {"id": "greets", "input": {"user_request": "Hi!"}, "evaluators": [{"type": "icontains", "expected": "hello"}]}
    ],
}
SUITE_EXAMPLE = example("One case on the example prompt", SUITE)
SUITE_VERSION_EXAMPLE = example("A new version", {k: v for k, v in SUITE.items() if k != "name"})
PROMPTFOO_EXAMPLE = example(
    "A promptfoo config",
    {
        "name": "capitals",
        "config": "prompts:\n  - 'What is the capital of {{country}}?'\ntests:\n  - vars: {country: France}\n"
        "    assert:\n      - {type: icontains, value: paris}\n",
    },
)


def unchanged(body: type) -> dict[int, ResponseSpec]:
    """A save answers 201 when it made the version, 200 when that version exists with the
    same content (nothing changed)."""
    return {200: ResponseSpec(body, description="That version exists with the same content: nothing changed.")}


class PromptController(Controller):
    path = "/api/v1/prompts"
    tags = ["prompts"]

    @get("/", summary="List prompts (each at its latest version)", opt=errors(403))
    async def list_prompts(self, llm: LlmEvaluationService, identity: Identity) -> PromptList:
        return PromptList(prompts=await llm.library.list_prompts(identity))

    @get("/{name:str}", summary="Get a prompt (?version=, default the latest)", opt=errors(403, 404))
    async def get_prompt(
        self, llm: LlmEvaluationService, identity: Identity, name: str, version: str | None = None
    ) -> PromptDetail:
        return await llm.library.prompt_detail(identity, name, version)

    @post(
        "/",
        status_code=201,
        responses=unchanged(PromptDetail),
        summary="Create a prompt, or a new version of one",
        opt=errors(403, 409),
    )
    async def create_prompt(
        self, llm: LlmEvaluationService, identity: Identity, data: Annotated[PromptFields, PROMPT_EXAMPLE]
    ) -> Response[PromptDetail]:
        return _saved(await llm.library.save_prompt(identity, _named(data, None)))

    @put(
        "/{name:str}",
        status_code=201,
        responses=unchanged(PromptDetail),
        summary="Save a new version of a prompt",
        opt=errors(403, 409),
    )
    async def update_prompt(
        self,
        llm: LlmEvaluationService,
        identity: Identity,
        name: str,
        data: Annotated[PromptFields, NEW_VERSION_EXAMPLE],
    ) -> Response[PromptDetail]:
        return _saved(await llm.library.save_prompt(identity, _named(data, name)))


class SuiteController(Controller):
    path = "/api/v1/suites"
    tags = ["suites"]

    @get("/", summary="List test suites (each at its latest version)", opt=errors(403))
    async def list_suites(self, llm: LlmEvaluationService, identity: Identity) -> SuiteList:
        return SuiteList(suites=await llm.library.list_suites(identity))

    @get("/{name:str}", summary="Get a suite with its cases (?version=, default the latest)", opt=errors(403, 404))
    async def get_suite(
        self, llm: LlmEvaluationService, identity: Identity, name: str, version: str | None = None
    ) -> Suite:
        return await llm.library.suite_detail(identity, name, version)

    @post(
        "/",
        status_code=201,
        responses=unchanged(SuiteSummary),
        summary="Create a suite, or a new version of one",
        opt=errors(403, 404, 409),
    )
    async def create_suite(
        self, llm: LlmEvaluationService, identity: Identity, data: Annotated[SuiteFields, SUITE_EXAMPLE]
    ) -> Response[SuiteSummary]:
        return _saved(await llm.save_suite(identity, _named(data, None)))

    @put(
        "/{name:str}",
        status_code=201,
        responses=unchanged(SuiteSummary),
        summary="Save a new version of a suite",
        opt=errors(403, 404, 409),
    )
    async def update_suite(
        self,
        llm: LlmEvaluationService,
        identity: Identity,
        name: str,
        data: Annotated[SuiteFields, SUITE_VERSION_EXAMPLE],
    ) -> Response[SuiteSummary]:
        return _saved(await llm.save_suite(identity, _named(data, name)))

    @post(
        "/import",
        status_code=201,
        summary="Import a promptfoo config as prompts and suites",
        opt=errors(403, 409),
    )
    async def import_promptfoo(
        self, llm: LlmEvaluationService, identity: Identity, data: Annotated[PromptfooImport, PROMPTFOO_EXAMPLE]
    ) -> ImportedSuites:
        return await llm.import_promptfoo(identity, data)
