"""Hostile telemetry input through a real server: huge batches and bodies, deep metadata,
NaN and infinity, strings for numbers, 10 MB values, timestamps far in the past or the
future, the events-per-minute limit. Each is a clear 4xx or a rejection of that event
alone, with its index and reason, and nothing of the bad part is stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.test_auth import create_key

EVENTS = "/api/v1/telemetry/events"
MAX_BATCH = 200
BODY_LIMIT = 12 * 1024 * 1024


def good(n: int, tag: str) -> dict:
    return {"event_name": ["hostile", tag], "measurements": {"n": n}, "metadata": {"tag": tag}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "APPLIANCE_RATE_LIMIT_TELEMETRY_EVENTS": "1000000",
        "APPLIANCE_TELEMETRY_MAX_BATCH_EVENTS": str(MAX_BATCH),
        "APPLIANCE_TELEMETRY_MAX_BODY_BYTES": str(BODY_LIMIT),
        "APPLIANCE_TELEMETRY_MAX_METADATA_DEPTH": "8",
    }
    process = start_v1_server(tmp_path_factory.mktemp("telemetry-hostile"), env=env)
    yield process
    process.stop()


@pytest.fixture()
def client(server, request):
    """A key of its own per test: what it stored is what the test sent."""
    key = create_key(server, f"hostile-{request.node.name[:40]}", owner=f"o{abs(hash(request.node.name)) % 10**8}")
    with server.client(key) as c:
        yield c


def stored(client) -> list[dict]:
    return client.get(EVENTS, params={"per_page": 100, "sort": "timestamp"}).json()["data"]


def tags(client) -> list[str]:
    return sorted(e["metadata"].get("tag", "") for e in stored(client))


def post_raw(client, text: str):
    return client.post(EVENTS, content=text.encode(), headers={"Content-Type": "application/json"})


# --- the whole body refused -----------------------------------------------------------------------


def test_more_events_than_a_batch_holds_is_422(client):
    response = client.post(EVENTS, json={"events": [good(n, "big") for n in range(MAX_BATCH + 1)]})
    error = assert_invalid(response, "events")
    assert "telemetry_max_batch_events" in error["message"]
    assert stored(client) == []


def test_a_body_past_the_limit_is_413(client):
    filler = "x" * (BODY_LIMIT + 1024)
    response = client.post(EVENTS, json={"events": [good(1, "ok"), {**good(2, "huge"), "metadata": {"v": filler}}]})
    assert_v1_error(response, 413, "payload_too_large")
    assert stored(client) == []


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("not json", "body"),
        ('{"events": [{"event_name": ["a"], "measurements": {"x": NaN}}]}', "body"),
        ('{"events": [{"event_name": ["a"], "measurements": {"x": Infinity}}]}', "body"),
        ('{"events": {"event_name": ["a"]}}', "events"),
        ('{"event": []}', "body"),
        ("[]", "body"),
        ("", "body"),
    ],
)
def test_unreadable_bodies_are_422(client, text, field):
    assert_invalid(post_raw(client, text), field)
    assert stored(client) == []


def test_an_empty_batch_stores_nothing(client):
    response = client.post(EVENTS, json={"events": []})
    assert response.status_code == 202
    assert response.json()["data"] == {"accepted": 0, "rejected": 0, "rejections": []}


# --- one event refused, the others stored ---------------------------------------------------------


def deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"down": value}
    return value


NOW = datetime.now(UTC)
BAD_EVENTS = [
    ({"event_name": ["hostile"], "measurements": {"n": "12"}}, "measurements"),
    ({"event_name": ["hostile"], "measurements": {"n": True}}, "measurements"),
    ({"event_name": ["hostile"], "measurements": {"n": "<1e400>"}}, "measurements"),  # out of a double's range
    ({"event_name": ["hostile"], "measurements": {"n": "<-1e400>"}}, "measurements"),
    ({"event_name": ["hostile"], "measurements": {"n": [1, 2]}}, "measurements"),
    ({"event_name": ["hostile"], "measurements": {"bad.name": 1}}, "measurements"),
    ({"event_name": "hostile.dotted"}, "event_name"),
    ({"event_name": []}, "event_name"),
    ({"event_name": ["has space"]}, "event_name"),
    ({"event_name": ["a"] * 9}, "event_name"),
    ({"event_name": ["appliance", "model", "call"], "metadata": {"model_id": "m"}}, "event_name"),
    ({"event_name": ["hostile"], "metadata": deep(9)}, "metadata"),
    ({"event_name": ["hostile"], "metadata": {"x": [[[[[[[[[1]]]]]]]]]}}, "metadata"),
    ({"event_name": ["hostile"], "metadata": {"k" * 300: 1}}, "metadata"),
    ({"event_name": ["hostile"], "metadata": {"experiment_id": 42}}, "metadata.experiment_id"),
    ({"event_name": ["hostile"], "metadata": "not an object"}, "metadata"),
    ({"event_name": ["hostile"], "timestamp": "1970-01-01T00:00:00Z"}, "timestamp"),
    ({"event_name": ["hostile"], "timestamp": "0001-01-01T00:00:00Z"}, "timestamp"),
    ({"event_name": ["hostile"], "timestamp": "9999-12-31T23:59:59Z"}, "timestamp"),
    ({"event_name": ["hostile"], "timestamp": (NOW + timedelta(hours=1)).isoformat()}, "timestamp"),
    ({"event_name": ["hostile"], "timestamp": "yesterday"}, "timestamp"),
    ({"event_name": ["hostile"], "timestamp": 1700000000}, "timestamp"),
    ({"event_name": ["hostile"], "colour": "red"}, "colour"),
    ({"measurements": {"n": 1}}, "event_name"),
    ("just a string", None),
]


def test_each_bad_event_is_rejected_alone(client):
    batch: list = []
    bad_at: dict[int, str | None] = {}
    for n, (event, field) in enumerate(BAD_EVENTS):
        batch.append(good(n, f"g{n:02d}"))
        bad_at[len(batch)] = field
        batch.append(event)
    text = json.dumps({"events": batch}).replace('"<1e400>"', "1e400").replace('"<-1e400>"', "-1e400")
    response = post_raw(client, text)
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["accepted"] == len(BAD_EVENTS) and data["rejected"] == len(BAD_EVENTS), data
    assert [r["index"] for r in data["rejections"]] == sorted(bad_at)
    for rejection in data["rejections"]:
        assert rejection["reason"], rejection
        field = bad_at[rejection["index"]]
        if field is not None:
            assert (rejection["field"] or "").startswith(field.split(".")[0]), (rejection, field)
    assert tags(client) == sorted(f"g{n:02d}" for n in range(len(BAD_EVENTS)))


def test_a_ten_megabyte_value_is_rejected_alone(client):
    batch = [good(1, "before"), {**good(2, "huge"), "metadata": {"tag": "huge", "blob": "y" * (10 * 1024 * 1024)}}]
    batch.append(good(3, "after"))
    response = client.post(EVENTS, json={"events": batch})
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["accepted"] == 2
    assert [(r["index"], r["field"]) for r in data["rejections"]] == [(1, "metadata")]
    assert "telemetry_max_event_bytes" in data["rejections"][0]["reason"]
    assert tags(client) == ["after", "before"]


def test_a_huge_number_of_measurements_is_rejected(client):
    many = {f"m{n}": n for n in range(101)}
    response = client.post(EVENTS, json={"events": [{"event_name": ["hostile"], "measurements": many}]})
    assert response.json()["data"]["rejections"][0]["field"] == "measurements"
    assert stored(client) == []


def test_limits_at_the_edge_are_accepted(client):
    edge = [
        {"event_name": ["a"] * 8, "metadata": {**deep(8), "tag": "deep8"}},
        {"event_name": ["hostile"], "metadata": {"tag": "old"}, "timestamp": (NOW - timedelta(days=364)).isoformat()},
        {
            "event_name": ["hostile"],
            "metadata": {"tag": "soon"},
            "timestamp": (NOW + timedelta(seconds=60)).isoformat(),
        },
        {"event_name": ["hostile"], "measurements": {"big": 1.5e308, "tiny": -5e-324}, "metadata": {"tag": "floats"}},
    ]
    response = client.post(EVENTS, json={"events": edge})
    assert response.json()["data"]["accepted"] == 4, response.text
    assert tags(client) == ["deep8", "floats", "old", "soon"]


def test_a_deeply_nested_body_does_not_crash_the_server(client):
    text = '{"events": [{"event_name": ["a"], "metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}]}"
    response = post_raw(client, text)
    assert response.status_code in (202, 422), response.text
    if response.status_code == 202:
        assert response.json()["data"]["accepted"] == 0
    assert stored(client) == []
    assert client.get(EVENTS).status_code == 200


# --- the events-per-minute limit ------------------------------------------------------------------


def test_the_limit_counts_events(tmp_path):
    server = start_v1_server(tmp_path / "limited", env={"APPLIANCE_RATE_LIMIT_TELEMETRY_EVENTS": "150"})
    try:
        key = create_key(server, "limited", owner="limited")
        with server.client(key) as client:
            first = client.post(EVENTS, json={"events": [good(n, "first") for n in range(100)]})
            assert first.status_code == 202 and first.headers["x-ratelimit-limit"] == "150"
            assert first.headers["x-ratelimit-remaining"] == "50"
            refused = client.post(EVENTS, json={"events": [good(n, "second") for n in range(60)]})
            error = assert_v1_error(refused, 429, "rate_limited", "events")
            assert int(refused.headers["retry-after"]) > 0, error
            assert client.get(EVENTS, params={"per_page": 1}).json()["meta"]["total"] == 100
            assert client.post(EVENTS, json={"events": [good(n, "third") for n in range(50)]}).status_code == 202
    finally:
        server.stop()
