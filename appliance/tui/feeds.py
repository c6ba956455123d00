"""Feeds: where the TUI's live events come from.

- `RemoteFeed`: a daemon's `/ws` (evaluation events) and `/ws/monitor` (figures and
  alerts) over WebSocket; a lost connection is reported and retried with backoff. The
  experiments the Experiments screen follows come from the daemon's Phoenix channels
  beside them (tui/experiment_channels.py).
- `BusFeed`: the in-process event bus and system readings of `appliance run`.

Both hand `live` items to a sink and run until cancelled; evaluation and alert events
are the bus's own structs either way (each encodes as its WebSocket message, so the
remote feed decodes the messages back into them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from types import UnionType
from typing import Any, Protocol

import msgspec

from appliance.core.clock import iso_z
from appliance.core.events import AlertEvent, EvaluationEvent, ExperimentEvent
from appliance.tui.experiment_channels import ExperimentChannels, ExperimentPushes
from appliance.tui.live import FEED_INTERVAL_SECONDS, FEED_METRICS, Connected, Disconnected, FeedItem, MetricSample

Sink = Callable[[FeedItem], None]
# What the screens show; any other event on the bus (telemetry batches) is not the TUI's.
# Attached, experiment events come from the Phoenix channels: /ws carries none.
SHOWN_EVENTS = EvaluationEvent | AlertEvent | ExperimentEvent
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Feed(Protocol):
    async def run(self, sink: Sink) -> None: ...

    def follow_experiments(self, experiment_ids: Iterable[str]) -> None:
        """The experiments whose events the Experiments screen wants from now on."""


class RemoteFeed:
    def __init__(
        self, ws_base: str, api_key: str, *, open_timeout: float = 5.0, backoff: tuple[float, ...] = BACKOFF_SECONDS
    ) -> None:
        self.ws_base = ws_base.rstrip("/")
        self.api_key = api_key.strip()
        self.open_timeout = open_timeout
        self.backoff = backoff
        self.experiments = ExperimentChannels(self.ws_base, self.api_key, open_timeout=open_timeout, backoff=backoff)

    def follow_experiments(self, experiment_ids: Iterable[str]) -> None:
        self.experiments.follow(experiment_ids)

    async def run(self, sink: Sink) -> None:
        experiments = asyncio.create_task(self.experiments.run(sink))
        try:
            await self._run(sink)
        finally:
            experiments.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await experiments

    async def _run(self, sink: Sink) -> None:
        failures = 0  # in a row since the last session that got through
        while True:
            self._got_through = False
            try:
                await self._session(sink)
                reason = "the appliance closed the connection"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                reason = _describe(exc)
            if self._got_through:
                failures = 0
            delay = self.backoff[min(failures, len(self.backoff) - 1)]
            failures += 1
            sink(Disconnected(reason, delay))
            await asyncio.sleep(delay)

    async def _session(self, sink: Sink) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        headers = {"X-API-Key": self.api_key}
        async with (
            connect(
                f"{self.ws_base}/ws/monitor",
                additional_headers=headers,
                open_timeout=self.open_timeout,
                ping_interval=10,
                ping_timeout=10,
            ) as monitor,
            connect(
                f"{self.ws_base}/ws",
                additional_headers=headers,
                open_timeout=self.open_timeout,
                ping_interval=10,
                ping_timeout=10,
            ) as events,
        ):
            with contextlib.suppress(ConnectionClosed):  # a refusal: its error is still to be read
                await monitor.send(
                    json.dumps({"type": "subscribe", "metrics": list(FEED_METRICS), "interval": FEED_INTERVAL_SECONDS})
                )
            first = json.loads(await asyncio.wait_for(monitor.recv(), self.open_timeout))
            if first.get("type") == "error":
                raise FeedRefused(first.get("error", {}).get("message", "refused"))
            self._got_through = True
            sink(Connected())
            readers = [
                asyncio.create_task(_read_monitor(monitor, sink)),
                asyncio.create_task(_read_events(events, sink)),
            ]
            try:
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a reader's error is this session's
            finally:
                for task in readers:
                    task.cancel()
                for task in readers:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


class FeedRefused(Exception):
    """The daemon answered but refused the feed (a bad or revoked key)."""


async def _read_monitor(socket: Any, sink: Sink) -> None:
    async for raw in socket:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "metric_update":
            sink(MetricSample(message["metric"], message.get("value"), message.get("timestamp", "")))
        elif kind == "alert" and (event := _decoded(message, AlertEvent)) is not None:
            sink(event)
        elif kind == "error":
            raise FeedRefused(message.get("error", {}).get("message", "error"))


async def _read_events(socket: Any, sink: Sink) -> None:
    async for raw in socket:
        message = json.loads(raw)
        if message.get("type") == "error" and not message.get("eval_id"):
            raise FeedRefused(str((message.get("data") or {}).get("error", "error")))
        if (event := _decoded(message, EvaluationEvent)) is not None:
            sink(event)


def _decoded(message: dict, kinds: UnionType) -> Any:
    """The event the message is (each encodes as its message), or None for one this
    TUI does not know: a pong, or a kind newer than it."""
    try:
        return msgspec.convert(message, kinds)
    except msgspec.ValidationError:
        return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, FeedRefused):
        return f"refused: {exc}"
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return "the appliance does not answer"
    return type(exc).__name__


class BusFeed:
    """`appliance run`: the same events, straight from the process's own bus."""

    def __init__(self, bus: Any, readings: Any, *, interval: float = FEED_INTERVAL_SECONDS) -> None:
        self.bus = bus
        self.readings = readings  # SystemReadings: `await read(names) -> {name: Reading}`
        self.interval = interval

    def follow_experiments(self, experiment_ids: Iterable[str]) -> None:
        """Nothing to do: every experiment event on the bus reaches the TUI."""

    async def run(self, sink: Sink) -> None:
        sink(Connected())
        sink(ExperimentPushes(True))
        with self.bus.subscribe(SHOWN_EVENTS) as subscription:
            metrics = asyncio.create_task(self._metrics(sink))
            try:
                while True:
                    sink(await subscription.get())
            finally:
                metrics.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await metrics

    async def _metrics(self, sink: Sink) -> None:
        while True:
            readings = await self.readings.read(FEED_METRICS)
            for name in FEED_METRICS:
                reading = readings.get(name)
                if reading is not None:
                    sink(MetricSample(name, reading.value, iso_z(reading.at)))
            await asyncio.sleep(self.interval)
