"""Events the appliance records about itself: each evaluation and execution that ends
(the queue's finish listeners, as monitoring uses), and each call the LLM evaluations
make to a model server (`ModelCallEvents`, the LLM services' recorder).

Recording never waits: an event goes into a list, and a task stores the list every
FLUSH_SECONDS through the same group-committing writer as the API's batches. No bus
message is sent per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

from appliance.core.clock import utc_now
from appliance.core.evaluations import KIND_EXECUTION, Evaluation
from appliance.core.llm.calls import MODEL_CALL_EVENT, ModelCallRecord
from appliance.core.telemetry import EVALUATION_COMPLETED, EXECUTION_COMPLETED, IngestBatch, to_ms
from appliance.store.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
MAX_PENDING = 100_000  # past this (the store is failing), the oldest are dropped

_encode = msgspec.json.encode


class FinishSource(Protocol):
    def add_finish_listener(self, listener: Callable[[Evaluation], None]) -> None: ...


def evaluation_event(e: Evaluation) -> tuple[Sequence[str], dict[str, float], dict[str, Any], datetime]:
    """An ended evaluation as (event name, measurements, metadata, timestamp)."""
    measurements: dict[str, float] = {}
    if e.execution_time is not None:
        measurements["execution_time_ms"] = e.execution_time * 1000
    if e.memory_used is not None:
        measurements["memory_used_bytes"] = float(e.memory_used)
    if e.started_at is not None:
        measurements["queue_wait_ms"] = max(0.0, (e.started_at - e.created_at).total_seconds() * 1000)
    metadata: dict[str, Any] = {
        "eval_id": e.eval_id,
        "language": e.language,
        "engine": e.engine,
        "status": e.status.value,
        "reason": e.reason,
        "owner": e.owner,
        "kind": e.kind,
    }
    name = EXECUTION_COMPLETED if e.kind == KIND_EXECUTION else EVALUATION_COMPLETED
    return name, measurements, metadata, e.completed_at or utc_now()


class ApplianceEvents:
    def __init__(self, store: TelemetryStore, enabled: bool = True) -> None:
        self._store = store
        self._enabled = enabled
        self._pending = IngestBatch(rows=[], values=[])
        self._task: asyncio.Task[None] | None = None

    def attach(self, source: FinishSource) -> None:
        if self._enabled:
            source.add_finish_listener(self._finished)

    def _finished(self, evaluation: Evaluation) -> None:
        name, measurements, metadata, moment = evaluation_event(evaluation)
        self.record(name, measurements, metadata, owner=evaluation.owner, timestamp=moment)

    def record(
        self,
        name: Sequence[str],
        measurements: Mapping[str, float],
        metadata: Mapping[str, Any],
        *,
        owner: str,
        timestamp: datetime | None = None,
    ) -> None:
        """Queue one event of the appliance's own (stored within FLUSH_SECONDS)."""
        if not self._enabled:
            return
        values = dict(measurements)
        experiment = metadata.get("experiment_id")
        row = (
            to_ms(timestamp or utc_now()),
            ".".join(name),
            owner,
            experiment if isinstance(experiment, str) else None,
            _encode(values).decode(),
            _encode(dict(metadata)).decode(),
        )
        if len(self._pending.rows) >= MAX_PENDING:
            del self._pending.rows[0], self._pending.values[0]
        self._pending.rows.append(row)
        self._pending.values.append(values)

    async def start(self) -> None:
        if self._enabled:
            self._task = asyncio.create_task(self._flush_forever(), name="telemetry-appliance-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        if not self._pending.rows:
            return
        batch, self._pending = self._pending, IngestBatch(rows=[], values=[])
        try:
            await self._store.insert(batch)
        except Exception:
            log.exception("telemetry: %d events of the appliance's own could not be stored", len(batch.rows))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()


# A model call is the appliance's own doing, whoever's evaluation asked for it.
MODEL_CALL_OWNER = "appliance"


class ModelCallEvents:
    """The LLM services' model calls as events `appliance.model.call`: what the model
    registry's statistics (GET /api/v1/models/:id/statistics) are computed from."""

    def __init__(self, events: ApplianceEvents) -> None:
        self._events = events

    def record(self, call: ModelCallRecord) -> None:
        self._events.record(MODEL_CALL_EVENT, call.measurements, call.metadata, owner=MODEL_CALL_OWNER)
