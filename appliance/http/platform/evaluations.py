"""`/api/eval*` and `/api/evaluations`: submit, batch, status, logs, kill, history."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.core.paging import MAX_OFFSET
from appliance.http.error_docs import errors, example
from appliance.http.platform.schemas import (
    BatchItem,
    BatchRequest,
    BatchSubmitted,
    EvalStatusBody,
    EvalSubmitted,
    EvaluationList,
    EvaluationSummary,
    KillBody,
    LogsBody,
    TokenBody,
)
from appliance.services.access.auth import AuthService
from appliance.services.evaluation.evaluations import MAX_PAGE, EvalRequest, EvaluationService

QUEUED_MESSAGE = "Evaluation queued successfully"
WAIT_DESCRIPTION = (
    "Seconds to hold the answer until the evaluation ends (completed, failed or timeout); answered at once "
    "when it has ended, and with its state as it is when the wait is over. At most the setting "
    "status_wait_max_seconds (default 60); out of range: 400."
)
BATCH_EXAMPLE = {"evaluations": [{"code": "print(1)"}, {"code": "echo 2", "language": "bash"}]}


class EvaluationController(Controller):
    path = "/api"
    tags = ["evaluations"]

    @post("/eval", status_code=200, summary="Submit an evaluation", opt=errors(403, 503))
    async def submit(
        self,
        evaluation_service: EvaluationService,
        identity: Identity,
        data: Annotated[EvalRequest, example("Python", {"code": "print(6 * 7)", "language": "python", "timeout": 5})],
    ) -> EvalSubmitted:
        evaluation, position = await evaluation_service.submit(identity, data)
        return EvalSubmitted(
            eval_id=evaluation.eval_id, status=evaluation.status.value, message=QUEUED_MESSAGE, queue_position=position
        )

    @post(
        "/eval-batch",
        status_code=200,
        summary="Submit several evaluations",
        opt={"rate_bucket": "batch", **errors(403, 503)},
    )
    async def submit_batch(
        self,
        evaluation_service: EvaluationService,
        identity: Identity,
        data: Annotated[BatchRequest, example("Two programs", BATCH_EXAMPLE)],
    ) -> BatchSubmitted:
        submitted = await evaluation_service.submit_batch(identity, data.evaluations or [])
        items = [BatchItem(eval_id=e.eval_id, status=e.status.value, message=QUEUED_MESSAGE) for e in submitted]
        return BatchSubmitted(
            evaluations=items, total=len(items), queued=len(items), failed=0, batch_id=submitted[0].batch_id
        )

    @get("/eval-status/{eval_id:str}", summary="Status and result of an evaluation", opt=errors(400, 403, 404))
    async def status(
        self,
        evaluation_service: EvaluationService,
        identity: Identity,
        eval_id: str,
        wait: float | None = Parameter(default=None, schema_extra={"minimum": 0}, description=WAIT_DESCRIPTION),
    ) -> EvalStatusBody:
        return EvalStatusBody.of(await evaluation_service.get(identity, eval_id, wait))

    @get("/eval/{eval_id:str}/logs", summary="Output so far, also while running", opt=errors(403, 404))
    async def logs(self, evaluation_service: EvaluationService, identity: Identity, eval_id: str) -> LogsBody:
        view = await evaluation_service.logs(identity, eval_id)
        return LogsBody(
            eval_id=eval_id,
            output=view.output,
            error=view.error,
            is_running=view.is_running,
            exit_code=view.evaluation.exit_code,
            status=view.evaluation.status.value,
        )

    @post(
        "/eval/{eval_id:str}/kill",
        status_code=200,
        summary="Terminate a queued or running evaluation",
        opt=errors(403, 404),
    )
    async def kill(self, evaluation_service: EvaluationService, identity: Identity, eval_id: str) -> KillBody:
        killed, message = await evaluation_service.kill(identity, eval_id)
        return KillBody(eval_id=eval_id, killed=killed, message=message)

    @get("/evaluations", summary="Evaluation history, newest first", opt=errors(403))
    async def history(
        self,
        evaluation_service: EvaluationService,
        identity: Identity,
        # The service checks the bounds (its messages); the schema says them, exactly (Litestar's
        # own le= would write MAX_OFFSET as a float, 2**63).
        limit: int = Parameter(default=100, schema_extra={"minimum": 1, "maximum": MAX_PAGE}),
        offset: int = Parameter(default=0, schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
        status: str | None = None,
    ) -> EvaluationList:
        page, total = await evaluation_service.list(identity, limit=limit, offset=offset, status=status)
        return EvaluationList(
            evaluations=[EvaluationSummary.of(e) for e in page],
            count=total,
            limit=limit,
            offset=offset,
            has_more=offset + len(page) < total,
        )

    @post("/auth/token", status_code=200, tags=["auth"], summary="Exchange an API key for a JWT", opt=errors(403))
    async def token(self, auth: AuthService, identity: Identity) -> TokenBody:
        token, ttl = auth.issue_token(identity)
        return TokenBody(access_token=token, token_type="bearer", expires_in=ttl)
