"""GET /api/v1/prompts, /api/v1/prompts/{name} and /api/v1/suites as the document
writes them, and the appliance's additions: GET /api/v1/suites/{name}, POST and PUT of
prompts and suites (a new version each), POST /api/v1/suites/import (promptfoo)."""

from __future__ import annotations

from typing import Annotated

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


def _named(fields_name: str | None, path_name: str | None) -> str:
    if path_name is None:
        if not fields_name or not fields_name.strip():
            raise ValidationError("Missing required field: name", details={"field": "name", "reason": "missing"})
        return fields_name.strip()
    if fields_name and fields_name.strip() != path_name:
        raise ValidationError(
            f"the body names {fields_name.strip()!r}, the path {path_name!r}",
            details={"field": "name", "reason": "differs from the path"},
        )
    return path_name


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


def _status(created: bool) -> int:
    return 201 if created else 200


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
        fields = msgspec.structs.replace(data, name=_named(data.name, None))
        detail, created = await llm.library.save_prompt(identity, fields)
        return Response(detail, status_code=_status(created))

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
        fields = msgspec.structs.replace(data, name=_named(data.name, name))
        detail, created = await llm.library.save_prompt(identity, fields)
        return Response(detail, status_code=_status(created))


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
        summary, created = await llm.save_suite(identity, msgspec.structs.replace(data, name=_named(data.name, None)))
        return Response(summary, status_code=_status(created))

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
        summary, created = await llm.save_suite(identity, msgspec.structs.replace(data, name=_named(data.name, name)))
        return Response(summary, status_code=_status(created))

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
