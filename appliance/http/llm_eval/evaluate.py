"""POST /api/v1/evaluate, POST /api/v1/suite, and the runs they keep under
/api/v1/suite-runs (an addition of the appliance: transcripts and progress)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.core.llm.runs import EvaluateRequest, EvaluationResult, RunStatus, SuiteRequest, SuiteResult, SuiteRun
from appliance.core.paging import MAX_OFFSET
from appliance.http.error_docs import errors, example
from appliance.http.llm_eval.schemas import RunList
from appliance.services.llm.evaluate import LlmEvaluationService, SuiteRunView

# The document's own examples.
EVALUATE_EXAMPLE = example(
    "The shipped example prompt",
    {
        "prompt": "example",
        "input": {"user_request": "Hello world"},
        "evaluators": [
            {"type": "contains", "expected": "hello"},
            {"type": "llm_judge", "criteria": "Response should be friendly"},
        ],
    },
)
SUITE_EXAMPLE = example("The shipped example suite", {"prompt": "example", "suite": "example-tests", "trials": 3})


class EvaluateController(Controller):
    path = "/api/v1"
    tags = ["llm evaluation"]

    @post(
        "/evaluate",
        status_code=200,
        summary="Run one evaluation of a prompt",
        opt=errors(403, 404, 502, 503, 504),
    )
    async def evaluate(
        self, llm: LlmEvaluationService, identity: Identity, data: Annotated[EvaluateRequest, EVALUATE_EXAMPLE]
    ) -> EvaluationResult:
        return await llm.evaluate(identity, data)

    @post(
        "/suite",
        status_code=200,
        summary="Run a test suite (wait: false answers 202 at once)",
        responses={
            202: ResponseSpec(
                SuiteResult,
                description="wait: false: the run started (status running); GET /api/v1/suite-runs/{id} follows it.",
            )
        },
        opt=errors(403, 404, 502, 503, 504),
    )
    async def run_suite(
        self, llm: LlmEvaluationService, identity: Identity, data: Annotated[SuiteRequest, SUITE_EXAMPLE]
    ) -> Response[SuiteResult]:
        result = await llm.run_suite(identity, data)
        return Response(result, status_code=202 if result.status == RunStatus.RUNNING.value else 200)


class SuiteRunController(Controller):
    path = "/api/v1/suite-runs"
    tags = ["llm evaluation"]

    @get("/", summary="Suite runs and evaluate calls, newest first", opt=errors(403))
    async def list_runs(
        self,
        llm: LlmEvaluationService,
        identity: Identity,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> RunList:
        runs, total = await llm.list_runs(identity, limit, offset)
        return RunList(runs=runs, total=total)

    @get("/{run_id:str}", summary="A run, its progress, result and transcripts", opt=errors(403, 404))
    async def get_run(
        self,
        llm: LlmEvaluationService,
        identity: Identity,
        run_id: str,
        case_id: str | None = None,
        limit: Annotated[int, Parameter(ge=0, le=10_000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> SuiteRunView:
        return await llm.get_run(identity, run_id, case_id=case_id, limit=limit, offset=offset)

    @delete("/{run_id:str}", status_code=200, summary="Cancel a running suite", opt=errors(403, 404, 409))
    async def cancel_run(self, llm: LlmEvaluationService, identity: Identity, run_id: str) -> SuiteRun:
        return await llm.cancel(identity, run_id)
