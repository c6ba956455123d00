"""Asking a model the items of a benchmark: each item's question through part 1's model
calls (cache, retries, each server's limits), its answer judged by the extraction rules
(core/llm/answers.py) or, for code, by running it against the item's tests in a sandbox
(the `code` grader). A model server that fails an item (after its retries) leaves the
item wrong with its error, counted apart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from appliance.core.errors import AppError
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.llm.benchmarks import ItemTranscript, judge, messages_for
from appliance.core.llm.calls import ChatMessage, Parameters
from appliance.core.llm.datasets import DatasetItem, Kind
from appliance.core.llm.grading import GraderSpec
from appliance.core.models import Model
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.graders.base import Grading, GradingContext

T = TypeVar("T")
OnItem = Callable[[int, ItemTranscript], Awaitable[None]]


def owner_identity(owner: str, what: str) -> Identity:
    """Who an experiment's run acts as: its owner, able to run what it runs."""
    return Identity(key_id=f"run:{what}", name=what, owner=owner, permissions=frozenset({EXECUTE, READ}))


class ItemAsker:
    def __init__(self, calls: ModelCalls, grading: Grading) -> None:
        self._calls = calls
        self._grading = grading

    async def ask(
        self, identity: Identity, model: Model, item: DatasetItem, parameters: Parameters | None, cache: bool
    ) -> ItemTranscript:
        messages = messages_for(item)
        try:
            completion = await self._calls.complete(model, messages, parameters, use_cache=cache)
        except AppError as exc:
            return ItemTranscript(
                item_id=item.id, messages=messages, expected=item.answer, correct=False, error=exc.detail
            )
        correct, extracted = judge(item, completion.text)
        details = None
        if item.kind is Kind.CODE:
            correct, details = await self._run_code(identity, model, item, extracted or "", messages, cache)
        return ItemTranscript(
            item_id=item.id,
            messages=messages,
            response=completion.text,
            extracted=extracted,
            expected=item.answer if item.kind is not Kind.CODE else f"the tests of {item.entry_point}",
            correct=correct,
            latency_ms=completion.latency_ms,
            tokens=completion.tokens_in + completion.tokens_out,
            cached=completion.cached,
            details=details,
        )

    async def _run_code(
        self,
        identity: Identity,
        model: Model,
        item: DatasetItem,
        code: str,
        messages: list[ChatMessage],
        cache: bool,
    ) -> tuple[bool, dict[str, str]]:
        # The code is the answer's last block (core/llm/answers.py), taken out already.
        spec = GraderSpec(
            type="code", tests=item.answer, entry_point=item.entry_point, language="python", extract_code=False
        )
        context = GradingContext(
            identity=identity,
            output=code,
            values={},
            messages=messages,
            case_id=item.id,
            model=model,
            use_cache=cache,
        )
        [graded] = await self._grading.grade([spec], context)
        return graded.passed, {"message": graded.message}

    async def ask_all(
        self,
        identity: Identity,
        model: Model,
        items: Sequence[tuple[int, DatasetItem]],
        parameters: Parameters | None,
        cache: bool,
        concurrency: int,
        on_item: OnItem,
        stopping: Callable[[], bool],
    ) -> None:
        """Every (position, item) asked, at most `concurrency` at once; `on_item` after
        each. Stops taking items once `stopping()` says so."""

        async def one(entry: tuple[int, DatasetItem]) -> None:
            position, item = entry
            await on_item(position, await self.ask(identity, model, item, parameters, cache))

        await in_pool(items, concurrency, one, stopping)


async def in_pool(
    entries: Sequence[T], concurrency: int, work: Callable[[T], Awaitable[None]], stopping: Callable[[], bool]
) -> None:
    """`work` on every entry, at most `concurrency` at once, until `stopping()`."""
    iterator = iter(entries)

    async def worker() -> None:
        for entry in iterator:
            if stopping():
                return
            await work(entry)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(entries))))))
