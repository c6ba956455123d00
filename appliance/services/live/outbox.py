"""What one Phoenix socket has to send, bounded.

Channels put frames in without waiting (a bus subscriber must never make a publisher
wait); the socket's sender takes them out as fast as the client reads. A client that
falls `size` frames behind gets no more: what waits is dropped, and the sender is told
to end the socket (each joined channel errors, then a close it can reconnect after).
"""

from __future__ import annotations

import asyncio

import msgspec

from appliance.core.phoenix import Frame

# RFC 6455 close codes this socket uses.
GOING_AWAY = 1001  # no heartbeat within the timeout
UNSUPPORTED_DATA = 1003  # a binary frame: this serializer speaks JSON text
INVALID_PAYLOAD = 1007  # a text frame that is not [join_ref, ref, topic, event, payload]
TRY_AGAIN_LATER = 1013  # the client fell too far behind


class Close(msgspec.Struct, frozen=True):
    code: int
    reason: str


class Behind(msgspec.Struct, frozen=True):
    """Marks the outbox overflowed: the sender errors the channels and closes."""


Outgoing = Frame | Close | Behind


class Outbox:
    def __init__(self, size: int) -> None:
        # One slot beyond `size` for the Behind mark, so it always fits.
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(size + 1)
        self._size = size
        self.overflowed = False

    def put(self, item: Frame | Close) -> None:
        if self.overflowed:
            return
        if isinstance(item, Close) or self._queue.qsize() < self._size:
            self._queue.put_nowait(item)  # a Close always fits: the last slot is kept free
            return
        self.overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(Behind())

    async def get(self) -> Outgoing:
        return await self._queue.get()
