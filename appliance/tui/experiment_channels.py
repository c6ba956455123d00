"""An attached TUI's experiment events: the daemon's `experiment:<id>` Phoenix channels
(`/socket/websocket`, docs/experiments-api.md), for the experiments the Experiments
screen follows.

`/ws` carries no experiment events, so without these an attached screen could only
poll. The screen says which experiments it follows (`follow`); the socket opens once
there is one, joins and leaves their topics as the set changes, and turns each push
(`status_changed`, `progress_updated`, `run_completed`, `error`) back into the bus's
own event struct, handed to the sink like the feed's other events.

`ExperimentPushes` tells the screen whether pushes arrive: `on` each time every join
asked for has been answered (after a (re)connect, a newly followed experiment, a channel
the daemon dropped and that was joined again: what came before the join was missed, so
the screen reloads once then), off when the socket is lost (poll until it is back).
This socket failing never takes the rest of the feed down: a daemon without it only
means the screen polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from appliance.core.events import (
    ExperimentEvent,
    ExperimentFault,
    ExperimentProgress,
    ExperimentRunEnded,
    ExperimentStatusChanged,
)
from appliance.core.phoenix import (
    CLOSE,
    ERROR,
    HEARTBEAT,
    JOIN,
    LEAVE,
    PHOENIX_TOPIC,
    REPLY,
    VSN,
    Frame,
    FrameError,
    decode,
    encode,
)

log = logging.getLogger(__name__)

TOPIC_PREFIX = "experiment:"
# The phoenix JavaScript client's own period; the daemon waits 60 s by default.
HEARTBEAT_SECONDS = 30.0
# The channel's event names (experiment_push in services/live/channels.py) and the bus
# structs their payloads are, once the topic's experiment id is put back.
PUSHED: dict[str, type[ExperimentEvent]] = {
    "status_changed": ExperimentStatusChanged,
    "progress_updated": ExperimentProgress,
    "run_completed": ExperimentRunEnded,
    "error": ExperimentFault,
}


@dataclass(frozen=True)
class ExperimentPushes:
    """Whether experiment events arrive as they happen (see the module's docstring)."""

    on: bool


def experiment_event(topic: str, event: str, payload: dict[str, Any]) -> ExperimentEvent | None:
    """The bus event a push is, or None for one this TUI does not know."""
    kind = PUSHED.get(event)
    if kind is None or not topic.startswith(TOPIC_PREFIX):
        return None
    try:
        return msgspec.convert({**payload, "experiment_id": topic.removeprefix(TOPIC_PREFIX)}, kind)
    except msgspec.ValidationError:
        return None


class ExperimentChannels:
    def __init__(self, ws_base: str, api_key: str, *, open_timeout: float, backoff: tuple[float, ...]) -> None:
        self.ws_base = ws_base.rstrip("/")
        self.api_key = api_key
        self.open_timeout = open_timeout
        self.backoff = backoff
        self.joined: set[str] = set()  # experiment ids whose join the daemon accepted
        self.wanted: set[str] = set()  # set through `follow`
        self.changed = asyncio.Event()  # set when `wanted` changes
        self._got_through = False

    def follow(self, experiment_ids: Iterable[str]) -> None:
        """Follow these experiments (and no others) from now on."""
        wanted = set(experiment_ids)
        if wanted != self.wanted:
            self.wanted = wanted
            self.changed.set()

    async def run(self, sink: Any) -> None:
        while not self.wanted:
            self.changed.clear()
            await self.changed.wait()
        failures = 0
        while True:
            self._got_through = False
            try:
                await self._session(sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                log.debug("experiment channels: %s", exc)
            finally:
                self.joined.clear()
            if self._got_through:
                failures = 0
                sink(ExperimentPushes(False))
            await asyncio.sleep(self.backoff[min(failures, len(self.backoff) - 1)])
            failures += 1

    async def _session(self, sink: Any) -> None:
        from websockets.asyncio.client import connect

        async with connect(
            f"{self.ws_base}/socket/websocket?vsn={VSN}",
            additional_headers={"X-API-Key": self.api_key},
            open_timeout=self.open_timeout,
            ping_interval=10,
            ping_timeout=10,
        ) as socket:
            self._got_through = True
            await _Session(socket, self, sink).run()


class _Session:
    """One connection: keeps the joined topics equal to the followed experiments."""

    def __init__(self, socket: Any, owner: ExperimentChannels, sink: Any) -> None:
        self.socket = socket
        self.owner = owner
        self.sink = sink
        self.refs = (str(n) for n in itertools.count(1))
        self.join_refs: dict[str, str] = {}  # topic -> the ref of its latest join
        self.pending: dict[str, str] = {}  # ref of a join awaiting its reply -> topic

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_SECONDS
        receiving: asyncio.Task[Any] | None = None
        changed: asyncio.Task[Any] | None = None
        try:
            while True:
                self.owner.changed.clear()
                await self._sync()
                receiving = receiving or asyncio.ensure_future(self.socket.recv())
                changed = changed or asyncio.ensure_future(self.owner.changed.wait())
                timeout = max(0.0, next_beat - loop.time())
                done, _ = await asyncio.wait({receiving, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if receiving in done:
                    raw, receiving = receiving.result(), None  # raises when the socket is lost
                    await self._received(raw)
                if changed in done:
                    changed = None
                if loop.time() >= next_beat:
                    await self._send(Frame(None, next(self.refs), PHOENIX_TOPIC, HEARTBEAT, {}))
                    next_beat = loop.time() + HEARTBEAT_SECONDS
        finally:
            for task in (receiving, changed):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _sync(self) -> None:
        wanted = {TOPIC_PREFIX + experiment_id for experiment_id in self.owner.wanted}
        unanswered = bool(self.pending)
        for topic in set(self.join_refs) - wanted:
            join_ref = self.join_refs.pop(topic)
            self.pending.pop(join_ref, None)  # its answer, if still to come, is ignored
            self.owner.joined.discard(topic.removeprefix(TOPIC_PREFIX))
            await self._send(Frame(join_ref, next(self.refs), topic, LEAVE, {}))
        for topic in wanted - set(self.join_refs):
            await self._join(topic)
        if unanswered and not self.pending:
            self.sink(ExperimentPushes(True))

    async def _join(self, topic: str) -> None:
        old = self.join_refs.get(topic)
        if old is not None:
            self.pending.pop(old, None)
        ref = next(self.refs)  # a join's ref is its join_ref too, as the phoenix client's
        self.join_refs[topic] = ref
        self.pending[ref] = topic
        await self._send(Frame(ref, ref, topic, JOIN, {}))

    async def _send(self, frame: Frame) -> None:
        await self.socket.send(encode(frame))

    async def _received(self, raw: str | bytes) -> None:
        try:
            frame = decode(raw)
        except FrameError:
            return
        current = self.join_refs.get(frame.topic)
        if frame.join_ref is None or frame.join_ref != current:
            return  # the heartbeat's reply, or what an old join of the topic still got
        if frame.event == REPLY and self.pending.pop(frame.ref or "", None) is not None:
            # Refused (the experiment is gone, or not this key's): the topic stays in
            # join_refs, so it is not asked for again while it is followed.
            if frame.payload.get("status") == "ok":
                self.owner.joined.add(frame.topic.removeprefix(TOPIC_PREFIX))
            if not self.pending:
                self.sink(ExperimentPushes(True))
        elif frame.event in (ERROR, CLOSE):
            # The daemon dropped the channel (it fell behind): join again; its answer
            # has the screen reload what was missed.
            self.owner.joined.discard(frame.topic.removeprefix(TOPIC_PREFIX))
            await self._join(frame.topic)
        elif (event := experiment_event(frame.topic, frame.event, frame.payload)) is not None:
            self.sink(event)
