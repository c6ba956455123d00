"""One Phoenix socket's channels: joins, leaves, heartbeats, client pushes, and what
happens when the client falls behind.

The HTTP layer reads frames and hands each to `handle`, and sends what `outbox` gives
it; everything in between is here, so it runs the same without a network.

- `phoenix` / `heartbeat` is answered ok; any other event there is refused.
- `phx_join` is answered ok once the channel is subscribed, or with an error reply
  (`{"reason": ..., "message": ...}`) when the topic is unknown (`unmatched topic`, the
  Phoenix server's own words) or the token may not see it; the socket stays open
  either way. Joining a joined topic again replaces the old join (it gets `phx_close`).
- `phx_leave` is answered ok, then `phx_close`.
- A push to a topic not joined (or of an old join) is refused `unmatched topic`.
- A channel whose bus subscription overflowed gets `phx_error` and is dropped (the
  client rejoins); when the socket's own outbox overflows, every channel gets
  `phx_error` and the socket closes (1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.core.identity import Identity
from appliance.core.phoenix import (
    HEARTBEAT,
    JOIN,
    LEAVE,
    PHOENIX_TOPIC,
    UNMATCHED_TOPIC,
    Frame,
    channel_closed,
    channel_error,
    ok,
    push,
    refuse,
)
from appliance.services.live.channels import Channel, ChannelBehind
from appliance.services.live.outbox import TRY_AGAIN_LATER, Behind, Close, Outbox, Outgoing

log = logging.getLogger(__name__)

BEHIND = "too far behind: events were dropped; rejoin"


class JoinRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


Joiner = Callable[[Identity, str, "str | None"], Awaitable[Channel]]


class ChannelSocket:
    def __init__(self, identity: Identity, join: Joiner, queue_size: int) -> None:
        self.identity = identity
        self.outbox = Outbox(queue_size)
        self._join = join
        self._channels: dict[str, tuple[Channel, asyncio.Task[None]]] = {}
        # Past an overflow: each channel's phx_error, then the Close (the outbox takes no more).
        self._last_words: list[Frame | Close] = []

    @property
    def topics(self) -> list[str]:
        return list(self._channels)

    async def handle(self, frame: Frame) -> None:
        put = self.outbox.put
        if frame.topic == PHOENIX_TOPIC:
            put(ok(frame) if frame.event == HEARTBEAT else refuse(frame, f"unknown event {frame.event!r} on phoenix"))
            return
        if frame.event == JOIN:
            await self._joining(frame)
            return
        joined = self._channels.get(frame.topic)
        if joined is None or (frame.join_ref is not None and joined[0].join_ref != frame.join_ref):
            put(refuse(frame, UNMATCHED_TOPIC, message=f"{frame.topic} is not joined on this socket"))
            return
        channel = joined[0]
        if frame.event == LEAVE:
            self._drop(frame.topic)
            put(ok(frame))
            put(channel_closed(channel.join_ref, channel.topic))
            return
        put(channel.receive(frame))

    async def _joining(self, frame: Frame) -> None:
        join_ref = frame.join_ref if frame.join_ref is not None else frame.ref
        old = self._channels.get(frame.topic)
        if old is not None:
            self._drop(frame.topic)
            self.outbox.put(channel_closed(old[0].join_ref, frame.topic))
        try:
            channel = await self._join(self.identity, frame.topic, join_ref)
        except JoinRefused as refused:
            self.outbox.put(refuse(frame, refused.reason, message=refused.message))
            return
        self.outbox.put(ok(frame))
        task = asyncio.create_task(self._pump(channel), name=f"channel-{frame.topic}")
        self._channels[frame.topic] = (channel, task)

    async def _pump(self, channel: Channel) -> None:
        def emit(event: str, payload: dict[str, Any]) -> None:
            self.outbox.put(push(channel.join_ref, channel.topic, event, payload))

        try:
            await channel.run(emit)
        except ChannelBehind:
            reason = BEHIND
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("channel %s failed", channel.topic)
            reason = "internal error"
        else:
            return
        if self._channels.get(channel.topic, (None,))[0] is channel:
            self._drop(channel.topic, cancel=False)
            self.outbox.put(channel_error(channel.join_ref, channel.topic, reason))

    def _drop(self, topic: str, *, cancel: bool = True) -> None:
        channel, task = self._channels.pop(topic)
        if cancel:
            task.cancel()
        channel.close()

    async def next_out(self) -> Frame | Close:
        """What to send next; past an overflow, each channel's phx_error then a Close."""
        if self._last_words:
            return self._last_words.pop(0)
        item: Outgoing = await self.outbox.get()
        if not isinstance(item, Behind):
            return item
        for topic, (channel, _) in list(self._channels.items()):
            self._drop(topic)
            self._last_words.append(channel_error(channel.join_ref, topic, BEHIND))
        self._last_words.append(Close(TRY_AGAIN_LATER, "too far behind"))
        return self._last_words.pop(0)

    async def close(self) -> None:
        for topic in list(self._channels):
            channel, task = self._channels[topic]
            self._drop(topic)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
