"""`/ws/monitor`: live figures of the appliance, and its alerts as they change.

Client to server:

    {"type": "subscribe", "metrics": ["cpu_usage", "queue_depth"], "interval": 2}
    {"type": "unsubscribe", "metrics": ["cpu_usage"]}      (no "metrics": all of them)
    {"type": "ping"}

Server to client:

    {"type": "subscription", "metrics": [...], "interval": 2.0}   after each (un)subscribe
    {"type": "metric_update", "metric": "cpu_usage", "value": 45.2, "timestamp": "...Z"}
    {"type": "alert", "event": "opened" | "acknowledged" | "resolved", "alert_id": ..., ...}
    {"type": "error", "error": {"code", "message", "details", "request_id"}}
    {"type": "pong"}

Every subscribed metric is sent at once and then every `interval` seconds (default the
setting monitor_interval_seconds; a subscription may ask for 0.5 to 300). Alerts are
sent to every client, subscribed or not. A bad message gets an `error` and changes
nothing; the socket stays open. A refused authentication gets an `error`, then the
socket closes with 1008. Any API key may watch: the figures are the appliance's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from appliance.config import Settings
from appliance.core.clock import iso_z
from appliance.core.errors import AppError
from appliance.core.events import AlertEvent, EventBus, Subscription
from appliance.http.identity import open_socket
from appliance.http.sandbox.errors import SandboxError, sandbox_error
from appliance.services.monitoring.alerts import AlertService
from appliance.services.monitoring.readings import SystemReadings

MIN_INTERVAL, MAX_INTERVAL = 0.5, 300.0
MESSAGE_TYPES = ("subscribe", "unsubscribe", "ping")


class MonitorMessage(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    metrics: list[str] | None = None
    interval: float | None = None


class Subscribed(msgspec.Struct, tag_field="type", tag="subscription"):
    metrics: list[str]
    interval: float


class MetricUpdate(msgspec.Struct, tag_field="type", tag="metric_update"):
    metric: str
    value: float | None
    timestamp: str


class ErrorMessage(msgspec.Struct, tag_field="type", tag="error"):
    error: SandboxError


class Pong(msgspec.Struct, tag_field="type", tag="pong"):
    pass


# An alert is sent as its event's own encoding with the message type in front (see
# forward_alerts), so that one is a mapping; every other message is one of the Structs.
ServerMessage = Subscribed | MetricUpdate | ErrorMessage | Pong | dict[str, Any]


def error_message(status: int, message: str, details: dict[str, Any] | None = None) -> ErrorMessage:
    return ErrorMessage(error=sandbox_error(status, message, details))


def refusal(exc: AppError) -> ErrorMessage:
    return error_message(exc.status_code, exc.detail, exc.details)


@websocket("/ws/monitor")
async def monitor(socket: WebSocket[Any, Any, Any], alerts: AlertService, bus: EventBus, settings: Settings) -> None:
    if await open_socket(socket, alerts.authorize_watch, refusal) is None:
        return
    session = MonitorSession(socket, alerts.readings, settings.monitor_interval_seconds)
    with bus.subscribe(AlertEvent) as events:
        tasks = [asyncio.create_task(session.send_metrics()), asyncio.create_task(session.forward_alerts(events))]
        try:
            await session.read_commands()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class MonitorSession:
    """One client's subscription. Three tasks send on one socket: a lock keeps their
    messages whole."""

    def __init__(self, socket: WebSocket[Any, Any, Any], readings: SystemReadings, interval: float) -> None:
        self._socket = socket
        self._readings = readings
        self.metrics: list[str] = []
        self.interval = min(max(interval, MIN_INTERVAL), MAX_INTERVAL)
        self._changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reply: Subscribed | Pong | None = None  # what the last good client message gets back

    async def send(self, message: ServerMessage) -> None:
        async with self._send_lock:
            await self._socket.send_json(message)

    async def send_metrics(self) -> None:
        while True:
            self._changed.clear()
            if self.metrics:
                names = list(self.metrics)
                readings = await self._readings.read(names)
                for name in names:
                    reading = readings.get(name)
                    if reading is not None:
                        await self.send(MetricUpdate(metric=name, value=reading.value, timestamp=iso_z(reading.at)))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)

    async def forward_alerts(self, events: Subscription) -> None:
        while True:
            event = await events.get()
            if not isinstance(event, AlertEvent):  # the subscription is to alert events only
                continue
            # The event encodes as `{"event": "opened", "alert_id": ...}`: the alert and what happened.
            alert: dict[str, Any] = msgspec.to_builtins(event)
            await self.send({"type": "alert", **alert})

    async def read_commands(self) -> None:
        while True:
            try:
                raw = await self._socket.receive_text()
            except WebSocketDisconnect:
                return
            problem = self.apply(raw)
            if problem is not None:
                await self.send(error_message(400, *problem))
            elif self._reply is not None:
                await self.send(self._reply)
                if isinstance(self._reply, Subscribed):
                    # Confirmed first, then the new set's figures at once.
                    self._changed.set()

    def apply(self, raw: str) -> tuple[str, dict[str, Any]] | None:
        """Carry out one client message; (message, details) of what is wrong with it
        otherwise, and then nothing changes."""
        self._reply = None
        try:
            message = msgspec.json.decode(raw, type=MonitorMessage)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return (
                f"unreadable message ({exc}); send e.g. "
                '{"type": "subscribe", "metrics": ["cpu_usage", "memory_usage"]}',
                {"reason": str(exc)},
            )
        if message.type not in MESSAGE_TYPES:
            return (
                f"unknown message type {message.type!r}; use {', '.join(MESSAGE_TYPES)}",
                {"field": "type", "reason": f"must be one of {', '.join(MESSAGE_TYPES)}"},
            )
        if message.type == "ping":
            self._reply = Pong()
            return None
        offered = self._readings.names
        unknown = [m for m in message.metrics or [] if m not in offered]
        if unknown:
            return (
                f"unknown metric(s) {', '.join(unknown)}; offered: {', '.join(offered)}",
                {"field": "metrics", "reason": "unknown metric", "unknown": unknown, "offered": offered},
            )
        if message.interval is not None and not MIN_INTERVAL <= message.interval <= MAX_INTERVAL:
            return (
                f"interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds",
                {"field": "interval", "reason": f"{message.interval:g} is out of range"},
            )
        if message.type == "subscribe":
            if not message.metrics:
                return (
                    f"name the metrics to subscribe to; offered: {', '.join(offered)}",
                    {"field": "metrics", "reason": "empty", "offered": offered},
                )
            self.metrics += [m for m in dict.fromkeys(message.metrics) if m not in self.metrics]
            if message.interval is not None:
                self.interval = message.interval
        else:
            gone = set(message.metrics) if message.metrics else set(self.metrics)
            self.metrics = [m for m in self.metrics if m not in gone]
        self._reply = Subscribed(metrics=list(self.metrics), interval=self.interval)
        return None
