"""Synchronous executions of the sandbox API: POST /api/execute, GET and DELETE
/api/execute/{id}, and /ws/execute.

There is one way of running code here, and executions use it: an execution is a row of
the evaluations table (kind "execute", id `exec_...`) that the evaluation queue runs
like any evaluation, and POST waits for it to end. So the queue's workers bound how
many run at once, `/api/metrics` counts them, a kill is the queue's kill, their output
and completion go out on the event bus as `OutputChunk` and `Completed` events (which
/ws/execute and the TUI read), partial output is saved while they run, and a restart
marks what was running failed. Against running them beside the queue: that would be a
second scheduler with its own limits, counters and kill path to keep in step.

What an execution adds is carried without new warm-pool lanes and without storing
secrets (see execution_options and runtime/executor):
- its environment goes to the queue in memory (`enqueue(..., environment=)`) and from
  there in the payload to the warm container's runner, which sets it for the program
  only; it is never written to SQLite. A queued execution does not survive a restart
  (its caller is gone with the connection): it is marked failed with a reason;
- its memory and CPU limits are applied to a container borrowed from the default warm
  lane (`docker update`, runc) or, under gVisor or with a network, to a container made
  for it outside any lane;
- the files it left in the work dir come back in the runner's trailer.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from appliance.core.environment import check_environment
from appliance.core.errors import Conflict, ErrorDetails, NotFound, ValidationError
from appliance.core.evaluations import KIND_EXECUTION, Evaluation
from appliance.core.executions import ExecutionStatus, execution_status, new_execution_id
from appliance.core.identity import EXECUTE, Identity
from appliance.services.access.auth import require_permission
from appliance.services.evaluation import execution_options as options
from appliance.services.evaluation.completions import Completions, until_done
from appliance.services.evaluation.evaluations import EvalRequest, EvaluationService
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.store.evaluations import EvaluationStore

log = logging.getLogger(__name__)

# How often a waiting caller also looks at the stored state (an end it might have missed).
WAIT_CHECK_SECONDS = 5.0
# How long DELETE waits for the killed execution's final state.
CANCEL_WAIT_SECONDS = 20.0
# A kill can fall between the queue handing an execution to a worker and the worker
# starting it: it is retried this long.
KILL_RETRY_SECONDS = 3.0

_FIELDS_IN_MESSAGES = ("files", "language", "engine", "timeout", "code")


class ExecutionService:
    def __init__(
        self,
        evaluations: EvaluationService,
        queue: EvaluationQueue,
        store: EvaluationStore,
        limits: options.ExecuteLimits,
        completions: Completions | None = None,
    ) -> None:
        self._evaluations = evaluations
        self._completions = completions or Completions(max_wait=0.0)
        self._queue = queue
        self._store = store
        self._limits = limits
        # Futures of executions started by this process, resolved when they end.
        self._waiters: dict[str, asyncio.Future[Evaluation]] = {}
        queue.add_finish_listener(self._finished)

    # --- running ----------------------------------------------------------------------

    def _validate(self, request: options.ExecuteRequest, owner: str) -> tuple[Evaluation, dict[str, str]]:
        if request.language is None:
            raise options.invalid("language", 'language is required, e.g. "python"')
        environment = check_environment(request.environment)
        memory_mb = options.memory_limit_mb(request.memory_limit, self._limits)
        cpus = options.cpu_limit(request.cpu_limit, self._limits)
        files = options.files_by_name(request.files)
        shared = EvalRequest(
            code=request.code, language=request.language, engine=request.engine, timeout=request.timeout, files=files
        )
        try:
            evaluation = self._evaluations.validate(shared, owner)
        except ValidationError as exc:
            field = next((f for f in _FIELDS_IN_MESSAGES if f in exc.detail.lower()), None)
            details: ErrorDetails = {"field": field, "reason": exc.detail} if field else {"reason": exc.detail}
            raise ValidationError(exc.detail, details=details) from None
        network = options.network_access(request.network_access, evaluation.engine, self._limits)
        execution = msgspec.structs.replace(
            evaluation,
            eval_id=new_execution_id(),
            kind=KIND_EXECUTION,
            memory_limit_mb=memory_mb,
            cpu_limit=cpus,
            network_access=network,
        )
        return execution, environment

    def authorize_stream(self, identity: Identity) -> None:
        """Whether `identity` may open /ws/execute: refused at the connection, not at
        its first message."""
        require_permission(identity, EXECUTE)

    async def submit(self, identity: Identity, request: options.ExecuteRequest) -> Evaluation:
        """Checked, stored and queued; `wait` for its end. Bad input stores nothing."""
        require_permission(identity, EXECUTE)
        execution, environment = self._validate(request, identity.owner)
        await self._evaluations.check_capacity(execution.language, execution.engine)
        await self._store.insert_many([execution])
        self._waiters[execution.eval_id] = asyncio.get_running_loop().create_future()
        # No await between here and the caller: it can watch the bus before any event.
        self._queue.enqueue(execution, environment)
        return execution

    async def execute(self, identity: Identity, request: options.ExecuteRequest) -> Evaluation:
        """POST /api/execute: run it and return its final state."""
        execution = await self.submit(identity, request)
        return await self.wait(execution.eval_id)

    async def wait(self, execution_id: str, limit: float | None = None) -> Evaluation:
        """The final state; with `limit`, the state after that many seconds at most."""
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        future = self._waiters.get(execution_id)
        while True:
            step = WAIT_CHECK_SECONDS if deadline is None else max(0.0, min(WAIT_CHECK_SECONDS, deadline - loop.time()))
            if future is not None:
                try:
                    async with asyncio.timeout(step):
                        return await asyncio.shield(future)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(min(step, 0.2))
            stored = await self._store.get(execution_id)
            if stored is None:
                raise NotFound(f"no execution {execution_id}")
            if stored.status.is_terminal or (deadline is not None and loop.time() >= deadline):
                return stored

    def _finished(self, evaluation: Evaluation) -> None:
        future = self._waiters.pop(evaluation.eval_id, None)
        if future is not None and not future.done():
            future.set_result(evaluation)

    # --- reading and cancelling -------------------------------------------------------

    async def get(self, identity: Identity, execution_id: str, wait: float | None = None) -> Evaluation:
        """The caller's execution as it is now (404 for anyone else's); with `wait`
        (seconds), as it is when it ends or when the wait is over."""
        require_permission(identity, EXECUTE)
        seconds = self._completions.check_wait(wait)
        with self._completions.watch(execution_id) as ended:
            execution = await self._visible(identity, execution_id)
            if execution_status(execution).is_terminal or not seconds:
                return execution
            await until_done(ended, seconds)
        return await self._visible(identity, execution_id)

    async def _visible(self, identity: Identity, execution_id: str) -> Evaluation:
        running = self._queue.running(execution_id)
        execution = running.evaluation if running else await self._store.get(execution_id)
        if execution is None or execution.kind != KIND_EXECUTION or not identity.may_see(execution.owner):
            raise NotFound(f"no execution {execution_id}", details={"execution_id": execution_id})
        return execution

    async def cancel(self, identity: Identity, execution_id: str) -> Evaluation:
        """Kill a queued or running execution and return its final (cancelled) state."""
        execution = await self.get(identity, execution_id)
        status = execution_status(execution)
        if status.is_terminal:
            raise Conflict(
                f"execution {execution_id} already ended with status {status.value}; only a queued "
                "or running execution can be cancelled",
                details={"execution_id": execution_id, "status": status.value},
            )
        await self.abandon(execution_id)
        final = await self.wait(execution_id, limit=CANCEL_WAIT_SECONDS)
        status = execution_status(final)
        if status is not ExecutionStatus.CANCELLED:
            raise Conflict(
                f"execution {execution_id} ended with status {status.value} before it could be cancelled",
                details={"execution_id": execution_id, "status": status.value},
            )
        return final

    async def abandon(self, execution_id: str) -> None:
        """Kill it if it has not ended (its WebSocket client left, or DELETE)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_RETRY_SECONDS
        while not await self._queue.kill(execution_id):
            if not self._queue.is_pending(execution_id):
                stored = await self._store.get(execution_id)
                if stored is None or stored.status.is_terminal:
                    return
            if loop.time() >= deadline:
                log.warning("execution %s could not be killed", execution_id)
                return
            await asyncio.sleep(0.02)
