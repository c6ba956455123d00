"""The event bus: a subscriber gets only the kinds it asked for and the owners it may
see, and each event encodes as the WebSocket message that carries it (and decodes back,
which is how the TUI's remote feed reads /ws and /ws/monitor)."""

from __future__ import annotations

import asyncio

import msgspec

from appliance.core.events import (
    AlertEvent,
    AlertOpened,
    Completed,
    CompletedData,
    EvaluationEvent,
    EventBus,
    OutputChunk,
    OutputData,
    RunningData,
    StatusUpdate,
)

ALERT = AlertOpened(
    alert_id="alert_0123456789ab",
    rule="cpu_usage",
    rule_name="High CPU Usage",
    severity="warning",
    status="active",
    message="CPU usage is 97.0%",
    triggered_at="2025-01-15T09:30:00.123Z",
    value=97.0,
    threshold=90.0,
    acknowledged_at=None,
    acknowledged_by=None,
    acknowledged_comment=None,
    resolved_at=None,
    resolved_by=None,
    resolved_comment=None,
)
CHUNK = OutputChunk(eval_id="eval_1", data=OutputData(stream="stdout", output="hi\n"))


class ExperimentStarted(msgspec.Struct, frozen=True, tag_field="type", tag="experiment_started"):
    """A kind added later: no subscriber of today's unions may see it."""

    experiment_id: str


async def drain(subscription) -> list:
    """What the subscription holds now (events are queued as they are published)."""
    items = []
    while True:
        try:
            items.append(await asyncio.wait_for(subscription.get(), 0.01))
        except TimeoutError:
            return items


async def test_a_subscriber_gets_only_the_kinds_it_asked_for():
    bus = EventBus()
    with (
        bus.subscribe(EvaluationEvent) as evaluations,
        bus.subscribe(AlertEvent) as alerts,
        bus.subscribe(EvaluationEvent | AlertEvent) as both,
    ):
        bus.publish(CHUNK, owner="team-a")
        bus.publish(ALERT)
        bus.publish(ExperimentStarted("exp_1"))
        assert await drain(evaluations) == [CHUNK]
        assert await drain(alerts) == [ALERT]
        assert await drain(both) == [CHUNK, ALERT]


async def test_a_subscriber_sees_only_the_owners_it_may():
    bus = EventBus()
    with bus.subscribe(EvaluationEvent, visible=lambda owner: owner == "team-a") as mine:
        bus.publish(CHUNK, owner="team-b")
        bus.publish(CHUNK, owner="team-a")
        assert await asyncio.wait_for(mine.get(), 1) == CHUNK
        assert await drain(mine) == []


async def test_a_slow_subscriber_is_marked_lagged_and_the_others_go_on():
    bus = EventBus(subscriber_queue_size=2)
    with bus.subscribe(EvaluationEvent) as slow, bus.subscribe(AlertEvent) as other:
        for _ in range(3):
            bus.publish(CHUNK)
        bus.publish(ALERT)
        assert slow.lagged and len(await drain(slow)) == 2
        assert not other.lagged and await drain(other) == [ALERT]


def test_events_encode_as_their_websocket_messages_and_decode_back():
    running = StatusUpdate(
        eval_id="eval_1", data=RunningData(status="running", output="", started_at="2025-01-15T09:30:00.000Z")
    )
    assert msgspec.to_builtins(running) == {
        "type": "status_update",
        "eval_id": "eval_1",
        "data": {"status": "running", "output": "", "started_at": "2025-01-15T09:30:00.000Z"},
    }
    final = Completed(
        eval_id="eval_1",
        data=CompletedData(
            status="completed",
            success=True,
            exit_code=0,
            reason=None,
            output="hi\n",
            error="",
            completed_at="2025-01-15T09:30:01.000Z",
            execution_time=0.5,
        ),
    )
    for event in (running, CHUNK, final):
        assert msgspec.json.decode(msgspec.json.encode(event), type=EvaluationEvent) == event
    message = {"type": "alert", **msgspec.to_builtins(ALERT)}  # what /ws/monitor sends
    assert message["event"] == "opened" and message["alert_id"] == ALERT.alert_id
    assert msgspec.convert(message, AlertEvent) == ALERT
