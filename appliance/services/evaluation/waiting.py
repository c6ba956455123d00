"""Waiting for evaluations a service submitted itself (the LLM graders' programs): a
future per evaluation, resolved by the queue's finish listener, with a look at the
stored row now and then for an end that could have been missed."""

from __future__ import annotations

import asyncio

from appliance.core.evaluations import Evaluation
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.store.evaluations import EvaluationStore

CHECK_SECONDS = 5.0


class FinishedEvaluations:
    def __init__(self, queue: EvaluationQueue, store: EvaluationStore) -> None:
        self._store = store
        self._waiting: dict[str, asyncio.Future[Evaluation]] = {}
        queue.add_finish_listener(self._finished)

    def expect(self, eval_ids: list[str]) -> None:
        """Call right after submitting, before any await: no end can be missed then."""
        loop = asyncio.get_running_loop()
        for eval_id in eval_ids:
            self._waiting.setdefault(eval_id, loop.create_future())

    async def wait(self, eval_id: str) -> Evaluation:
        future = self._waiting.get(eval_id)
        if future is None:
            raise KeyError(f"{eval_id} was not expected")
        try:
            while True:
                try:
                    async with asyncio.timeout(CHECK_SECONDS):
                        return await asyncio.shield(future)
                except TimeoutError:
                    stored = await self._store.get(eval_id)
                    if stored is not None and stored.status.is_terminal:
                        return stored
        finally:
            self._waiting.pop(eval_id, None)

    def _finished(self, evaluation: Evaluation) -> None:
        future = self._waiting.get(evaluation.eval_id)
        if future is not None and not future.done():
            future.set_result(evaluation)
