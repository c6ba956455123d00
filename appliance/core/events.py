"""In-process publish/subscribe bus, and the events it carries.

Every producer (the evaluation queue, the alert service) publishes here once, and every
consumer (`/ws`, `/ws/monitor`, `/ws/execute`, the TUI) subscribes here, so all of them
see the same events in the same order.

An event is one Struct per kind, grouped in unions by what they are about:
`EvaluationEvent` and `AlertEvent`, together `BusEvent`. A consumer subscribes to the
union it knows and tells its members apart with isinstance or match, never by a name,
so a kind added later (experiments, telemetry) reaches no consumer that did not ask for
it. The tags are the names the documented WebSocket messages use: an evaluation event
encodes as its `/ws` message, an alert event as the body of its `/ws/monitor` message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from types import UnionType
from typing import Any

import msgspec

from appliance.core.alerts import AlertBody

# --- evaluation events: `{"type": ..., "eval_id": ..., "data": {...}}` on /ws ------------
# Times are already what the API shows (ISO 8601 with ms and Z), statuses their values.


class RunningData(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "running"
    output: str
    started_at: str


class OutputData(msgspec.Struct, frozen=True, kw_only=True):
    stream: str  # "stdout" or "stderr"
    output: str  # the text written since the last chunk


class CompletedData(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # completed, failed or timeout
    success: bool
    exit_code: int | None
    reason: str | None
    output: str
    error: str
    completed_at: str | None
    execution_time: float | None


class ErrorData(msgspec.Struct, frozen=True, kw_only=True):
    error: str


class StatusUpdate(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="status_update"):
    """A worker took the evaluation: it runs now."""

    eval_id: str
    data: RunningData


class OutputChunk(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="output_chunk"):
    eval_id: str
    data: OutputData


class Completed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="completed"):
    """The evaluation reached its final status (whatever it is)."""

    eval_id: str
    data: CompletedData


class EvaluationError(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error"):
    """The platform could not run the evaluation; a `Completed` (failed) follows."""

    eval_id: str
    data: ErrorData


EvaluationEvent = StatusUpdate | OutputChunk | Completed | EvaluationError


# --- alert events: the alert as the API shows it, tagged `event` ------------------------


class AlertChange(AlertBody, frozen=True, kw_only=True, tag_field="event"):
    """The alert after the change; `/ws/monitor` sends it with `"type": "alert"`."""


class AlertOpened(AlertChange, frozen=True, kw_only=True, tag="opened"):
    pass


class AlertAcknowledged(AlertChange, frozen=True, kw_only=True, tag="acknowledged"):
    pass


class AlertResolved(AlertChange, frozen=True, kw_only=True, tag="resolved"):
    pass


AlertEvent = AlertOpened | AlertAcknowledged | AlertResolved


# --- experiment events: what the `experiment:<id>` Phoenix channel pushes --------------
# Tagged under `experiment.` so no consumer of plain names (`/ws`'s `status_update`,
# `error`) could mistake one for its own even if it subscribed too widely.


class ExperimentStatusChanged(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="experiment.status"):
    experiment_id: str
    status: str
    started_at: str | None
    completed_at: str | None


class ExperimentProgress(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="experiment.progress"):
    experiment_id: str
    progress: float  # 0..1, of the planned runs
    eta_seconds: float | None  # None when not running or nothing ended yet to estimate from
    completed_runs: int  # planned runs that ended (any final status)
    total_runs: int


class ExperimentRunEnded(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="experiment.run_ended"):
    experiment_id: str
    run_id: str
    status: str
    metrics: dict[str, float]  # the latest value of each metric the run reported
    reason: str | None


class ExperimentFault(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="experiment.error"):
    """Something went wrong in the experiment: a run failed, or the experiment did."""

    experiment_id: str
    code: str
    message: str


ExperimentEvent = ExperimentStatusChanged | ExperimentProgress | ExperimentRunEnded | ExperimentFault


# --- telemetry: one bus event per ingested batch ---------------------------------------


class TelemetryItem(msgspec.Struct, frozen=True, kw_only=True):
    """One stored telemetry event as `GET /api/v1/telemetry/events` shows it."""

    id: str
    event_name: list[str]  # e.g. ["crucible", "model", "inference"]
    measurements: dict[str, Any]
    metadata: dict[str, Any]  # its "experiment_id", if any, is what telemetry:<id> matches
    timestamp: str  # ISO 8601 with Z


class TelemetryIngested(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="telemetry.ingested"):
    """A batch as stored, published once per ingest call with the sender as owner, so a
    subscriber gets it in one piece and ingest never waits for anyone (offer is
    non-blocking; a subscriber that cannot keep up is marked lagged)."""

    events: tuple[TelemetryItem, ...]


LiveEvent = ExperimentEvent | TelemetryIngested

BusEvent = EvaluationEvent | AlertEvent | LiveEvent

# Whose an event is: an evaluation's owner, or the appliance's own (alerts), which
# admins see. A delivery detail, not part of any message.
APPLIANCE_OWNER = ""


# --- the bus ---------------------------------------------------------------------------


class Subscription:
    """A bounded queue of the events a consumer asked for. A consumer too slow to keep
    up is marked lagged and gets no more events, instead of making the bus grow without
    bound."""

    def __init__(self, kinds: type | UnionType, visible: Callable[[str], bool] | None, maxsize: int) -> None:
        self._queue: asyncio.Queue[BusEvent] = asyncio.Queue(maxsize)
        self._kinds = kinds
        self._visible = visible
        self.lagged = False

    def offer(self, event: BusEvent, owner: str) -> None:
        if self.lagged or not isinstance(event, self._kinds):
            return
        if self._visible is not None and not self._visible(owner):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self) -> BusEvent:
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            yield await self._queue.get()


class EventBus:
    def __init__(self, subscriber_queue_size: int = 10_000) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = subscriber_queue_size

    def publish(self, event: BusEvent, owner: str = APPLIANCE_OWNER) -> None:
        for sub in tuple(self._subscribers):
            sub.offer(event, owner)

    @contextmanager
    def subscribe(
        self,
        kinds: type | UnionType,
        *,
        visible: Callable[[str], bool] | None = None,
        queue_size: int | None = None,
    ) -> Iterator[Subscription]:
        """Events that are instances of `kinds` (a class or a union such as
        `EvaluationEvent`), of owners `visible(owner)` accepts (default: all); at most
        `queue_size` (default: the bus's) waiting before the subscriber is lagged."""
        sub = Subscription(kinds, visible, queue_size or self._queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
