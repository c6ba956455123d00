"""`/api/eval*` and `/api/evaluations`: submit, batch, status, logs, kill, history."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import Parameter

from appliance.core.identity import Identity
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
from appliance.services.evaluation.evaluations import EvalRequest, EvaluationService

QUEUED_MESSAGE = "Evaluation queued successfully"


class EvaluationController(Controller):
    path = "/api"
    tags = ["evaluations"]

    @post("/eval", status_code=200, summary="Submit an evaluation")
    async def submit(self, evaluations: EvaluationService, identity: Identity, data: EvalRequest) -> EvalSubmitted:
        evaluation, position = await evaluations.submit(identity, data)
        return EvalSubmitted(
            eval_id=evaluation.eval_id, status=evaluation.status.value, message=QUEUED_MESSAGE, queue_position=position
        )

    @post("/eval-batch", status_code=200, summary="Submit several evaluations", opt={"rate_bucket": "batch"})
    async def submit_batch(
        self, evaluations: EvaluationService, identity: Identity, data: BatchRequest
    ) -> BatchSubmitted:
        submitted = await evaluations.submit_batch(identity, data.evaluations or [])
        items = [BatchItem(eval_id=e.eval_id, status=e.status.value, message=QUEUED_MESSAGE) for e in submitted]
        return BatchSubmitted(
            evaluations=items, total=len(items), queued=len(items), failed=0, batch_id=submitted[0].batch_id
        )

    @get("/eval-status/{eval_id:str}", summary="Status and result of an evaluation")
    async def status(self, evaluations: EvaluationService, identity: Identity, eval_id: str) -> EvalStatusBody:
        return EvalStatusBody.of(await evaluations.get(identity, eval_id))

    @get("/eval/{eval_id:str}/logs", summary="Output so far, also while running")
    async def logs(self, evaluations: EvaluationService, identity: Identity, eval_id: str) -> LogsBody:
        view = await evaluations.logs(identity, eval_id)
        return LogsBody(
            eval_id=eval_id,
            output=view.output,
            error=view.error,
            is_running=view.is_running,
            exit_code=view.evaluation.exit_code,
            status=view.evaluation.status.value,
        )

    @post("/eval/{eval_id:str}/kill", status_code=200, summary="Terminate a queued or running evaluation")
    async def kill(self, evaluations: EvaluationService, identity: Identity, eval_id: str) -> KillBody:
        killed, message = await evaluations.kill(identity, eval_id)
        return KillBody(eval_id=eval_id, killed=killed, message=message)

    @get("/evaluations", summary="Evaluation history, newest first")
    async def history(
        self,
        evaluations: EvaluationService,
        identity: Identity,
        limit: int = Parameter(default=100, ge=1, le=1000),
        offset: int = Parameter(default=0, ge=0),
        status: str | None = None,
    ) -> EvaluationList:
        page, total = await evaluations.list(identity, limit=limit, offset=offset, status=status)
        return EvaluationList(
            evaluations=[EvaluationSummary.of(e) for e in page],
            count=total,
            limit=limit,
            offset=offset,
            has_more=offset + len(page) < total,
        )

    @post("/auth/token", status_code=200, tags=["auth"], summary="Exchange an API key for a JWT")
    async def token(self, auth: AuthService, identity: Identity) -> TokenBody:
        token, ttl = auth.issue_token(identity)
        return TokenBody(access_token=token, token_type="bearer", expires_in=ttl)
