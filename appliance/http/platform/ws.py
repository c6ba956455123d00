"""`/ws`: evaluation events as plain JSON messages.

    {"type": "status_update" | "output_chunk" | "completed" | "error",
     "eval_id": "...", "data": {...}}

A client sees the events of its own evaluations (an admin sees all). By default it gets
every such event; after `{"action": "subscribe", "eval_id": "..."}` only those of the
evaluations it subscribed to (`unsubscribe` undoes it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from appliance.core.errors import AppError
from appliance.core.events import EvaluationEvent, EventBus, Subscription
from appliance.http.identity import open_socket
from appliance.services.evaluation.evaluations import EvaluationService


class ClientMessage(msgspec.Struct):
    action: str
    eval_id: str | None = None


class SocketErrorData(msgspec.Struct):
    error: str
    status_code: int


class SocketError(msgspec.Struct, tag_field="type", tag="error"):
    """What the client sent (or who it is) is refused; not an evaluation's own error event."""

    eval_id: str | None
    data: SocketErrorData


class NoData(msgspec.Struct):
    pass


class Pong(msgspec.Struct, tag_field="type", tag="pong"):
    eval_id: None = None
    data: NoData = msgspec.field(default_factory=NoData)


def refusal(exc: AppError) -> SocketError:
    return SocketError(eval_id=None, data=SocketErrorData(error=exc.detail, status_code=exc.status_code))


@websocket("/ws")
async def evaluation_events(
    socket: WebSocket[Any, Any, Any], evaluation_service: EvaluationService, bus: EventBus
) -> None:
    identity = await open_socket(socket, evaluation_service.authorize_events, refusal)
    if identity is None:
        return
    watched: set[str] = set()
    # Evaluation events only (the ones platform-api.md documents), of what it may see.
    with bus.subscribe(EvaluationEvent, visible=identity.may_see) as subscription:
        sender = asyncio.create_task(_send_events(socket, subscription, watched))
        try:
            await _read_commands(socket, watched)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _send_events(socket: WebSocket[Any, Any, Any], subscription: Subscription, watched: set[str]) -> None:
    while True:
        event = await subscription.get()
        if not isinstance(event, EvaluationEvent):  # the subscription is to evaluation events only
            continue
        if watched and event.eval_id not in watched:
            continue
        await socket.send_json(msgspec.to_builtins(event))  # the struct is the message


async def _read_commands(socket: WebSocket[Any, Any, Any], watched: set[str]) -> None:
    while True:
        try:
            raw = await socket.receive_text()
        except WebSocketDisconnect:
            return
        try:
            message = msgspec.json.decode(raw, type=ClientMessage)
        except msgspec.DecodeError as exc:
            unreadable = f'unreadable message ({exc}); send {{"action": "subscribe", "eval_id": "..."}}'
            await socket.send_json(SocketError(eval_id=None, data=SocketErrorData(error=unreadable, status_code=400)))
            continue
        if message.action == "subscribe" and message.eval_id:
            watched.add(message.eval_id)
        elif message.action == "unsubscribe" and message.eval_id:
            watched.discard(message.eval_id)
        elif message.action == "ping":
            await socket.send_json(Pong())
        else:
            unknown = f"unknown action {message.action!r}; use subscribe, unsubscribe or ping"
            await socket.send_json(
                SocketError(eval_id=message.eval_id, data=SocketErrorData(error=unknown, status_code=400))
            )
