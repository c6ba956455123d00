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

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from appliance.core.errors import AppError, Forbidden, Unauthorized
from appliance.core.events import EvaluationEvent
from appliance.core.identity import READ
from appliance.http.identity import authenticate

POLICY_VIOLATION = 1008


class ClientMessage(msgspec.Struct):
    action: str
    eval_id: str | None = None


@websocket("/ws")
async def evaluation_events(socket: WebSocket) -> None:
    await socket.accept()
    try:
        identity = await authenticate(socket)
        if identity.is_anonymous:
            raise Unauthorized("Authentication required: pass ?api_key=... or ?token=...")
        if not identity.can(READ):
            raise Forbidden("this API key lacks the 'read' permission")
    except AppError as exc:
        await socket.send_json(
            {"type": "error", "eval_id": None, "data": {"error": exc.detail, "status_code": exc.status_code}}
        )
        await socket.close(code=POLICY_VIOLATION, reason=exc.title)
        return

    bus = socket.app.state.appliance.bus
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


async def _send_events(socket: WebSocket, subscription, watched: set[str]) -> None:
    while True:
        event: EvaluationEvent = await subscription.get()
        if watched and event.eval_id not in watched:
            continue
        await socket.send_json(msgspec.to_builtins(event))  # the struct is the message


async def _read_commands(socket: WebSocket, watched: set[str]) -> None:
    while True:
        try:
            raw = await socket.receive_text()
        except WebSocketDisconnect:
            return
        try:
            message = msgspec.json.decode(raw, type=ClientMessage)
        except msgspec.DecodeError as exc:
            await socket.send_json(
                {
                    "type": "error",
                    "eval_id": None,
                    "data": {
                        "error": f'unreadable message ({exc}); send {{"action": "subscribe", "eval_id": "..."}}',
                        "status_code": 400,
                    },
                }
            )
            continue
        if message.action == "subscribe" and message.eval_id:
            watched.add(message.eval_id)
        elif message.action == "unsubscribe" and message.eval_id:
            watched.discard(message.eval_id)
        elif message.action == "ping":
            await socket.send_json({"type": "pong", "eval_id": None, "data": {}})
        else:
            await socket.send_json(
                {
                    "type": "error",
                    "eval_id": message.eval_id,
                    "data": {
                        "error": f"unknown action {message.action!r}; use subscribe, unsubscribe or ping",
                        "status_code": 400,
                    },
                }
            )
