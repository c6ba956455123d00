"""Statistics and reports on telemetry events, through a real server: events ingested
with metadata (model a/b, an item id) for an experiment, then tests with `group_field:
metadata.<key>` whose p-values are scipy's on the same numbers computed here, a paired
test by `pair_field: metadata.item_id`, another owner's events left out of a key's test,
and the experiment's export and comparison report drawn from the same events."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats

from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.report_fixtures import insert_experiment
from tests.test_auth import create_key

EVENTS = "/api/v1/telemetry/events"
RESULTS = "/api/v1/statistical-results"
EXPERIMENT = "exp_tele_models"
OTHER = "exp_tele_other"
NAME = ["crucible", "model", "inference"]
SERIES = "crucible.model.inference.latency_ms"
SVG = "{http://www.w3.org/2000/svg}"
# Minutes ago, well inside the ingest window (a year back, 300 s ahead).
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def scored(seed: int, shift: float) -> dict[str, dict[str, float]]:
    """Latencies of models a and b on items q00..q13, b slower by about `shift`; model a
    also answered q99, which b did not (an item a paired test must leave out)."""
    rng = random.Random(seed)
    items = [f"q{i:02d}" for i in range(14)]
    a = {item: round(rng.gauss(200, 25), 3) for item in items}
    b = {item: round(value + shift + rng.gauss(0, 15), 3) for item, value in a.items()}
    a["q99"] = 190.5
    return {"a": a, "b": b}


ALICE = scored(16, 30.0)
BOB = scored(17, -150.0)  # a test that counted these would say the opposite


def events_of(latencies: dict[str, dict[str, float]], experiment: str, minute: int = 0) -> list[dict]:
    events = []
    for model, values in latencies.items():
        for n, (item, latency) in enumerate(values.items()):
            events.append(
                {
                    "event_name": NAME,
                    "measurements": {"latency_ms": latency, "tokens": 100 + n},
                    "metadata": {
                        "experiment_id": experiment,
                        "model": model,
                        "item_id": item,
                        "cached": n % 3 == 0,
                        "config": {"prompt": "short" if n % 2 else "long"},
                    },
                    "timestamp": iso(START + timedelta(minutes=minute + n, seconds=7 if model == "b" else 0)),
                }
            )
    return events


def ingest(client, events: list[dict]) -> None:
    response = client.post(EVENTS, json={"events": events})
    assert response.status_code == 202, response.text
    assert response.json()["data"]["accepted"] == len(events), response.text


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(
        tmp_path_factory.mktemp("v1-statistics-telemetry"), env={"APPLIANCE_RATE_LIMIT_TELEMETRY_EVENTS": "1000000"}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(v1):
    return {"alice": create_key(v1, "alice-tele", owner="alice"), "bob": create_key(v1, "bob-tele", owner="bob")}


@pytest.fixture(scope="module")
def alice(v1, keys):
    """Alice's experiment and events, with bob's events under the same experiment id:
    sent while no experiment had that id (an id no experiment has is a free label), so
    they are stored as bob's. The experiment's runs carry no hyperparameter taking a or
    b, so groups named without group_field can only be the events' metadata.model."""
    with v1.client(keys["bob"]) as bob:
        ingest(bob, events_of(BOB, EXPERIMENT))
    db = v1.data_dir / "appliance.db"
    insert_experiment(db, EXPERIMENT, [({"lr": 0.1}, {"accuracy": 0.8}), ({"lr": 0.2}, {"accuracy": 0.9})], "alice")
    insert_experiment(db, OTHER, [({"lr": 0.1}, {"accuracy": 0.7}), ({"lr": 0.2}, {"accuracy": 0.75})], "alice")
    with v1.client(keys["alice"]) as client:
        ingest(client, events_of(ALICE, EXPERIMENT))
        ingest(client, events_of({"a": {"x": 150.0, "y": 170.0}}, OTHER, minute=3))
        yield client


def post_test(client, **test) -> dict:
    response = client.post(RESULTS, json={"test": test})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_welch_on_events_grouped_by_metadata_is_scipys(alice):
    result = post_test(
        alice,
        test_type="welch_t_test",
        experiment_id=EXPERIMENT,
        metric="latency_ms",
        group_field="metadata.model",
        groups=["a", "b"],
    )
    a, b = list(ALICE["a"].values()), list(ALICE["b"].values())
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert result["source"] == "telemetry" and result["group_field"] == "metadata.model"
    assert result["sample_sizes"] == [15, 14]  # alice's own events only
    assert result["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["means"] == pytest.approx([sum(a) / len(a), sum(b) / len(b)])
    listed = alice.get(f"/api/v1/experiments/{EXPERIMENT}/statistical-results").json()
    assert result["id"] in {r["id"] for r in listed["data"]}


def test_paired_t_pairs_events_by_item_id(alice):
    result = post_test(
        alice,
        test_type="paired_t_test",
        experiment_id=EXPERIMENT,
        metric="measurements.latency_ms",
        group_field="metadata.model",
        pair_field="metadata.item_id",
        groups=["a", "b"],
    )
    items = sorted(ALICE["b"])
    expected = stats.ttest_rel([ALICE["a"][i] for i in items], [ALICE["b"][i] for i in items])
    assert result["pairs"] == 14 and result["unpaired_dropped"] == 1  # q99: model a only
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["statistic"] == pytest.approx(expected.statistic, rel=1e-9)


def test_other_owners_events_count_only_for_an_admin(v1, keys, alice):
    with v1.admin() as admin:
        everyone = post_test(
            admin,
            test_type="mann_whitney_u",
            experiment_id=EXPERIMENT,
            metric="latency_ms",
            group_field="metadata.model",
            groups=["a", "b"],
        )
    a = list(ALICE["a"].values()) + list(BOB["a"].values())
    b = list(ALICE["b"].values()) + list(BOB["b"].values())
    assert everyone["sample_sizes"] == [30, 28]
    assert everyone["p_value"] == pytest.approx(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-6)
    with v1.client(keys["bob"]) as bob:  # bob's events are under alice's experiment, which he may not see
        response = bob.post(
            RESULTS,
            json={
                "test": {
                    "test_type": "welch_t_test",
                    "experiment_id": EXPERIMENT,
                    "metric": "latency_ms",
                    "group_field": "metadata.model",
                }
            },
        )
        assert_v1_error(response, 404, "not_found", EXPERIMENT)


def test_groups_by_booleans_nested_keys_and_without_group_field(alice):
    cached = post_test(
        alice, test_type="welch_t_test", experiment_id=EXPERIMENT, metric="tokens", group_field="metadata.cached"
    )
    assert cached["groups"] == ["false", "true"]
    nested = post_test(
        alice,
        test_type="kruskal_wallis",
        experiment_id=EXPERIMENT,
        metric="latency_ms",
        group_field="metadata.config.prompt",
        groups=["long", "short"],
    )
    values = {"long": [], "short": []}
    for model in ("a", "b"):
        for n, latency in enumerate(ALICE[model].values()):
            values["short" if n % 2 else "long"].append(latency)
    assert nested["p_value"] == pytest.approx(stats.kruskal(values["long"], values["short"]).pvalue, rel=1e-9)
    inferred = post_test(
        alice, test_type="two_sample_t_test", experiment_id=EXPERIMENT, metric="latency_ms", groups=["a", "b"]
    )
    assert inferred["group_field"] == "metadata.model" and inferred["source"] == "telemetry"


def test_bad_telemetry_fields_are_422(alice):
    base = {"experiment_id": EXPERIMENT, "metric": "latency_ms", "groups": ["a", "b"]}
    for test, field in (
        ({"test_type": "paired_t_test", "group_field": "metadata.model", "pair_field": "seed"}, "pair_field"),
        ({"test_type": "welch_t_test", "group_field": "metadata.no such key"}, "group_field"),
        ({"test_type": "welch_t_test", "group_field": "metadata.model", "metric": "lat'ency"}, "metric"),
        ({"test_type": "welch_t_test", "group_field": "metadata.nothing"}, "groups"),
    ):
        assert_invalid(alice.post(RESULTS, json={"test": {**base, **test}}), field)


def telemetry_of(client, experiment: str) -> list[dict]:
    response = client.post(
        f"/api/v1/experiments/{experiment}/export", json={"format": "json", "include": ["telemetry"]}
    )
    assert response.status_code == 200, response.text
    document = json.loads(response.content)
    assert set(document) == {"experiment", "exported_at", "telemetry"}
    return document["telemetry"]


def test_the_export_holds_the_events_series(v1, alice):
    points = telemetry_of(alice, EXPERIMENT)
    assert {p["series"] for p in points} == {SERIES, "crucible.model.inference.tokens"}
    latency = [p for p in points if p["series"] == SERIES]
    values = [v for model in ALICE.values() for v in model.values()]
    assert sum(p["count"] for p in latency) == len(values) == 29  # bob's are not alice's
    assert sum(p["value"] * p["count"] for p in latency) == pytest.approx(sum(values))
    assert [p["timestamp"] for p in latency] == sorted(p["timestamp"] for p in latency)
    assert latency[0]["timestamp"] == iso(START)
    with v1.admin() as admin:
        assert sum(p["count"] for p in telemetry_of(admin, EXPERIMENT) if p["series"] == SERIES) == 58
    table = alice.post(f"/api/v1/experiments/{EXPERIMENT}/export", json={"format": "csv", "include": ["telemetry"]})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == len(points) and set(rows[0]) == {"timestamp", "series", "value", "count"}
    runs_only = alice.post(f"/api/v1/experiments/{EXPERIMENT}/export", json={"format": "json", "include": ["runs"]})
    assert "telemetry" not in json.loads(runs_only.content)


def test_the_comparison_report_draws_telemetry_over_time(alice):
    response = alice.post("/api/v1/export/comparison", json={"experiment_ids": [EXPERIMENT, OTHER], "format": "html"})
    assert response.status_code == 200, response.text
    html = response.text
    assert "Telemetry over time" in html
    charts = {
        ET.fromstring(chart).find(f"{SVG}title").text: ET.fromstring(chart)
        for chart in re.findall(r"<svg.*?</svg>", html, flags=re.S)
    }
    over_time = charts[f"{SERIES} over time"]
    assert len(over_time.findall(f".//{SVG}path[@class='line']")) == 2  # one line per experiment
    assert f"{SERIES} over time" in charts and "crucible.model.inference.tokens over time" in charts
