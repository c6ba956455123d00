"""`/socket/websocket`: Phoenix Channels V2 (experiments-api.md, WebSocket API).

The official `phoenix` JavaScript client connects unmodified:
`new Socket("ws://host:port/socket", {params: {token}})` opens
`/socket/websocket?token=...&vsn=2.0.0`. The token (an API key or a JWT) is checked by
the router's guard before the socket is accepted: without one, or with a bad one, or
with a key lacking `read`, or with another `vsn`, the handshake is refused (HTTP 403)
and nothing is accepted.

Once open, frames go to the socket's channels (services/live); this module only moves
text frames in and out:
- a binary frame is closed 1003; a text frame that is not a V2 frame is closed 1007,
  with the reason;
- nothing received for `socket_heartbeat_timeout_seconds` (the client heartbeats every
  30 s by default) closes it 1001;
- a client too slow to read gets `phx_error` on each channel, then 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from appliance.core.errors import AppError
from appliance.core.phoenix import VSN, FrameError, decode, encode
from appliance.http.identity import authenticate_once
from appliance.http.ws_close import POLICY_VIOLATION
from appliance.services.live.hub import LiveChannels
from appliance.services.live.outbox import GOING_AWAY, INVALID_PAYLOAD, UNSUPPORTED_DATA, Close
from appliance.services.live.socket import ChannelSocket

PATH = "/socket/websocket"
# A close reason is at most 123 bytes (RFC 6455: 125 minus the code).
MAX_REASON = 120


@websocket(PATH)
async def phoenix_socket(socket: WebSocket[Any, Any, Any], live_channels: LiveChannels) -> None:
    vsn = socket.query_params.get("vsn", VSN)
    try:
        identity = await authenticate_once(socket)  # the guard already refused anonymous callers
        live_channels.authorize(identity)
    except AppError:
        await socket.close(code=POLICY_VIOLATION)  # before accept: the handshake is refused
        return
    if vsn != VSN:
        await socket.close(code=POLICY_VIOLATION)
        return
    await socket.accept()
    session = live_channels.open(identity)
    sender = asyncio.create_task(_send(socket, session))
    try:
        ending = await _receive(socket, session, live_channels.settings.heartbeat_timeout, sender)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        await session.close()
    if ending is not None:
        with contextlib.suppress(Exception):
            await socket.close(code=ending.code, reason=ending.reason[:MAX_REASON])


async def _send(socket: WebSocket[Any, Any, Any], session: ChannelSocket) -> None:
    while True:
        item = await session.next_out()
        if isinstance(item, Close):
            await socket.close(code=item.code, reason=item.reason)
            return
        await socket.send_text(encode(item))


async def _receive(
    socket: WebSocket[Any, Any, Any], session: ChannelSocket, timeout: float, sender: asyncio.Task[None]
) -> Close | None:
    """Until the client leaves (None) or must be closed (the Close to send)."""
    while True:
        receiving = asyncio.ensure_future(socket.receive())
        done, _ = await asyncio.wait({receiving, sender}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if receiving not in done:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await receiving
            if sender in done:
                return None  # the sender closed the socket (the client fell behind)
            return Close(GOING_AWAY, f"no heartbeat for {timeout:g} s")
        try:
            message = receiving.result()
        except WebSocketDisconnect:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if not isinstance(text, str):
            return Close(UNSUPPORTED_DATA, "binary frames are not read: send V2 JSON text frames")
        try:
            frame = decode(text)
        except FrameError as exc:
            return Close(INVALID_PAYLOAD, str(exc))
        await session.handle(frame)
