"""In-process publish/subscribe bus.

Every producer (evaluation workers, later monitoring) publishes here once, and every
consumer (the `/ws` endpoint, the TUI) subscribes here, so all of them see the same
events in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True):
    type: str
    subject: str  # the id the event is about, e.g. an eval_id
    owner: str  # who may see it; consumers filter on this
    data: dict[str, Any]


class Subscription:
    """A bounded queue of events. A consumer too slow to keep up is marked lagged and
    gets no more events, instead of making the bus grow without bound."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.lagged = False

    def offer(self, event: Event) -> None:
        if self.lagged:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self) -> Event:
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class EventBus:
    def __init__(self, subscriber_queue_size: int = 10_000) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = subscriber_queue_size

    def publish(self, event: Event) -> None:
        for sub in tuple(self._subscribers):
            sub.offer(event)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription(self._queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
