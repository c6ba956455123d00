"""`/ws/execute`: run code and receive its output while it runs.

Authenticate with `?api_key=...` (or `?token=...`, or the X-API-Key header); the key
needs the `execute` permission. Client messages:

    {"type": "execute", "language", "code", ...}   the fields of POST /api/execute
    {"type": "cancel", "execution_id"}             this connection's runs only; no id: all
    {"type": "ping"}

Server messages, each naming its execution:

    {"type": "accepted", "execution_id", "status": "queued"}
    {"type": "status", "execution_id", "status": "running", "started_at"}
    {"type": "output", "execution_id", "stream": "stdout" | "stderr", "data"}
    {"type": "completion", "execution_id", "status", "exit_code", "execution_time",
     "memory_used", "files_created", "error"}
    {"type": "error", "status": <HTTP status it would be>, "execution_id" (when about one),
     "error": {code, message, details, request_id}}
    {"type": "pong"}

Every `output` of an execution comes before its `completion`, in the order written.
Several executions may run at once on one connection (at most MAX_RUNS_PER_CONNECTION);
each `execute` counts against the `execute` rate limit like POST /api/execute. A bad
message gets an `error` and the connection stays; a refused authentication gets an
`error`, then the socket closes with 1008. When the client disconnects, its executions
that have not ended are cancelled (their containers killed; GET shows `cancelled`).

Output comes from the event bus (`OutputChunk` and `Completed` events of the queue);
should this connection fall behind the bus (marked lagged), the rest of each output is
taken from the final result instead, so nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from appliance.core.errors import AppError, ValidationError
from appliance.core.evaluations import Evaluation
from appliance.core.events import Completed, EvaluationEvent, EventBus, OutputChunk, StatusUpdate, Subscription
from appliance.core.executions import execution_error, execution_status
from appliance.core.identity import Identity
from appliance.http.identity import open_socket, rate_decision, refuse_past_limit
from appliance.http.sandbox.errors import SandboxError, sandbox_error
from appliance.http.sandbox.executions import CreatedFileBody, result_fields
from appliance.services.evaluation.execution_options import ExecuteRequest
from appliance.services.evaluation.executions import ExecutionService

log = logging.getLogger(__name__)

MAX_RUNS_PER_CONNECTION = 8
# After an execution ends, how long to wait for the bus to deliver the rest of its output.
DRAIN_SECONDS = 5.0


class ErrorMessage(msgspec.Struct, tag_field="type", tag="error", omit_defaults=True):
    status: int  # the HTTP status the same refusal gets from POST /api/execute
    error: SandboxError
    execution_id: str | None = None  # when it is about one execution


class Accepted(msgspec.Struct, tag_field="type", tag="accepted"):
    execution_id: str
    status: str


class Running(msgspec.Struct, tag_field="type", tag="status"):
    execution_id: str
    status: str
    started_at: str


class Output(msgspec.Struct, tag_field="type", tag="output"):
    execution_id: str
    stream: str
    data: str


class Completion(msgspec.Struct, tag_field="type", tag="completion"):
    execution_id: str
    status: str
    exit_code: int | None
    execution_time: float | None
    memory_used: int | None
    files_created: list[CreatedFileBody]
    error: str | None


class Pong(msgspec.Struct, tag_field="type", tag="pong"):
    pass


ServerMessage = ErrorMessage | Accepted | Running | Output | Completion | Pong


def error_message(exc: AppError, execution_id: str | None = None) -> ErrorMessage:
    return ErrorMessage(
        status=exc.status_code, error=sandbox_error(exc.status_code, exc.detail, exc.details), execution_id=execution_id
    )


class _Run:
    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.sent = {"stdout": 0, "stderr": 0}
        self.task: asyncio.Task[None] | None = None
        self.ended = False


class _Session:
    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        identity: Identity,
        service: ExecutionService,
        subscription: Subscription,
    ) -> None:
        self.socket = socket
        self.identity = identity
        self.service = service
        self.subscription = subscription
        self.runs: dict[str, _Run] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, message: ServerMessage) -> None:
        async with self._send_lock:
            await self.socket.send_json(message)

    # --- bus -> client ----------------------------------------------------------------

    async def forward(self) -> None:
        while True:
            event = await self.subscription.get()
            # The subscription is to evaluation events only; of those, this connection's runs.
            run = self.runs.get(event.eval_id) if isinstance(event, EvaluationEvent) else None
            if run is None:
                continue
            match event:
                case OutputChunk(data=chunk):
                    run.sent[chunk.stream] += len(chunk.output)
                    await self.send(Output(execution_id=event.eval_id, stream=chunk.stream, data=chunk.output))
                case StatusUpdate(data=running):
                    await self.send(
                        Running(execution_id=event.eval_id, status=running.status, started_at=running.started_at)
                    )
                case Completed():
                    run.drained.set()

    async def finish(self, execution_id: str, run: _Run) -> None:
        """Wait for the end, make sure all output went out, then send the completion."""
        try:
            final = await self.service.wait(execution_id)
            if not self.subscription.lagged:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_SECONDS):
                        await run.drained.wait()
            if not run.drained.is_set():  # fell behind the bus: the rest from the result
                await self._send_rest(execution_id, run, final)
            run.ended = True
            await self.send(self.completion(final))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client is gone, most likely
            log.debug("completion of %s not sent: %s", execution_id, exc)
        finally:
            run.ended = True
            self.runs.pop(execution_id, None)

    async def _send_rest(self, execution_id: str, run: _Run, final: Evaluation) -> None:
        for stream, text in (("stdout", final.output), ("stderr", final.error)):
            rest = text[run.sent[stream] :]
            if rest:
                await self.send(Output(execution_id=execution_id, stream=stream, data=rest))

    @staticmethod
    def completion(final: Evaluation) -> Completion:
        return Completion(
            execution_id=final.eval_id,
            status=execution_status(final).value,
            exit_code=final.exit_code,
            execution_time=final.execution_time,
            memory_used=final.memory_used,
            files_created=result_fields(final)["files_created"],
            error=execution_error(final),
        )

    # --- client -> appliance ----------------------------------------------------------

    async def read_commands(self) -> None:
        while True:
            try:
                raw = await self.socket.receive_text()
            except WebSocketDisconnect:
                return
            try:
                await self.handle(raw)
            except AppError as exc:
                await self.send(error_message(exc))

    async def handle(self, raw: str) -> None:
        try:
            message: object = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValidationError(f'message is not JSON ({exc}); send {{"type": "execute", ...}}') from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ValidationError(
                'a message is a JSON object with a "type": execute, cancel or ping', details={"field": "type"}
            )
        kind = message.pop("type")
        if kind == "execute":
            await self.execute(message)
        elif kind == "cancel":
            execution_id = message.get("execution_id")
            if execution_id is not None and not isinstance(execution_id, str):
                raise ValidationError(
                    "execution_id of a cancel is a string (or left out: cancel all of this connection's runs)",
                    details={"field": "execution_id", "reason": "not a string"},
                )
            await self.cancel(execution_id)
        elif kind == "ping":
            await self.send(Pong())
        else:
            raise ValidationError(
                f"unknown message type {kind!r}; use execute, cancel or ping",
                details={"field": "type", "reason": f"unknown type {kind!r}"},
            )

    async def execute(self, fields: dict[str, Any]) -> None:
        try:
            request = msgspec.convert(fields, ExecuteRequest)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"invalid execute message: {exc}", details={"reason": str(exc)}) from None
        refuse_past_limit(rate_decision(self.socket, self.identity, "execute"), "executions")
        if len(self.runs) >= MAX_RUNS_PER_CONNECTION:
            raise ValidationError(
                f"{len(self.runs)} executions are running on this connection; at most "
                f"{MAX_RUNS_PER_CONNECTION} at once: wait for a completion or open "
                "another connection"
            )
        execution = await self.service.submit(self.identity, request)
        run = self.runs[execution.eval_id] = _Run()  # before any await: no event is missed
        await self.send(Accepted(execution_id=execution.eval_id, status="queued"))
        run.task = asyncio.create_task(self.finish(execution.eval_id, run))

    async def cancel(self, execution_id: str | None) -> None:
        if execution_id is not None and execution_id not in self.runs:
            await self.send(
                error_message(
                    ValidationError(
                        f"no running execution {execution_id} on this connection", details={"field": "execution_id"}
                    ),
                    execution_id,
                )
            )
            return
        for target in [execution_id] if execution_id else list(self.runs):
            await self.service.abandon(target)

    async def close(self) -> None:
        """The client left: kill what has not ended, stop waiting for it."""
        left = [(execution_id, run) for execution_id, run in list(self.runs.items()) if not run.ended]
        for execution_id, _ in left:
            try:
                await self.service.abandon(execution_id)
            except Exception:  # one failed kill must not keep the others alive
                log.exception("could not cancel execution %s of a closed connection", execution_id)
        for _, run in left:
            if run.task is not None:
                run.task.cancel()


@websocket("/ws/execute")
async def execute_stream(socket: WebSocket[Any, Any, Any], executions: ExecutionService, bus: EventBus) -> None:
    identity = await open_socket(socket, executions.authorize_stream, error_message)
    if identity is None:
        return
    with bus.subscribe(EvaluationEvent) as subscription:
        session = _Session(socket, identity, executions, subscription)
        forwarder = asyncio.create_task(session.forward())
        try:
            await session.read_commands()
        finally:
            forwarder.cancel()
            await session.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await forwarder
