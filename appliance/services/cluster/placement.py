"""Which node runs the next sandbox: free slots of the engine the request needs.

Pure bookkeeping on the head's event loop, no Ray: the driver adds, updates and loses
nodes; the executor takes a slot before a run and gives it back after. A request waits
while every node that could run it is full, and gives up only when no live node offers
its language and engine at all for `unplaceable_seconds` (a node may be joining).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Generic, TypeVar

from appliance.core.cluster import NodeLoad, NodeOffer

Handle = TypeVar("Handle")


class NoNodeFor(Exception):
    """No live node offers this language and engine."""


class PlacedNode(Generic[Handle]):
    def __init__(self, offer: NodeOffer, handle: Handle) -> None:
        self.offer = offer
        self.handle = handle
        self.busy: dict[str, int] = {}
        self.completed = 0
        self.lost = False

    @property
    def name(self) -> str:
        return self.offer.name

    def free(self, engine: str) -> int:
        return self.offer.slots.get(engine, 0) - self.busy.get(engine, 0)

    def takes(self, language: str, engine: str) -> bool:
        return not self.lost and not self.offer.draining and self.offer.serves(language, engine)


def freest(able: list[PlacedNode[Handle]], engine: str, avoid: frozenset[str]) -> PlacedNode[Handle] | None:
    """Of the nodes that can run a request, the one with the largest share of `engine`'s
    slots free; one in `avoid` only when no other can run it at all. It may have no free
    slot: the head then waits, a direct run (direct.py) waits on the node itself."""
    preferred = [n for n in able if n.name not in avoid] or able
    if not preferred:
        return None
    return max(preferred, key=lambda n: (n.free(engine) / max(1, n.offer.slots[engine]), n.free(engine)))


class Placement(Generic[Handle]):
    def __init__(self, unplaceable_seconds: float = 30.0) -> None:
        self._nodes: dict[str, PlacedNode[Handle]] = {}
        self._changed = asyncio.Condition()
        self._unplaceable_seconds = unplaceable_seconds
        self.lost_names: set[str] = set()
        self.requeued = 0

    # --- membership (the driver) ------------------------------------------------------

    async def join(self, offer: NodeOffer, handle: Handle) -> None:
        """A new node, a node that came back (a fresh actor under the same name), or a
        newer offer of a known one (draining)."""
        async with self._changed:
            known = self._nodes.get(offer.name)
            if known is not None and not known.lost and known.handle is handle:
                known.offer = offer
            else:
                node = PlacedNode(offer, handle)
                if known is not None and not known.lost:
                    node.busy = known.busy  # the same node seen again: its runs still hold slots
                self._nodes[offer.name] = node
            self.lost_names.discard(offer.name)
            self._changed.notify_all()

    async def lose(self, name: str, handle: Handle | None = None) -> bool:
        """The node's actor is gone; True the first time (for the alert and the log).
        `handle`: only when it is still the actor that failed (not one that rejoined)."""
        async with self._changed:
            node = self._nodes.get(name)
            if node is None or node.lost or (handle is not None and node.handle is not handle):
                return False
            node.lost = True
            self.lost_names.add(name)
            self._changed.notify_all()
            return True

    def nodes(self) -> list[PlacedNode[Handle]]:
        return list(self._nodes.values())

    def live(self) -> Iterable[PlacedNode[Handle]]:
        return (n for n in self._nodes.values() if not n.lost)

    # --- slots (the executor) -----------------------------------------------------------

    async def acquire(self, language: str, engine: str, avoid: frozenset[str] = frozenset()) -> PlacedNode[Handle]:
        """The node with the most free slots of `engine` that serves `language`, its slot
        taken; waits while all of them are full. A node in `avoid` is used only when no
        other node serves the request at all."""
        deadline: float | None = None
        async with self._changed:
            while True:
                able = [n for n in self._nodes.values() if n.takes(language, engine)]
                node = freest(able, engine, avoid)
                if node is not None and node.free(engine) > 0:
                    node.busy[engine] = node.busy.get(engine, 0) + 1
                    return node
                if able:
                    deadline = None
                    await self._changed.wait()
                    continue
                now = time.monotonic()
                deadline = deadline or now + self._unplaceable_seconds
                if now >= deadline:
                    raise NoNodeFor(f"no node of the cluster runs {language} on {engine}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), deadline - now)

    async def release(self, node: PlacedNode[Handle], engine: str, completed: bool) -> None:
        async with self._changed:
            node.busy[engine] = max(0, node.busy.get(engine, 0) - 1)
            if completed:
                node.completed += 1
            self._changed.notify_all()

    # --- what status shows --------------------------------------------------------------

    def loads(self) -> list[NodeLoad]:
        return [
            NodeLoad(
                name=n.name,
                state="lost" if n.lost else "draining" if n.offer.draining else "up",
                slots=dict(n.offer.slots),
                busy={engine: n.busy.get(engine, 0) for engine in n.offer.slots},
                languages=list(n.offer.languages),
                completed=n.completed,
                memory_mb=n.offer.memory_mb,
            )
            for n in sorted(self._nodes.values(), key=lambda n: n.name)
        ]
