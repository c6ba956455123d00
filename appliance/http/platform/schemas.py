"""Request and response bodies of the platform API (platform-api.md), field for field."""

from __future__ import annotations

import msgspec

from appliance.core.clock import iso_z
from appliance.core.cluster import ClusterView
from appliance.core.evaluations import Evaluation
from appliance.core.pool import PoolSize
from appliance.services.evaluation.evaluations import EvalRequest

CODE_PREVIEW_CHARS = 100


class ErrorBody(msgspec.Struct):
    """Every error of this API: {"error": title, "detail": what to fix, "status_code": N}."""

    error: str
    detail: str
    status_code: int


class EvalSubmitted(msgspec.Struct):
    eval_id: str
    status: str
    message: str
    queue_position: int


class BatchRequest(msgspec.Struct):
    evaluations: list[EvalRequest] | None = None


class BatchItem(msgspec.Struct):
    eval_id: str
    status: str
    message: str


class BatchSubmitted(msgspec.Struct):
    evaluations: list[BatchItem]
    total: int
    queued: int
    failed: int
    batch_id: str | None = None


class EvalStatusBody(msgspec.Struct, kw_only=True):
    eval_id: str
    status: str
    created_at: str
    started_at: str | None
    completed_at: str | None
    output: str
    error: str
    success: bool
    exit_code: int | None
    language: str
    engine: str
    timeout: float
    reason: str | None
    output_truncated: bool
    error_truncated: bool
    execution_time: float | None
    memory_used: int | None
    limits_hit: list[str]
    batch_id: str | None
    code: str

    @classmethod
    def of(cls, e: Evaluation) -> EvalStatusBody:
        return cls(
            eval_id=e.eval_id,
            status=e.status.value,
            created_at=iso_z(e.created_at),
            started_at=iso_z(e.started_at),
            completed_at=iso_z(e.completed_at),
            output=e.output,
            error=e.error,
            success=e.success,
            exit_code=e.exit_code,
            language=e.language,
            engine=e.engine,
            timeout=e.timeout,
            reason=e.reason,
            output_truncated=e.output_truncated,
            error_truncated=e.error_truncated,
            execution_time=e.execution_time,
            memory_used=e.memory_used,
            limits_hit=e.limits_hit,
            batch_id=e.batch_id,
            code=e.code,
        )


class LogsBody(msgspec.Struct):
    eval_id: str
    output: str
    error: str
    is_running: bool
    exit_code: int | None
    status: str


class KillBody(msgspec.Struct):
    eval_id: str
    killed: bool
    message: str


class QueueStatusBody(msgspec.Struct):
    queued: int
    processing: int
    queue_length: int
    total_tasks: int


class QueueCounts(msgspec.Struct, kw_only=True):
    queued: int
    processing: int


class StorageBody(msgspec.Struct, kw_only=True):
    total_evaluations: int
    by_status: dict[str, int]


class PlatformStatusBody(msgspec.Struct):
    platform: str
    mode: str
    services: dict[str, str]
    queue: QueueCounts
    storage: StorageBody
    version: str
    uptime_seconds: float
    engines: dict[str, str] = {}
    # Idle containers ready per (language, engine): what the next request will find.
    sandbox_pool: list[PoolSize] = []


class ClusterPlatformStatusBody(PlatformStatusBody, kw_only=True):
    """/api/status in cluster mode: the nodes, their slots and load as well."""

    cluster: ClusterView


class EvaluationSummary(msgspec.Struct):
    eval_id: str
    status: str
    created_at: str
    code_preview: str
    success: bool
    language: str

    @classmethod
    def of(cls, e: Evaluation) -> EvaluationSummary:
        preview = e.code[:CODE_PREVIEW_CHARS] + ("..." if len(e.code) > CODE_PREVIEW_CHARS else "")
        return cls(
            eval_id=e.eval_id,
            status=e.status.value,
            created_at=iso_z(e.created_at),
            code_preview=preview,
            success=e.success,
            language=e.language,
        )


class EvaluationList(msgspec.Struct):
    evaluations: list[EvaluationSummary]
    count: int
    limit: int
    offset: int
    has_more: bool


class TokenBody(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
