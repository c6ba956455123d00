"""Telemetry through a real server (experiments-api.md, Telemetry Endpoints): ingest,
every filter of the list, each aggregation against values computed here, exports parsed
back, export jobs, deletion by experiment, and who sees what."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from appliance.client import ApplianceClient
from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.support import eventually
from tests.test_auth import create_key

EVENTS = "/api/v1/telemetry/events"
AGGREGATE = "/api/v1/telemetry/aggregate"
EXPORT = "/api/v1/telemetry/export"
NAMES = (("crucible", "model", "inference"), ("crucible", "model", "error"), ("crucible", "judge", "score"))
EXPERIMENTS = ("exp_alpha", "exp_beta")
MODELS = ("gpt-4", "llama-3")
# Whole hours, well inside the default 1-year window, a little over five hours long.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
SPAN_MINUTES = 5 * 60 + 30


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dataset(count: int = 600, seed: int = 15) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        moment = BASE + timedelta(seconds=rng.randrange(SPAN_MINUTES * 60), milliseconds=rng.randrange(1000))
        events.append(
            {
                "event_name": list(NAMES[n % 3]),
                "measurements": {"duration_ms": rng.randint(5, 2000), "tokens": rng.randint(1, 500)},
                "metadata": {
                    "experiment_id": EXPERIMENTS[n % 2],
                    "model": MODELS[(n // 2) % 2],
                    "run": {"seed": n % 4},
                },
                "timestamp": iso(moment),
            }
        )
    return events


DATA = dataset()


def at(event: dict) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9))) - 1]


def expected(agg: str, values: list[float]) -> float:
    if agg == "count":
        return float(len(values))
    if agg == "sum":
        return float(sum(values))
    if agg == "avg":
        return sum(values) / len(values)
    if agg == "min":
        return float(min(values))
    if agg == "max":
        return float(max(values))
    return nearest_rank(values, {"p50": 0.5, "p95": 0.95, "p99": 0.99}[agg])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "APPLIANCE_RATE_LIMIT_TELEMETRY_EVENTS": "1000000",
        "APPLIANCE_TELEMETRY_EXPORT_SYNC_MAX_ROWS": "400",
        "APPLIANCE_TELEMETRY_MAX_BATCH_EVENTS": "1000",
        "APPLIANCE_TELEMETRY_MAX_BODY_BYTES": str(16 * 1024 * 1024),
        "APPLIANCE_TELEMETRY_MAX_EVENT_BYTES": str(64 * 1024),
    }
    process = start_v1_server(tmp_path_factory.mktemp("telemetry"), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keys(server):
    return {
        "alice": create_key(server, "alice-telemetry", owner="alice"),
        "bob": create_key(server, "bob-telemetry", owner="bob"),
        "reader": create_key(server, "reader-telemetry", "read", owner="alice"),
    }


@pytest.fixture(scope="module")
def alice(server, keys):
    with server.client(keys["alice"]) as client:
        response = client.post(EVENTS, json={"events": DATA})
        assert response.status_code == 202, response.text
        assert response.json()["data"] == {"accepted": len(DATA), "rejected": 0, "rejections": []}
        yield client


def all_events(client, params: dict | None = None) -> list[dict]:
    """Every event of a list, page by page through the cursors."""
    found: list[dict] = []
    query = {"per_page": "100", **(params or {})}
    response = client.get(EVENTS, params=query)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        found.extend(body["data"])
        if not body["meta"]["has_more"]:
            return found
        response = client.get(EVENTS, params={**query, "cursor": body["meta"]["next_cursor"]})


def same_event(stored: dict, sent: dict) -> bool:
    return (
        stored["event_name"] == sent["event_name"]
        and stored["measurements"] == sent["measurements"]
        and stored["metadata"] == sent["metadata"]
        and stored["timestamp"] == sent["timestamp"]
    )


# --- ingest and the list ------------------------------------------------------------------------


def test_events_read_back_as_sent_newest_first(alice):
    found = all_events(alice)
    assert len(found) == len(DATA)
    assert len({e["id"] for e in found}) == len(DATA) and all(e["id"].startswith("evt_") for e in found)
    stamps = [e["timestamp"] for e in found]
    assert stamps == sorted(stamps, reverse=True)
    key = lambda e: (e["timestamp"], json.dumps(e["metadata"], sort_keys=True), e["measurements"]["duration_ms"])  # noqa: E731
    for stored, sent in zip(sorted(found, key=key), sorted(DATA, key=key), strict=True):
        assert same_event(stored, sent), (stored, sent)
    first = alice.get(EVENTS, params={"per_page": 5, "page": 2}).json()
    assert first["meta"]["total"] == len(DATA) and first["meta"]["page"] == 2 and len(first["data"]) == 5


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"filter[event_name]": "crucible.model.inference"}, lambda e: e["event_name"] == list(NAMES[0])),
        ({"filter[event_name]": "crucible.model.*"}, lambda e: e["event_name"][:2] == ["crucible", "model"]),
        (
            {"filter[event_name]": "crucible.judge.score,crucible.model.error"},
            lambda e: e["event_name"] in (list(NAMES[1]), list(NAMES[2])),
        ),
        ({"filter[experiment_id]": "exp_beta"}, lambda e: e["metadata"]["experiment_id"] == "exp_beta"),
        ({"filter[after]": iso(BASE + timedelta(hours=2))}, lambda e: at(e) >= BASE + timedelta(hours=2)),
        ({"filter[before]": iso(BASE + timedelta(minutes=90))}, lambda e: at(e) < BASE + timedelta(minutes=90)),
        (
            {
                "filter[experiment_id]": "exp_alpha",
                "filter[event_name]": "crucible.model.*",
                "filter[after]": iso(BASE + timedelta(minutes=30)),
                "filter[before]": iso(BASE + timedelta(hours=4, minutes=10)),
            },
            lambda e: (
                e["metadata"]["experiment_id"] == "exp_alpha"
                and e["event_name"][1] == "model"
                and BASE + timedelta(minutes=30) <= at(e) < BASE + timedelta(hours=4, minutes=10)
            ),
        ),
    ],
)
def test_each_filter_takes_exactly_its_events(alice, params, keep):
    found = all_events(alice, params)
    wanted = [e for e in DATA if keep(e)]
    assert wanted and len(found) == len(wanted)
    assert alice.get(EVENTS, params={**params, "per_page": 1}).json()["meta"]["total"] == len(wanted)
    assert sorted(e["timestamp"] for e in found) == sorted(e["timestamp"] for e in wanted)


def test_oldest_first_with_sort(alice):
    body = alice.get(EVENTS, params={"sort": "timestamp", "per_page": 3}).json()
    assert [e["timestamp"] for e in body["data"]] == sorted(e["timestamp"] for e in DATA)[:3]


def test_owners_see_their_own_events(server, keys, alice):
    with server.client(keys["bob"]) as bob:
        assert bob.get(EVENTS).json()["meta"]["total"] == 0
        assert bob.get(AGGREGATE, params={"agg": "count", "interval": "1d"}).json()["data"] == []
    with server.admin() as admin:
        assert admin.get(EVENTS, params={"filter[experiment_id]": "exp_alpha"}).json()["meta"]["total"] == 300


def test_a_read_only_key_reads_but_does_not_ingest(server, keys, alice):
    with server.client(keys["reader"]) as reader:
        assert reader.get(EVENTS, params={"per_page": 1}).json()["meta"]["total"] == len(DATA)
        assert_v1_error(reader.post(EVENTS, json={"events": DATA[:1]}), 403, "forbidden")
        assert_v1_error(reader.delete(EVENTS, params={"filter[experiment_id]": "exp_alpha"}), 403, "forbidden")


def test_timestamp_defaults_to_arrival(server, keys):
    with server.client(keys["bob"]) as bob:
        before = datetime.now(UTC) - timedelta(seconds=1)
        response = bob.post(EVENTS, json={"events": [{"event_name": ["bob", "ping"], "measurements": {"n": 1}}]})
        assert response.status_code == 202, response.text
        (event,) = bob.get(EVENTS, params={"filter[event_name]": "bob.ping"}).json()["data"]
        assert before <= at(event) <= datetime.now(UTC) + timedelta(seconds=1)
        assert event["metadata"] == {} and event["measurements"] == {"n": 1}


# --- aggregation ---------------------------------------------------------------------------------


def hour_of(event: dict, seconds: int) -> str:
    stamp = int(at(event).timestamp())
    return iso(datetime.fromtimestamp(stamp - stamp % seconds, UTC))


def grouped(events: list[dict], key) -> dict:
    out: dict = {}
    for event in events:
        out.setdefault(key(event), []).append(float(event["measurements"]["duration_ms"]))
    return out


def check_value(agg: str, got: float, values: list[float], exact: bool) -> None:
    want = expected(agg, values)
    if exact or not agg.startswith("p"):
        assert got == pytest.approx(want, rel=1e-9), (agg, got, want)
    else:  # from the hourly sketches: within 1% of the exact value
        assert abs(got - want) <= 0.01 * abs(want), (agg, got, want)


@pytest.mark.parametrize("agg", ["count", "avg", "sum", "min", "max", "p50", "p95", "p99"])
@pytest.mark.parametrize("interval", ["1m", "5m", "1h", "1d"])
def test_aggregate_by_interval(alice, agg, interval):
    seconds = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86_400}[interval]
    response = alice.get(AGGREGATE, params={"agg": agg, "metric": "duration_ms", "interval": interval})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["interval"] == interval and body["meta"]["agg"] == agg
    want = grouped(DATA, lambda e: hour_of(e, seconds))
    assert [p["timestamp"] for p in body["data"]] == sorted(want)
    for point in body["data"]:
        values = want[point["timestamp"]]
        assert point["count"] == len(values)
        check_value(agg, point["value"], values, body["meta"]["exact"])


@pytest.mark.parametrize("agg", ["count", "avg", "p95", "max"])
def test_aggregate_grouped_and_filtered(alice, agg):
    params = {
        "agg": agg,
        "metric": "duration_ms",
        "interval": "1h",
        "group_by": "event_name",
        "filter[event_name]": "crucible.model.*",
        "filter[after]": iso(BASE + timedelta(minutes=45)),
    }
    body = alice.get(AGGREGATE, params=params).json()
    kept = [e for e in DATA if e["event_name"][1] == "model" and at(e) >= BASE + timedelta(minutes=45)]
    want = grouped(kept, lambda e: (hour_of(e, 3600), ".".join(e["event_name"])))
    assert sorted((p["timestamp"], p["group"]) for p in body["data"]) == sorted(want)
    for point in body["data"]:
        check_value(agg, point["value"], want[(point["timestamp"], point["group"])], body["meta"]["exact"])


@pytest.mark.parametrize("group_by", ["experiment_id", "model", "metadata.run.seed"])
def test_aggregate_by_metadata_is_exact(alice, group_by):
    body = alice.get(AGGREGATE, params={"agg": "p99", "metric": "duration_ms", "interval": "1d", "group_by": group_by})
    assert body.status_code == 200, body.text
    body = body.json()
    assert body["meta"]["exact"] is True

    def key(e):
        path = group_by.removeprefix("metadata.").split(".")
        value = e["metadata"]
        for part in path:
            value = value[part]
        return hour_of(e, 86_400), value

    want = grouped(DATA, key)
    assert sorted((p["timestamp"], p["group"]) for p in body["data"]) == sorted(want)
    for point in body["data"]:
        assert point["value"] == expected("p99", want[(point["timestamp"], point["group"])])


def test_one_experiments_aggregate_is_exact(alice):
    body = alice.get(
        AGGREGATE, params={"agg": "p50", "metric": "tokens", "interval": "1h", "filter[experiment_id]": "exp_beta"}
    ).json()
    assert body["meta"]["exact"] is True
    want: dict = {}
    for e in DATA:
        if e["metadata"]["experiment_id"] == "exp_beta":
            want.setdefault(hour_of(e, 3600), []).append(float(e["measurements"]["tokens"]))
    assert {p["timestamp"]: p["value"] for p in body["data"]} == {k: nearest_rank(v, 0.5) for k, v in want.items()}


def test_points_downsamples_the_range(alice):
    body = alice.get(AGGREGATE, params={"agg": "sum", "metric": "tokens", "points": "4"}).json()
    assert 1 <= len(body["data"]) <= 4
    assert sum(p["count"] for p in body["data"]) == len(DATA)
    assert sum(p["value"] for p in body["data"]) == sum(e["measurements"]["tokens"] for e in DATA)
    assert body["meta"]["interval"] in ("2h", "3h")  # 5.5 hours in at most 4 whole-hour buckets


def test_query_with_agg_and_group_by(alice):
    body = alice.get(EVENTS, params={"agg": "avg", "agg_field": "duration_ms", "group_by": "model"}).json()
    want = grouped(DATA, lambda e: e["metadata"]["model"])
    assert {p["group"]: p["value"] for p in body["data"]} == pytest.approx(
        {k: sum(v) / len(v) for k, v in want.items()}
    )
    body = alice.get(EVENTS, params={"agg": "count", "filter[experiment_id]": "exp_alpha"}).json()
    assert [p["value"] for p in body["data"]] == [300.0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"agg": "median", "metric": "duration_ms"}, "agg"),
        ({"agg": "avg"}, "metric"),
        ({"agg": "avg", "metric": "duration_ms", "interval": "2h"}, "interval"),
        ({"agg": "avg", "metric": "a.b"}, "metric"),
        ({"agg": "avg", "metric": "duration_ms", "group_by": "bad key!"}, "group_by"),
        ({"agg": "avg", "metric": "duration_ms", "points": "0"}, "points"),
        ({"agg": "count", "filter[after]": "yesterday"}, "filter[after]"),
        ({"agg": "count", "filter[event_name]": "a..b"}, "filter[event_name]"),
        ({"agg": "count", "filter[colour]": "red"}, "filter[colour]"),
    ],
)
def test_bad_aggregate_parameters_are_422(alice, params, field):
    assert_invalid(alice.get(AGGREGATE, params=params), field)


def test_bad_query_parameters_are_422(alice):
    assert_invalid(alice.get(EVENTS, params={"group_by": "model"}), "agg")
    assert_invalid(alice.get(EVENTS, params={"per_page": "1000"}), "per_page")
    assert_invalid(alice.get(EVENTS, params={"sort": "measurements"}), "sort")
    assert_invalid(alice.get(EVENTS, params={"cursor": "not-a-cursor"}), "cursor")


# --- export ---------------------------------------------------------------------------------------


def test_csv_export_with_dotted_fields(alice):
    fields = ["timestamp", "event_name", "experiment_id", "measurements.duration_ms", "metadata.run.seed"]
    body = {"format": "csv", "filters": {"experiment_id": "exp_alpha"}, "fields": fields}
    response = alice.post(EXPORT, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == fields
    want = sorted(
        (
            e["timestamp"],
            ".".join(e["event_name"]),
            "exp_alpha",
            str(e["measurements"]["duration_ms"]),
            str(e["metadata"]["run"]["seed"]),
        )
        for e in DATA
        if e["metadata"]["experiment_id"] == "exp_alpha"
    )
    assert sorted(tuple(r) for r in rows[1:]) == want
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])  # oldest first


def test_jsonl_export_of_a_time_range(alice):
    after, before = BASE + timedelta(hours=1), BASE + timedelta(hours=2)
    body = {"format": "jsonl", "filters": {"after": iso(after), "before": iso(before)}}
    response = alice.post(EXPORT, json=body)
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    wanted = [e for e in DATA if after <= at(e) < before]
    assert len(lines) == len(wanted)
    assert set(lines[0]) == {"id", "timestamp", "event_name", "measurements", "metadata"}
    assert sorted(json.dumps([x["timestamp"], x["measurements"], x["metadata"]]) for x in lines) == sorted(
        json.dumps([e["timestamp"], e["measurements"], e["metadata"]]) for e in wanted
    )


def test_large_export_becomes_a_job(alice):
    # 600 events, past the test server's 400-row setting: a job with a status and a file.
    response = alice.post(EXPORT, json={"format": "jsonl", "fields": ["id", "measurements.tokens"]})
    assert response.status_code == 202, response.text
    job = response.json()["data"]
    assert job["status"] in ("queued", "running", "completed") and job["estimated_rows"] == len(DATA)
    assert response.headers["location"] == job["status_url"]

    def completed():
        found = alice.get(job["status_url"]).json()["data"]
        assert found["status"] == "completed", found
        return found

    done = eventually(completed, timeout=30)
    assert done["rows"] == len(DATA) and done["progress"] == 1.0 and done["download_url"]
    download = alice.get(done["download_url"])
    assert download.status_code == 200
    lines = [json.loads(line) for line in download.text.splitlines()]
    assert sorted(x["measurements.tokens"] for x in lines) == sorted(e["measurements"]["tokens"] for e in DATA)


def test_export_jobs_are_their_owners(server, keys, alice):
    job = alice.post(EXPORT, json={"format": "csv", "async": True, "filters": {"experiment_id": "exp_beta"}})
    assert job.status_code == 202, job.text
    url = job.json()["data"]["status_url"]
    with server.client(keys["bob"]) as bob:
        assert_v1_error(bob.get(url), 404, "not_found")
        assert_v1_error(bob.get(url + "/download"), 404, "not_found")
    assert_v1_error(alice.get(EXPORT + "/texp_000000000000"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"fields": ["timestamp", "colour"]}, "fields"),
        ({"fields": []}, "fields"),
        ({"filters": {"after": "soon"}}, "filters.after"),
        ({"filters": {"event_name": "a..b"}}, "filters.event_name"),
        ({"filters": {"owner": "bob"}}, "filters.owner"),
    ],
)
def test_bad_exports_are_422(alice, body, field):
    assert_invalid(alice.post(EXPORT, json=body), field)


# --- deletion -------------------------------------------------------------------------------------


def test_delete_an_experiments_events(server, keys):
    with server.client(keys["bob"]) as bob:
        events = [
            {"event_name": ["bob", "step"], "measurements": {"v": n}, "metadata": {"experiment_id": f"exp_b{n % 2}"}}
            for n in range(10)
        ]
        assert bob.post(EVENTS, json={"events": events}).status_code == 202
        assert_invalid(bob.delete(EVENTS), "filter[experiment_id]")
        assert bob.delete(EVENTS, params={"filter[experiment_id]": "exp_b0"}).status_code == 204
        assert bob.get(EVENTS, params={"filter[experiment_id]": "exp_b0"}).json()["meta"]["total"] == 0
        assert bob.get(EVENTS, params={"filter[experiment_id]": "exp_b1"}).json()["meta"]["total"] == 5
        counted = bob.get(AGGREGATE, params={"agg": "sum", "metric": "v", "interval": "1d"}).json()["data"]
        assert sum(p["value"] for p in counted) == sum(range(1, 10, 2))
    with server.client(keys["alice"]) as alice:  # another owner's delete leaves bob's alone
        assert alice.delete(EVENTS, params={"filter[experiment_id]": "exp_b1"}).status_code == 204
    with server.client(keys["bob"]) as bob:
        assert bob.get(EVENTS, params={"filter[experiment_id]": "exp_b1"}).json()["meta"]["total"] == 5


# --- the client -----------------------------------------------------------------------------------


def test_client_calls(server, keys, alice, tmp_path):
    with ApplianceClient(server.url, api_key=keys["alice"]) as client:
        answer = client.ingest_events([{"event_name": ["client", "hello"], "measurements": {"x": 2.5}}])
        assert answer["accepted"] == 1
        page = client.query_events({"event_name": "client.hello"})
        assert [e["measurements"] for e in page["data"]] == [{"x": 2.5}]
        assert len(list(client.iter_events({"experiment_id": "exp_alpha"}))) == 300
        series = client.aggregate_events("count", interval="1d", filters={"experiment_id": "exp_beta"})
        assert sum(p["value"] for p in series["data"]) == 300 and series["meta"]["interval"] == "1d"
        target = tmp_path / "out.csv"
        seen: list[int] = []
        rows = client.export_events(
            target, format="csv", filters={"experiment_id": "exp_beta"}, progress=lambda done, _: seen.append(done)
        )
        assert rows == 300 and len(target.read_text().splitlines()) == 301 and seen
        assert client.delete_experiment_events("exp_nothing") is None
