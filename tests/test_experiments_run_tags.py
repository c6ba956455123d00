"""Run tags through a real server: external runs created with tags, found by
`filter[tag]`, compared in statistical tests grouped (and paired) by tag with p-values
that agree with scipy on the same values; refusals (a bad tag, a run in two compared
groups) that store nothing; and a config's `run_tags` patterns, checked when the
experiment is created. Planned runs getting their tags from a config and their program
run in Docker (tests/test_experiments_run_tags_planned.py)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from scipy import stats

from appliance.client import ApiError, ApplianceClient
from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.test_auth import create_key

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/runs"
RESULTS = "/api/v1/statistical-results"

BASELINE = [0.61, 0.64, 0.58, 0.66, 0.60]
CANDIDATE = [0.70, 0.73, 0.68, 0.75, 0.69, 0.71]


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-run-tags"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alice(v1):
    key = create_key(v1, "alice-tags", owner="alice")
    with v1.client(key) as client:
        yield client


def external_experiment(client: httpx.Client, name: str) -> str:
    response = client.post(EXPERIMENTS, json={"experiment": {"name": name, "config": {"type": "external"}}})
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def tracked_run(
    client: httpx.Client, experiment_id: str, tags: list[str], accuracy: float, status: str = "completed"
) -> dict:
    created = client.post(f"{EXPERIMENTS}/{experiment_id}/runs", json={"run": {"tags": tags}})
    assert created.status_code == 201, created.text
    run = created.json()["data"]
    assert run["tags"] == tags and run["source"] == "external"
    logged = client.post(f"{RUNS}/{run['id']}/metrics", json={"metrics": [{"metrics": {"accuracy": accuracy}}]})
    assert logged.status_code == 200, logged.text
    ended = client.post(f"{RUNS}/{run['id']}/end", json={"status": status})
    assert ended.status_code == 200, ended.text
    return ended.json()["data"]


def run_test(client: httpx.Client, **test) -> httpx.Response:
    return client.post(RESULTS, json={"test": test})


def accuracy_test(client: httpx.Client, experiment_id: str, test_type: str, **fields) -> dict:
    """A statistical test of the runs' accuracy that the server runs and stores (201)."""
    response = run_test(client, test_type=test_type, experiment_id=experiment_id, metric="accuracy", **fields)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def stored_results(client: httpx.Client) -> int:
    return client.get(RESULTS, params={"per_page": 1}).json()["meta"]["total"]


@pytest.fixture(scope="module")
def compared(alice):
    """An experiment whose runs are tagged baseline/candidate and model:<name>, plus a
    run tagged neither and a failed baseline run (both left out of every test)."""
    eid = external_experiment(alice, "tagged comparison")
    for i, value in enumerate(BASELINE):
        tracked_run(alice, eid, ["baseline", "model:gpt4", f"item:{i}"], value)
    for i, value in enumerate(CANDIDATE):
        tracked_run(alice, eid, ["candidate", "model:llama", f"item:{i}"], value)
    tracked_run(alice, eid, ["smoke"], 0.01)
    tracked_run(alice, eid, ["baseline", "model:gpt4"], 0.99, status="failed")
    return eid


def test_runs_carry_their_tags_and_lists_filter_by_them(v1, alice, compared):
    listed = alice.get(f"{EXPERIMENTS}/{compared}/runs", params={"filter[tag]": "baseline", "per_page": 100})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["meta"]["total"] == len(BASELINE) + 1
    assert all("baseline" in r["tags"] for r in body["data"])
    everywhere = alice.get(RUNS, params={"filter[tag]": "model:llama", "per_page": 100}).json()
    assert everywhere["meta"]["total"] == len(CANDIDATE)
    assert {r["tags"][1] for r in everywhere["data"]} == {"model:llama"}
    assert alice.get(RUNS, params={"filter[tag]": "nobody-has-it"}).json()["meta"]["total"] == 0
    paged = alice.get(f"{EXPERIMENTS}/{compared}/runs", params={"filter[tag]": "candidate", "per_page": 4}).json()
    follow = alice.get(
        f"{EXPERIMENTS}/{compared}/runs", params={"filter[tag]": "candidate", "cursor": paged["meta"]["next_cursor"]}
    ).json()
    assert len(paged["data"]) + len(follow["data"]) == len(CANDIDATE) and not follow["meta"]["has_more"]
    one = alice.get(f"{RUNS}/{paged['data'][0]['id']}").json()["data"]
    assert one["tags"][0] == "candidate"
    assert_invalid(alice.get(RUNS, params={"filter[tag]": ""}), "filter[tag]")
    assert_invalid(alice.get(RUNS, params=[("filter[tag]", "a"), ("filter[tag]", "b")]), "filter[tag]")

    with ApplianceClient(v1.url, api_key=alice.headers["X-API-Key"]) as client:
        run = client.create_run(compared, hyperparameters={"lr": 0.1}, tags=["client", "model:gpt4"])
        assert run.tags == ["client", "model:gpt4"]
        found = client.list_runs({"tag": "client"}, experiment_id=compared)
        assert [r.id for r in found.data] == [run.id] and found.data[0].tags == ["client", "model:gpt4"]
        client.end_run(run.id, status="cancelled")
        with pytest.raises(ApiError) as refused:
            client.create_run(compared, tags=["no spaces please"])
        assert refused.value.status_code == 422 and "is no tag" in refused.value.message


def test_bad_tags_are_refused_and_create_no_run(alice):
    eid = external_experiment(alice, "bad tags")
    for tags, words in (
        (["has space"], "is no tag"),
        ([""], "is no tag"),
        (["x" * 65], "is no tag"),
        (["{brace}"], "is no tag"),
        ([f"t{i}" for i in range(33)], "at most 32"),
    ):
        response = alice.post(f"{EXPERIMENTS}/{eid}/runs", json={"run": {"tags": tags}})
        error = assert_invalid(response, "tags")
        assert words in error["message"], error
    wrong_type = alice.post(f"{EXPERIMENTS}/{eid}/runs", json={"run": {"tags": "baseline"}})
    assert wrong_type.status_code in (400, 422), wrong_type.text
    assert alice.get(f"{EXPERIMENTS}/{eid}/runs").json()["meta"]["total"] == 0
    twice = alice.post(f"{EXPERIMENTS}/{eid}/runs", json={"run": {"tags": ["a", "b", "a"]}})
    assert twice.status_code == 201 and twice.json()["data"]["tags"] == ["a", "b"]


def test_a_welch_t_test_grouped_by_tag_agrees_with_scipy(alice, compared):
    result = accuracy_test(alice, compared, "welch_t_test", group_field="tags", groups=["baseline", "candidate"])
    expected = stats.ttest_ind(BASELINE, CANDIDATE, equal_var=False)
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["sample_sizes"] == [len(BASELINE), len(CANDIDATE)]
    assert result["means"] == pytest.approx([sum(BASELINE) / 5, sum(CANDIDATE) / 6])
    assert result["groups"] == ["baseline", "candidate"] and result["experiment_id"] == compared
    assert result["interpretation"]["significance"] == "significant"
    got = alice.get(f"{RESULTS}/{result['id']}").json()["data"]
    assert got["p_value"] == result["p_value"]

    # Groups named without group_field: the runs' tags are the one field that has them.
    inferred = accuracy_test(alice, compared, "welch_t_test", groups=["baseline", "candidate"])
    assert inferred["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_grouping_by_a_tag_key_and_pairing_by_one(alice, compared):
    student = accuracy_test(alice, compared, "student_t_test", group_field="tags.model", groups=["gpt4", "llama"])
    expected = stats.ttest_ind(BASELINE, CANDIDATE, equal_var=True)
    assert student["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)

    anova = accuracy_test(alice, compared, "one_way_anova", group_field="tags.model")
    assert anova["groups"] == ["gpt4", "llama"]
    assert anova["p_value"] == pytest.approx(stats.f_oneway(BASELINE, CANDIDATE).pvalue, rel=1e-9)

    body = accuracy_test(
        alice, compared, "paired_t_test", group_field="tags.model", groups=["gpt4", "llama"], pair_field="tags.item"
    )
    # Items 0..4 are under both models; the candidate's item 5 has no partner.
    expected_paired = stats.ttest_rel(BASELINE, CANDIDATE[:5])
    assert body["p_value"] == pytest.approx(expected_paired.pvalue, rel=1e-9)
    assert body["sample_sizes"] == [5, 5]


def test_bad_use_of_tags_in_a_test_is_a_422_that_stores_nothing(alice, compared):
    before = stored_results(alice)
    ambiguous = external_experiment(alice, "ambiguous tags")
    for value in (0.5, 0.6, 0.7):
        tracked_run(alice, ambiguous, ["baseline", "model:gpt4"], value)
    for value in (0.4, 0.45, 0.5):
        tracked_run(alice, ambiguous, ["candidate", "model:llama"], value)
    both = tracked_run(alice, ambiguous, ["baseline", "candidate", "model:gpt4", "model:llama"], 0.55)

    # The run tagged both ways is in two groups, whether grouped by bare tags or by a key.
    for fields, words in (
        ({"group_field": "tags", "groups": ["baseline", "candidate"]}, ("'baseline'", "'candidate'", "one group")),
        ({"group_field": "tags.model", "groups": ["gpt4", "llama"]}, ("model:gpt4, model:llama",)),
    ):
        refused = run_test(alice, test_type="welch_t_test", experiment_id=ambiguous, metric="accuracy", **fields)
        error = assert_v1_error(refused, 422, "validation_error", both["id"], *words)
        assert "group_field" in error["details"], error

    # (the test's fields other than the compared accuracy, the field the 422 names, what its message says)
    refused: list[tuple[dict, str, str]] = [
        ({"group_field": "tags"}, "group_field", "give groups"),
        (
            {
                "test_type": "paired_t_test",
                "group_field": "tags.model",
                "groups": ["gpt4", "llama"],
                "pair_field": "tags",
            },
            "pair_field",
            "tags.<key>",
        ),
        (
            {
                "test_type": "paired_t_test",
                "group_field": "tags",
                "groups": ["baseline", "candidate"],
                "pair_field": "tags.missing",
            },
            "pair_field",
            "has no missing: tags",
        ),
        ({"group_field": "tags.a b"}, "group_field", ""),
        ({"group_field": "tags", "groups": ["baseline", "two words"]}, "group_field", ""),
        ({"group_field": "tags", "groups": ["baseline", "nobody"]}, "groups", "no values for 'nobody'"),
        ({"group_field": "tag"}, "group_field", "tags.<key>"),
    ]
    for fields, field, message in refused:
        test = {"test_type": "welch_t_test", "experiment_id": compared, "metric": "accuracy", **fields}
        assert message in assert_invalid(run_test(alice, **test), field)["message"], test
    assert stored_results(alice) == before


def test_a_configs_run_tags_are_checked_when_it_is_created(alice):
    def create(config_fields: dict) -> httpx.Response:
        config = {"type": "code", "code": "print(1)", **config_fields}
        return alice.post(EXPERIMENTS, json={"experiment": {"name": "run tags", "config": config}})

    def total() -> int:
        return alice.get(EXPERIMENTS, params={"per_page": 1}).json()["meta"]["total"]

    before = total()
    missing = create({"grid": {"model": ["a", "b"]}, "run_tags": ["sweep", "lr:{lr}"]})
    assert "{lr} names no hyperparameter" in assert_invalid(missing, "config.run_tags.1")["message"]
    bad = create({"grid": {"model": ["a", "b"]}, "run_tags": ["two words"]})
    assert "is no tag pattern" in assert_invalid(bad, "config.run_tags.0")["message"]
    spaced_value = create({"list": [{"model": "a b"}], "run_tags": ["model:{model}"]})
    assert_invalid(spaced_value, "config.run_tags")
    assert total() == before

    good = create({"grid": {"model": ["a", "b"]}, "run_tags": ["sweep", "model:{model}"]})
    assert good.status_code == 201, good.text
    experiment = good.json()["data"]
    assert experiment["config"]["run_tags"] == ["sweep", "model:{model}"]
    changed = alice.patch(
        f"{EXPERIMENTS}/{experiment['id']}", json={"experiment": {"config": {**experiment["config"], "run_tags": [1]}}}
    )
    assert changed.status_code == 422, changed.text
    assert alice.get(f"{EXPERIMENTS}/{experiment['id']}").json()["data"]["config"] == experiment["config"]


def test_an_experiment_export_carries_each_runs_tags(alice, compared):
    exported = alice.post(f"{EXPERIMENTS}/{compared}/export", json={"format": "json", "include": ["runs"]})
    assert exported.status_code == 200, exported.text
    runs = exported.json()["runs"]
    assert sum(1 for r in runs if "baseline" in r["tags"]) == len(BASELINE) + 1
    table = alice.post(f"{EXPERIMENTS}/{compared}/export", json={"format": "csv", "include": ["runs"]})
    assert table.status_code == 200, table.text
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert {row["tags"] for row in rows} >= {"smoke", "baseline model:gpt4"}
    assert sum(1 for row in rows if row["tags"].split(" ")[0] == "candidate") == len(CANDIDATE)
