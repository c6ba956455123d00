"""The Phoenix Channels V2 JSON wire format (`vsn=2.0.0`), as pure code.

Every WebSocket text frame, both ways, is one JSON array
`[join_ref, ref, topic, event, payload]`: `join_ref` names the join a message belongs
to (a channel joined twice gets a new one, so late messages of the old join are told
apart), `ref` pairs a push with its `phx_reply`, `payload` is a JSON object.

This module only reads and writes frames and builds the protocol's own messages; which
topics exist and who may join them is services/live's business.
"""

from __future__ import annotations

from typing import Any

import msgspec

VSN = "2.0.0"

PHOENIX_TOPIC = "phoenix"  # the socket's own topic: heartbeats only
HEARTBEAT = "heartbeat"
JOIN = "phx_join"
LEAVE = "phx_leave"
REPLY = "phx_reply"
ERROR = "phx_error"
CLOSE = "phx_close"

# The reasons the Phoenix server itself gives, which clients already know.
UNMATCHED_TOPIC = "unmatched topic"


class FrameError(ValueError):
    """A frame that is not `[join_ref, ref, topic, event, payload]`: the connection is
    speaking something else, so it is closed rather than answered."""


class Frame(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """One message; encodes as the five-element array."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: dict[str, Any]


_decoder = msgspec.json.Decoder(Frame)
_encoder = msgspec.json.Encoder()


def decode(text: str | bytes) -> Frame:
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise FrameError(f"not a Phoenix V2 frame [join_ref, ref, topic, event, payload]: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FrameError(f"not JSON: {exc}") from None


def encode(frame: Frame) -> str:
    return _encoder.encode(frame).decode()


def reply(to: Frame, status: str, response: Any = None) -> Frame:
    """The `phx_reply` to a push: status "ok" or "error", and a response object."""
    body = {} if response is None else response
    return Frame(to.join_ref, to.ref, to.topic, REPLY, {"status": status, "response": body})


def ok(to: Frame, response: Any = None) -> Frame:
    return reply(to, "ok", response)


def refuse(to: Frame, reason: str, **details: Any) -> Frame:
    return reply(to, "error", {"reason": reason, **details})


def push(join_ref: str | None, topic: str, event: str, payload: dict[str, Any]) -> Frame:
    """A server push on a joined channel: it carries the join's ref, no ref of its own."""
    return Frame(join_ref, None, topic, event, payload)


def channel_error(join_ref: str | None, topic: str, reason: str) -> Frame:
    """The channel died on the server side (here: it fell too far behind); a client
    rejoins after it, as after a crash."""
    return Frame(join_ref, join_ref, topic, ERROR, {"reason": reason})


def channel_closed(join_ref: str | None, topic: str) -> Frame:
    return Frame(join_ref, join_ref, topic, CLOSE, {})
