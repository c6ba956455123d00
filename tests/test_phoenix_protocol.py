"""Phoenix Channels V2 without a network: the frame format (core/phoenix.py) and one
socket's channel logic (services/live) on a real event bus: joins and their refusals,
heartbeats, leaves, telemetry's subscribe/unsubscribe and batches, and what a subscriber
that falls behind gets (phx_error, then a close it can reconnect after)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.core import phoenix
from appliance.core.events import (
    EvaluationEvent,
    EventBus,
    ExperimentProgress,
    TelemetryIngested,
    TelemetryItem,
)
from appliance.core.identity import Identity
from appliance.services.live.channels import Channel, ExperimentChannel, TelemetryChannel, experiment_push, type_matches
from appliance.services.live.outbox import TRY_AGAIN_LATER, Close, Outbox
from appliance.services.live.socket import BEHIND, ChannelSocket, JoinRefused
from appliance.tui.feeds import SHOWN_EVENTS

ALICE = Identity(key_id="key_a", name="alice", owner="alice", permissions=frozenset({"read"}))


def frame(topic: str, event: str, payload: dict | None = None, ref: str = "1", join_ref: str | None = "1"):
    return phoenix.Frame(join_ref, ref, topic, event, payload or {})


# --- frames -----------------------------------------------------------------------------


def test_a_frame_is_the_five_element_array_both_ways():
    text = '["3","7","experiment:exp_1","phx_join",{"a":1}]'
    decoded = phoenix.decode(text)
    assert decoded == phoenix.Frame("3", "7", "experiment:exp_1", "phx_join", {"a": 1})
    assert phoenix.encode(phoenix.ok(decoded, {"x": 1})) == (
        '["3","7","experiment:exp_1","phx_reply",{"status":"ok","response":{"x":1}}]'
    )
    heartbeat = phoenix.decode('[null,"9","phoenix","heartbeat",{}]')
    assert phoenix.encode(phoenix.ok(heartbeat)) == '[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]'
    assert phoenix.encode(phoenix.push("3", "t", "e", {})) == '["3",null,"t","e",{}]'
    assert phoenix.encode(phoenix.channel_error("3", "t", "r")) == '["3","3","t","phx_error",{"reason":"r"}]'


@pytest.mark.parametrize(
    "text, says",
    [
        ("hello", "not JSON"),
        ("{}", "Phoenix V2 frame"),
        ('["1","1","t","e"]', "Phoenix V2 frame"),
        ('["1","1","t","e",{},5]', "Phoenix V2 frame"),
        ('[1,"1","t","e",{}]', "$[0]"),
        ('["1","1","t","e",[]]', "$[4]"),
        ('["1","1",null,"e",{}]', "$[2]"),
    ],
)
def test_what_is_not_a_frame_says_why(text, says):
    with pytest.raises(phoenix.FrameError, match=None) as caught:
        phoenix.decode(text)
    assert says in str(caught.value)


# --- one socket -------------------------------------------------------------------------


def joiner(bus: EventBus, queue: int = 100):
    async def join(identity: Identity, topic: str, join_ref: str | None) -> Channel:
        kind, _, name = topic.partition(":")
        if kind == "telemetry":
            return TelemetryChannel(topic, join_ref, bus, identity, None if name == "all" else name, queue)
        if kind == "experiment" and name == "exp_mine":
            return ExperimentChannel(topic, join_ref, bus, identity, name, queue)
        if kind == "experiment":
            raise JoinRefused("not_found", f"experiment {name} not found")
        raise JoinRefused(phoenix.UNMATCHED_TOPIC, "no such topic")

    return join


async def drain(socket: ChannelSocket, count: int) -> list[phoenix.Frame | Close]:
    return [await asyncio.wait_for(socket.next_out(), 2) for _ in range(count)]


def batch(*names: str, experiment_id: str | None = None) -> TelemetryIngested:
    metadata = {"experiment_id": experiment_id} if experiment_id else {}
    return TelemetryIngested(
        events=tuple(
            TelemetryItem(
                id=f"evt_{i}",
                event_name=name.split("."),
                measurements={"n": i},
                metadata=metadata,
                timestamp="2026-12-03T10:00:00.000Z",
            )
            for i, name in enumerate(names)
        )
    )


async def test_joins_replies_heartbeats_and_leaves():
    bus = EventBus()
    socket = ChannelSocket(ALICE, joiner(bus), 100)
    await socket.handle(frame("phoenix", "heartbeat", ref="2", join_ref=None))
    await socket.handle(frame("experiment:exp_mine", "phx_join", ref="3", join_ref="3"))
    await socket.handle(frame("experiment:exp_other", "phx_join", ref="4", join_ref="4"))
    await socket.handle(frame("nope:1", "phx_join", ref="5", join_ref="5"))
    await socket.handle(frame("telemetry:all", "subscribe", ref="6", join_ref="6"))
    hb, joined, refused, unknown, unjoined = await drain(socket, 5)
    assert hb == phoenix.Frame(None, "2", "phoenix", "phx_reply", {"status": "ok", "response": {}})
    assert joined.payload == {"status": "ok", "response": {}} and joined.ref == "3"
    assert refused.payload["status"] == "error" and refused.payload["response"]["reason"] == "not_found"
    assert unknown.payload["response"]["reason"] == "unmatched topic"
    assert unjoined.payload["response"]["reason"] == "unmatched topic"
    assert socket.topics == ["experiment:exp_mine"]

    bus.publish(
        ExperimentProgress(experiment_id="exp_mine", progress=0.5, eta_seconds=3.0, completed_runs=1, total_runs=2),
        owner="alice",
    )
    bus.publish(
        ExperimentProgress(experiment_id="exp_else", progress=0.1, eta_seconds=None, completed_runs=0, total_runs=2),
        owner="alice",
    )
    (pushed,) = await drain(socket, 1)
    assert pushed == phoenix.Frame(
        "3",
        None,
        "experiment:exp_mine",
        "progress_updated",
        {"progress": 0.5, "eta_seconds": 3.0, "completed_runs": 1, "total_runs": 2},
    )

    await socket.handle(frame("experiment:exp_mine", "phx_leave", ref="7", join_ref="3"))
    left, closed = await drain(socket, 2)
    assert left.event == "phx_reply" and left.payload["status"] == "ok"
    assert closed == phoenix.Frame("3", "3", "experiment:exp_mine", "phx_close", {})
    assert socket.topics == []
    await socket.close()


async def test_a_push_of_an_old_join_is_unmatched_and_a_second_join_replaces_the_first():
    bus = EventBus()
    socket = ChannelSocket(ALICE, joiner(bus), 100)
    await socket.handle(frame("telemetry:all", "phx_join", ref="1", join_ref="1"))
    await socket.handle(frame("telemetry:all", "phx_join", ref="2", join_ref="2"))
    await socket.handle(frame("telemetry:all", "subscribe", {"event_types": ["a"]}, ref="3", join_ref="1"))
    first, old_closed, second, stale = await drain(socket, 4)
    assert first.payload["status"] == "ok" and second.payload["status"] == "ok"
    assert old_closed == phoenix.Frame("1", "1", "telemetry:all", "phx_close", {})
    assert stale.payload["response"]["reason"] == "unmatched topic"
    await socket.close()


async def test_telemetry_comes_by_batch_and_by_the_types_subscribed():
    bus = EventBus()
    socket = ChannelSocket(ALICE, joiner(bus), 100)
    await socket.handle(frame("telemetry:all", "phx_join"))
    await socket.handle(frame("telemetry:exp_1", "phx_join", ref="2", join_ref="2"))
    await drain(socket, 2)
    bus.publish(batch("crucible.model.inference", "crucible.run.step", experiment_id="exp_1"), owner="alice")
    bus.publish(batch("crucible.model.inference"), owner="bob")  # not alice's: never seen
    got = await drain(socket, 4)
    by_topic = sorted((f.topic, f.payload["id"]) for f in got)
    assert by_topic == [
        ("telemetry:all", "evt_0"),
        ("telemetry:all", "evt_1"),
        ("telemetry:exp_1", "evt_0"),
        ("telemetry:exp_1", "evt_1"),
    ]
    assert got[0].event == "event" and set(got[0].payload) == {
        "id",
        "event_name",
        "measurements",
        "metadata",
        "timestamp",
    }

    await socket.handle(frame("telemetry:all", "subscribe", {"event_types": ["model.inference"]}, ref="3"))
    await socket.handle(frame("telemetry:all", "subscribe", {"types": "x"}, ref="4"))
    ok_reply, bad = await drain(socket, 2)
    assert ok_reply.payload == {
        "status": "ok",
        "response": {"event_types": ["model.inference"], "excluded_event_types": []},
    }
    assert bad.payload["status"] == "error" and "event_types" in bad.payload["response"]["reason"]
    bus.publish(batch("crucible.run.step", "crucible.model.inference"), owner="alice")
    (only,) = await drain(socket, 1)
    assert only.topic == "telemetry:all" and only.payload["event_name"] == ["crucible", "model", "inference"]

    await socket.handle(frame("telemetry:all", "unsubscribe", {"event_types": ["model.inference"]}, ref="5"))
    (reply,) = await drain(socket, 1)
    assert reply.payload["response"] == {"event_types": [], "excluded_event_types": ["model.inference"]}
    await socket.close()


def test_an_event_type_is_a_run_of_whole_segments():
    name = ["crucible", "model", "inference"]
    assert type_matches("model.inference", name) and type_matches("crucible", name) and type_matches("inference", name)
    assert not type_matches("model.infer", name) and not type_matches("inference.model", name)
    assert not type_matches("", name)


async def test_a_channel_behind_the_bus_errors_and_only_it_goes():
    bus = EventBus()
    socket = ChannelSocket(ALICE, joiner(bus, queue=3), 1000)
    await socket.handle(frame("telemetry:all", "phx_join"))
    await drain(socket, 1)
    for _ in range(5):  # published with no await between: the channel's task never runs
        bus.publish(batch("a.b"), owner="alice")
    # What was queued at the overflow is dropped too: the channel starts over on rejoin.
    got = await drain(socket, 1)
    while got[-1].event == "event":
        got += await drain(socket, 1)
    error = got[-1]
    assert len(got) - 1 < 5
    assert error == phoenix.Frame("1", "1", "telemetry:all", "phx_error", {"reason": BEHIND})
    assert socket.topics == []
    # The socket itself is fine: a rejoin works.
    await socket.handle(frame("telemetry:all", "phx_join", ref="9", join_ref="9"))
    (rejoined,) = await drain(socket, 1)
    assert rejoined.payload["status"] == "ok"
    await socket.close()


async def test_a_socket_behind_its_client_errors_every_channel_and_closes():
    bus = EventBus()
    socket = ChannelSocket(ALICE, joiner(bus), 4)
    await socket.handle(frame("telemetry:all", "phx_join", ref="1", join_ref="1"))
    await socket.handle(frame("experiment:exp_mine", "phx_join", ref="2", join_ref="2"))
    bus.publish(batch(*["a.b"] * 10), owner="alice")  # 10 frames for an outbox of 4, nobody sending
    await asyncio.sleep(0.05)
    assert socket.outbox.overflowed
    got = await drain(socket, 3)
    assert sorted((f.topic, f.event) for f in got[:2]) == [
        ("experiment:exp_mine", "phx_error"),
        ("telemetry:all", "phx_error"),
    ]
    assert got[2] == Close(TRY_AGAIN_LATER, "too far behind")
    assert socket.topics == []


def test_an_outbox_keeps_room_for_a_close():
    box = Outbox(2)
    box.put(phoenix.push(None, "t", "e", {}))
    box.put(phoenix.push(None, "t", "e", {}))
    box.put(Close(1000, "bye"))
    assert not box.overflowed
    box.put(phoenix.push(None, "t", "e", {}))
    assert box.overflowed


def test_experiment_events_become_the_documents_events():
    progress = ExperimentProgress(experiment_id="e", progress=1.0, eta_seconds=None, completed_runs=9, total_runs=9)
    assert experiment_push(progress)[0] == "progress_updated"


def test_live_events_never_reach_ws_and_telemetry_never_the_tui():
    """The bus's experiment and telemetry events are not evaluation events (what /ws and
    /ws/execute forward); the TUI's feed takes experiment events on purpose (its
    Experiments screen), never telemetry batches; their tags are namespaced."""
    progress = ExperimentProgress(experiment_id="e", progress=0.5, eta_seconds=None, completed_runs=1, total_runs=2)
    assert isinstance(progress, SHOWN_EVENTS) and not isinstance(batch("a"), SHOWN_EVENTS)
    for event in (progress, batch("a")):
        assert not isinstance(event, EvaluationEvent)
        tag = type(event).__struct_config__.tag
        assert isinstance(tag, str) and tag.split(".")[0] in ("experiment", "telemetry")
