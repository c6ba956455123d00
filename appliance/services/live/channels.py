"""The channels a Phoenix socket can join (experiments-api.md, WebSocket API).

- `experiment:<id>`: `status_changed`, `progress_updated`, `run_completed`, `error`,
  from the experiment events on the bus.
- `telemetry:<experiment id>` and `telemetry:all`: `event` with each ingested event as
  `GET /api/v1/telemetry/events` shows it; `subscribe` / `unsubscribe` with
  `{"event_types": [...]}` narrow it.
- `dashboard:<user>`: `system_stats` and `experiment_summary`, every
  `dashboard_interval_seconds`.

A channel subscribes to the bus when it is joined (before the join's reply goes out, so
nothing published after the reply is missed) and pushes through `emit`, which never
waits. A channel whose bus subscription overflowed raises `ChannelBehind`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from appliance.core.events import (
    BusEvent,
    EventBus,
    ExperimentEvent,
    ExperimentFault,
    ExperimentProgress,
    ExperimentRunEnded,
    ExperimentStatusChanged,
    Subscription,
    TelemetryIngested,
    TelemetryItem,
)
from appliance.core.identity import Identity
from appliance.core.phoenix import Frame, ok, refuse

Emit = Callable[[str, dict[str, Any]], None]


class ChannelBehind(Exception):
    """The channel's bus subscription overflowed: events were lost."""


class Channel:
    """A joined topic. `run` pushes until cancelled; `receive` answers a client push."""

    def __init__(self, topic: str, join_ref: str | None) -> None:
        self.topic = topic
        self.join_ref = join_ref
        self._stack = contextlib.ExitStack()

    async def run(self, emit: Emit) -> None:
        raise NotImplementedError

    def receive(self, frame: Frame) -> Frame:
        return refuse(frame, f"unknown event {frame.event!r} on {self.topic}")

    def close(self) -> None:
        self._stack.close()


async def _next(subscription: Subscription) -> BusEvent:
    # Lagged only ever happens with a full queue, so checking before each get is enough.
    if subscription.lagged:
        raise ChannelBehind
    return await subscription.get()


# --- experiment:<id> --------------------------------------------------------------------


def experiment_push(event: ExperimentEvent) -> tuple[str, dict[str, Any]]:
    """The document's event name and payload for an experiment event."""
    match event:
        case ExperimentStatusChanged():
            return "status_changed", {
                "status": event.status,
                "started_at": event.started_at,
                "completed_at": event.completed_at,
            }
        case ExperimentProgress():
            return "progress_updated", {
                "progress": event.progress,
                "eta_seconds": event.eta_seconds,
                "completed_runs": event.completed_runs,
                "total_runs": event.total_runs,
            }
        case ExperimentRunEnded():
            return "run_completed", {
                "run_id": event.run_id,
                "status": event.status,
                "metrics": event.metrics,
                "reason": event.reason,
            }
        case ExperimentFault():
            return "error", {"message": event.message, "code": event.code}


class ExperimentChannel(Channel):
    def __init__(
        self, topic: str, join_ref: str | None, bus: EventBus, identity: Identity, experiment_id: str, queue: int
    ) -> None:
        super().__init__(topic, join_ref)
        self.experiment_id = experiment_id
        self._events = self._stack.enter_context(
            bus.subscribe(ExperimentEvent, visible=identity.may_see, queue_size=queue)
        )

    async def run(self, emit: Emit) -> None:
        while True:
            event = await _next(self._events)
            if isinstance(event, ExperimentEvent) and event.experiment_id == self.experiment_id:
                emit(*experiment_push(event))


# --- telemetry:<id> and telemetry:all ---------------------------------------------------


class EventTypes(msgspec.Struct, forbid_unknown_fields=True):
    event_types: list[str]


def type_matches(event_type: str, event_name: list[str]) -> bool:
    """A type names a run of whole segments of the event's name: `model.inference`
    matches `crucible.model.inference`, `crucible` matches every `crucible.*`."""
    wanted = [part for part in event_type.split(".") if part]
    if not wanted:
        return False
    return any(event_name[i : i + len(wanted)] == wanted for i in range(len(event_name) - len(wanted) + 1))


class TelemetryChannel(Channel):
    def __init__(
        self, topic: str, join_ref: str | None, bus: EventBus, identity: Identity, experiment_id: str | None, queue: int
    ) -> None:
        super().__init__(topic, join_ref)
        self.experiment_id = experiment_id  # None: telemetry:all
        self.included: set[str] | None = None  # None: every type not excluded
        self.excluded: set[str] = set()
        self._batches = self._stack.enter_context(
            bus.subscribe(TelemetryIngested, visible=identity.may_see, queue_size=queue)
        )

    def wanted(self, item: TelemetryItem) -> bool:
        if self.experiment_id is not None and item.metadata.get("experiment_id") != self.experiment_id:
            return False
        if any(type_matches(t, item.event_name) for t in self.excluded):
            return False
        return self.included is None or any(type_matches(t, item.event_name) for t in self.included)

    async def run(self, emit: Emit) -> None:
        while True:
            batch = await _next(self._batches)
            if isinstance(batch, TelemetryIngested):
                for item in batch.events:
                    if self.wanted(item):
                        emit("event", msgspec.to_builtins(item))

    def receive(self, frame: Frame) -> Frame:
        if frame.event not in ("subscribe", "unsubscribe"):
            return super().receive(frame)
        try:
            types = set(msgspec.convert(frame.payload, EventTypes).event_types)
        except msgspec.ValidationError as exc:
            return refuse(frame, f'{frame.event} takes {{"event_types": ["model.inference", ...]}}: {exc}')
        if frame.event == "subscribe":
            self.included = (self.included or set()) | types
            self.excluded -= types
        else:
            if self.included is not None:
                self.included -= types
            self.excluded |= types
        return ok(
            frame,
            {
                "event_types": None if self.included is None else sorted(self.included),
                "excluded_event_types": sorted(self.excluded),
            },
        )


# --- dashboard:<user> -------------------------------------------------------------------

SystemStats = Callable[[], Any]  # async () -> dict of cpu, memory, gpu (percent or None)
ExperimentSummary = Callable[[str, datetime], Any]  # async (owner, since) -> (active, completed)


class DashboardChannel(Channel):
    def __init__(
        self,
        topic: str,
        join_ref: str | None,
        user: str,
        system_stats: SystemStats,
        summary: ExperimentSummary,
        interval: float,
    ) -> None:
        super().__init__(topic, join_ref)
        self.user = user
        self._system_stats = system_stats
        self._summary = summary
        self._interval = interval

    async def run(self, emit: Emit) -> None:
        while True:
            emit("system_stats", await self._system_stats())
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            active, completed = await self._summary(self.user, today)
            emit("experiment_summary", {"active": active, "completed_today": completed})
            await asyncio.sleep(self._interval)
