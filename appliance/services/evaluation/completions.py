"""Waiting for an evaluation's (or execution's) end without polling.

`GET /api/eval-status/{id}?wait=` and `GET /api/execute/{id}?wait=` hold the request
until the run ends: the queue tells this registry the moment it stores a final state
(the same point it publishes `Completed` on the bus), and every caller waiting on that
id wakes at once. Nothing is checked on a timer; a wait that ends unresolved simply
answers the state as it is then.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager

from appliance.core.errors import ValidationError
from appliance.core.evaluations import Evaluation


class Completions:
    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    def check_wait(self, wait: float | None) -> float:
        """The seconds to wait (0 for none); a value out of range is the caller's error."""
        if wait is None:
            return 0.0
        if not math.isfinite(wait) or wait < 0 or wait > self.max_wait:
            raise ValidationError(
                f"wait must be between 0 and {self.max_wait:g} seconds (setting status_wait_max_seconds)",
                details={"field": "wait", "reason": f"between 0 and {self.max_wait:g}"},
            )
        return float(wait)

    @contextmanager
    def watch(self, eval_id: str) -> Iterator[asyncio.Future[None]]:
        """A future resolved when `eval_id` ends. Enter it before reading the state, so an
        end between the read and the wait is not missed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(eval_id, set()).add(future)
        try:
            yield future
        finally:
            waiters = self._waiting.get(eval_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiting[eval_id]

    def finished(self, evaluation: Evaluation) -> None:
        """The queue's finish listener: wake everyone waiting on it."""
        for future in self._waiting.pop(evaluation.eval_id, ()):
            if not future.done():
                future.set_result(None)

    def release_all(self) -> None:
        """At shutdown: every waiter answers with the state as it is."""
        for waiters in self._waiting.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiting.clear()

    @property
    def waiting_count(self) -> int:
        return sum(len(w) for w in self._waiting.values())


async def until_done(future: asyncio.Future[None], seconds: float) -> None:
    """Wait for `future` at most `seconds`; either way the caller reads the state again."""
    if seconds <= 0:
        return
    try:
        async with asyncio.timeout(seconds):
            await future
    except TimeoutError:
        pass
