"""`POST /api/execute` (run and wait), `GET /api/execute/{id}` (state and progress) and
`DELETE /api/execute/{id}` (cancel), as sandbox-api.md documents them. Statuses are in
core/executions.py; the rules for each field in services/execution_options.py."""

from __future__ import annotations

from typing import Annotated, TypedDict

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import Parameter

from appliance.config import Settings
from appliance.core.clock import iso_z
from appliance.core.evaluations import Evaluation
from appliance.core.executions import execution_error, execution_progress, execution_status
from appliance.core.identity import Identity
from appliance.core.sizes import format_size
from appliance.http.error_docs import errors, example
from appliance.services.evaluation.execution_options import ExecuteRequest, files_created
from appliance.services.evaluation.executions import ExecutionService

WAIT_DESCRIPTION = (
    "Seconds to hold the answer until the execution ends (completed, failed, timeout or cancelled); "
    "answered at once when it has ended, and with its state as it is when the wait is over. At most the "
    "setting status_wait_max_seconds (default 60); out of range: 400 VALIDATION_ERROR."
)


class CreatedFileBody(msgspec.Struct):
    name: str
    size: int


class ExecutionResult(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    output: str
    error: str | None
    exit_code: int | None
    execution_time: float | None
    memory_used: int | None
    files_created: list[CreatedFileBody]


class ExecutionState(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    started_at: str | None
    completed_at: str | None
    progress: float
    created_at: str
    language: str
    engine: str
    timeout: float
    memory_limit: str
    cpu_limit: float
    network_access: bool
    # Once it has ended: the fields POST returns.
    output: str | msgspec.UnsetType = msgspec.UNSET
    error: str | None | msgspec.UnsetType = msgspec.UNSET
    exit_code: int | None | msgspec.UnsetType = msgspec.UNSET
    execution_time: float | None | msgspec.UnsetType = msgspec.UNSET
    memory_used: int | None | msgspec.UnsetType = msgspec.UNSET
    files_created: list[CreatedFileBody] | msgspec.UnsetType = msgspec.UNSET


class ExecutionCancelled(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    message: str


class ResultFields(TypedDict):
    """What POST /api/execute, GET (once ended) and /ws/execute's completion say of a result."""

    output: str
    error: str | None
    exit_code: int | None
    execution_time: float | None
    memory_used: int | None
    files_created: list[CreatedFileBody]


def result_fields(e: Evaluation) -> ResultFields:
    return {
        "output": e.output,
        "error": execution_error(e),
        "exit_code": e.exit_code,
        "execution_time": e.execution_time,
        "memory_used": e.memory_used,
        "files_created": [CreatedFileBody(name=f.name, size=f.size) for f in files_created(e)],
    }


def result_body(e: Evaluation) -> ExecutionResult:
    return ExecutionResult(execution_id=e.eval_id, status=execution_status(e).value, **result_fields(e))


def state_body(e: Evaluation, default_memory_mb: int, default_cpus: float) -> ExecutionState:
    status = execution_status(e)
    state = ExecutionState(
        execution_id=e.eval_id,
        status=status.value,
        started_at=iso_z(e.started_at),
        completed_at=iso_z(e.completed_at),
        progress=execution_progress(e),
        created_at=iso_z(e.created_at),
        language=e.language,
        engine=e.engine,
        timeout=e.timeout,
        memory_limit=format_size((e.memory_limit_mb or default_memory_mb) * 1024 * 1024),
        cpu_limit=e.cpu_limit or default_cpus,
        network_access=e.network_access,
    )
    if status.is_terminal:
        state = msgspec.structs.replace(state, **result_fields(e))
    return state


class ExecutionController(Controller):
    path = "/api/execute"
    tags = ["execution"]

    @post(
        "/",
        status_code=200,
        summary="Run code in a fresh sandbox and wait for the result",
        opt={"rate_bucket": "execute", **errors(403, 503)},
    )
    async def execute(
        self,
        executions: ExecutionService,
        identity: Identity,
        data: Annotated[
            ExecuteRequest, example("Python", {"language": "python", "code": "print(6 * 7)", "timeout": 5})
        ],
    ) -> ExecutionResult:
        return result_body(await executions.execute(identity, data))

    @get("/{execution_id:str}", summary="State of an execution, with progress while it runs", opt=errors(400, 403, 404))
    async def state(
        self,
        executions: ExecutionService,
        settings: Settings,
        identity: Identity,
        execution_id: str,
        wait: float | None = Parameter(default=None, schema_extra={"minimum": 0}, description=WAIT_DESCRIPTION),
    ) -> ExecutionState:
        execution = await executions.get(identity, execution_id, wait)
        return state_body(execution, settings.memory_limit_mb, settings.cpu_limit)

    @delete(
        "/{execution_id:str}",
        status_code=200,
        summary="Cancel a queued or running execution",
        opt=errors(403, 404, 409),
    )
    async def cancel(self, executions: ExecutionService, identity: Identity, execution_id: str) -> ExecutionCancelled:
        final = await executions.cancel(identity, execution_id)
        return ExecutionCancelled(
            execution_id=final.eval_id, status=execution_status(final).value, message="Execution cancelled successfully"
        )
