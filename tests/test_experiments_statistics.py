"""Statistical results of experiments-api.md through a real server: a McNemar comparison
of two models on the same items as Agresti's textbook has it, inline data in both forms,
the documented shape, list and get with owners, and refusals (422 naming the field,
never a NaN in a 200) that store nothing."""

from __future__ import annotations

import math

import pytest

from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server
from tests.report_fixtures import insert_experiment
from tests.test_auth import create_key

DOCUMENTED = {
    "id",
    "experiment_id",
    "test_type",
    "groups",
    "p_value",
    "effect_size",
    "effect_size_type",
    "confidence_interval",
    "sample_sizes",
    "means",
    "std_devs",
    "interpretation",
}
RESULTS = "/api/v1/statistical-results"


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-statistics"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(v1):
    return {
        "alice": create_key(v1, "alice-stats", owner="alice"),
        "bob": create_key(v1, "bob-stats", owner="bob"),
        "reader": create_key(v1, "reader-stats", "read", owner="alice"),
    }


def agresti_items() -> dict[str, dict[str, int]]:
    """Agresti (2007), An Introduction to Categorical Data Analysis, Table 8.1, as two
    models scored right (1) or wrong (0) on the same 1600 benchmark items: 794 both
    right, 150 only model_a, 86 only model_b, 570 neither; shuffled ids, so the pairing
    is by id and not by position."""
    pattern = [(1, 1)] * 794 + [(1, 0)] * 150 + [(0, 1)] * 86 + [(0, 0)] * 570
    order = sorted(range(1600), key=lambda i: (i * 7919) % 1601)
    model_a = {f"item-{order[i]:04d}": a for i, (a, _) in enumerate(pattern)}
    model_b = {f"item-{order[i]:04d}": b for i, (_, b) in enumerate(pattern)}
    return {"model_b": dict(sorted(model_b.items())), "model_a": model_a}


def post_test(client, **test) -> dict:
    response = client.post(RESULTS, json={"test": test})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def stored(v1) -> int:
    with v1.admin() as admin:
        return admin.get(RESULTS, params={"per_page": 1}).json()["meta"]["total"]


def test_mcnemar_of_two_models_on_the_same_items_matches_agresti(v1):
    with v1.admin() as admin:
        result = post_test(
            admin,
            test_type="mcnemar",
            groups=["model_a", "model_b"],
            metric="correct",
            data=agresti_items(),
            options={"alpha": 0.05},
        )
        assert set(result) >= DOCUMENTED
        assert result["id"].startswith("stat_") and result["experiment_id"] is None
        assert result["source"] == "inline" and result["pairs"] == 1600 and result["unpaired_dropped"] == 0
        # R's mcnemar.test on Table 8.1: chi-squared = 16.818, p-value = 4.115e-05
        assert result["statistic"] == pytest.approx(16.818, abs=5e-4)
        assert result["p_value"] == pytest.approx(4.115e-05, rel=1e-3)
        assert "continuity correction" in result["method"]
        assert result["means"] == pytest.approx([0.59, 0.55]) and result["sample_sizes"] == [1600, 1600]
        assert result["effect_size_type"] == "odds_ratio" and result["effect_size"] == pytest.approx(150 / 86)
        low, high = result["confidence_interval"]
        assert low < 150 / 86 < high
        interpretation = result["interpretation"]
        assert interpretation["significance"] == "significant"
        assert interpretation["effect_magnitude"] == "small"
        assert "model_a scores significantly higher than model_b on correct" in interpretation["practical_significance"]
        assert admin.get(f"{RESULTS}/{result['id']}").json() == {"data": result}


def test_inline_lists_pair_by_position_and_objects_by_id(v1):
    with v1.admin() as admin:
        by_position = post_test(
            admin,
            test_type="paired_t_test",
            data={
                "drug1": [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0],
                "drug2": [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4],
            },
        )
        # Student's sleep data: t = -4.0621, df = 9, p = 0.002833 (R's t.test, paired)
        assert by_position["groups"] == ["drug1", "drug2"]
        assert by_position["statistic"] == pytest.approx(-4.0621, abs=1e-4)
        assert by_position["p_value"] == pytest.approx(0.002833, abs=1e-6)
        by_id = post_test(
            admin,
            test_type="wilcoxon_signed_rank",
            groups=["a", "b"],
            data={"a": {"q1": 1.0, "q2": 0.5, "q3": 0.9, "q4": 0.2}, "b": {"q3": 0.4, "q1": 0.3, "q2": 0.6, "q9": 1}},
        )
        assert by_id["pairs"] == 3 and by_id["unpaired_dropped"] == 2
        booleans = post_test(
            admin, test_type="fisher_exact", data={"x": [True, True, True, False], "y": [True, False, False, False]}
        )
        assert booleans["p_value"] == pytest.approx(0.486, abs=5e-4)


def test_more_than_two_groups_have_corrected_pairwise_comparisons(v1):
    with v1.admin() as admin:
        result = post_test(
            admin,
            test_type="one_way_anova",
            metric="weight",
            data={
                "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
                "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
                "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
            },
            options={"correction": "bonferroni"},
        )
        assert result["statistic"] == pytest.approx(4.846, abs=1e-3) and result["degrees_of_freedom"] == [2, 27]
        assert result["effect_size_type"] == "eta_squared"
        pairs = {tuple(p["groups"]): p for p in result["pairwise"]}
        assert set(pairs) == {("ctrl", "trt1"), ("ctrl", "trt2"), ("trt1", "trt2")}
        for pair in pairs.values():
            assert pair["adjusted_p_value"] == pytest.approx(min(1.0, 3 * pair["p_value"]))
        assert result["power"]["effect_size_type"] == "eta_squared" and result["power"]["minimum_detectable_effect"] > 0


def test_too_few_values_or_no_variance_is_a_422_and_stores_nothing(v1):
    before = stored(v1)
    with v1.admin() as admin:
        for test_type, data, words in [
            ("two_sample_t_test", {"a": [1.0], "b": [1.0, 2.0]}, "at least 2"),
            ("student_t_test", {"a": [3.0, 3.0, 3.0], "b": [3.0, 3.0]}, "no variance"),
            ("mcnemar", {"a": [1, 0, 1], "b": [1, 0, 1]}, "no discordant pair"),
            ("paired_t_test", {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]}, "equally long"),
        ]:
            response = admin.post(RESULTS, json={"test": {"test_type": test_type, "data": data}})
            error = assert_invalid(response, "data")
            assert words in error["message"], error
            assert "NaN" not in response.text
    assert stored(v1) == before


def test_bad_requests_name_each_field(v1):
    before = stored(v1)
    with v1.admin() as admin:
        response = admin.post(RESULTS, json={"test": {"test_type": "t_test_please", "data": {"a": [1], "b": [2]}}})
        assert "one of" in assert_invalid(response, "test_type")["details"]["test_type"][0]
        response = admin.post(
            RESULTS,
            json={
                "test": {
                    "test_type": "kruskal_wallis",
                    "data": {"a": [1, 2], "b": [2, 3]},
                    "options": {"alpha": 2, "alternative": "greater", "resamples": 5},
                }
            },
        )
        assert_invalid(response, "options.alpha", "options.alternative")
        response = admin.post(RESULTS, json={"test": {"test_type": "paired_t_test", "metric": "accuracy"}})
        assert_invalid(response, "group_field", "experiment_id", "pair_field")
        response = admin.post(
            RESULTS,
            json={"test": {"test_type": "welch_t_test", "data": {"a": [1, 2]}, "group_field": "hyperparameters.m"}},
        )
        assert_invalid(response, "group_field", "data")
        response = admin.post(
            RESULTS, json={"test": {"test_type": "welch_t_test", "groups": ["a", "c"], "data": {"a": [1, 2], "b": [3]}}}
        )
        assert_invalid(response, "groups")
        response = admin.post(RESULTS, json={"test": {"test_type": "welch_t_test", "data": {"a": ["x"], "b": [1]}}})
        assert response.status_code == 422, response.text
        response = admin.post(RESULTS, json={"test_type": "welch_t_test"})
        assert response.status_code == 422, response.text
    assert stored(v1) == before


def test_owners_permissions_and_lists(v1, keys):
    with v1.client(keys["alice"]) as alice, v1.client(keys["bob"]) as bob, v1.client(keys["reader"]) as reader:
        mine = post_test(alice, test_type="mann_whitney_u", metric="latency_ms", data={"a": [1, 2, 3], "b": [4, 5, 6]})
        theirs = post_test(bob, test_type="welch_t_test", data={"a": [1, 2, 3], "b": [4, 5, 7]})
        assert_v1_error(bob.get(f"{RESULTS}/{mine['id']}"), 404, "not_found")
        assert reader.get(f"{RESULTS}/{mine['id']}").status_code == 200  # same owner, read only
        error = assert_v1_error(
            reader.post(RESULTS, json={"test": {"test_type": "welch_t_test", "data": {"a": [1, 2], "b": [3, 4]}}}),
            403,
            "forbidden",
        )
        assert error["details"]["required_permission"] == "execute"
        listed = alice.get(RESULTS, params={"filter[test_type]": "mann_whitney_u", "sort": "-p_value"}).json()
        assert [r["id"] for r in listed["data"]] == [mine["id"]] and listed["meta"]["total"] == 1
        assert theirs["id"] not in {r["id"] for r in alice.get(RESULTS, params={"per_page": 100}).json()["data"]}
        assert_invalid(alice.get(RESULTS, params={"filter[test_type]": "nope"}), "filter[test_type]")
        with v1.admin() as admin:
            ids = {r["id"] for r in admin.get(RESULTS, params={"per_page": 100}).json()["data"]}
            assert {mine["id"], theirs["id"]} <= ids


def test_tests_on_an_experiment_need_one_the_caller_may_see(v1):
    with v1.admin() as admin:
        assert_v1_error(admin.get("/api/v1/experiments/exp_nope/statistical-results"), 404, "not_found", "exp_nope")
        response = admin.post(
            RESULTS,
            json={
                "test": {
                    "test_type": "welch_t_test",
                    "experiment_id": "exp_nope",
                    "metric": "accuracy",
                    "group_field": "hyperparameters.model",
                }
            },
        )
        assert_v1_error(response, 404, "not_found", "exp_nope")


def test_every_number_is_finite_json(v1):
    with v1.admin() as admin:
        result = post_test(admin, test_type="bootstrap", data={"a": [1, 2, 3, 4], "b": [1, 1, 1, 1]})
        assert result["bootstrap"] == {"resamples": 10000, "seed": 0}
        numbers = [result["p_value"], result["effect_size"], *result["confidence_interval"], *result["means"]]
        assert all(isinstance(n, int | float) and math.isfinite(n) for n in numbers)


def test_the_client_runs_lists_and_gets_results(v1):
    from appliance.client import ApiError, ApplianceClient

    with ApplianceClient(v1.url, api_key=v1.admin_key) as client:
        made = client.run_statistical_test(
            "mcnemar", data=agresti_items(), groups=["model_a", "model_b"], metric="correct", method="exact"
        )
        assert made.method.startswith("McNemar's test (exact binomial") and made.options.method == "exact"
        assert client.get_statistical_result(made.id) == made
        assert made.id in {r.id for r in client.iter_statistical_results(filters={"test_type": "mcnemar"})}
        with pytest.raises(ApiError) as caught:
            client.run_statistical_test("paired_t_test", data={"a": [1, 2, 3], "b": [2, 3, 4]})
        assert caught.value.status_code == 422 and "data" in caught.value.details


def test_mcnemar_on_runs_pairs_the_items_by_pair_field(v1):
    """The usual case: one run per benchmark item and model, the model a hyperparameter
    and the item id another; the same Agresti table through the runs' metric."""
    items = agresti_items()
    runs = [
        ({"model": model, "item_id": item}, {"correct": float(value)})
        for model, scored in items.items()
        for item, value in scored.items()
    ]
    insert_experiment(v1.data_dir / "appliance.db", "exp_stats_items", runs)
    with v1.admin() as admin:
        result = post_test(
            admin,
            test_type="mcnemar",
            experiment_id="exp_stats_items",
            groups=["model_a", "model_b"],
            metric="correct",
            group_field="hyperparameters.model",
            pair_field="hyperparameters.item_id",
        )
        assert result["source"] == "runs" and result["experiment_id"] == "exp_stats_items"
        assert result["pairs"] == 1600 and result["unpaired_dropped"] == 0
        assert result["statistic"] == pytest.approx(16.818, abs=5e-4)
        assert result["p_value"] == pytest.approx(4.115e-05, rel=1e-3)
        listed = admin.get("/api/v1/experiments/exp_stats_items/statistical-results").json()
        assert [r["id"] for r in listed["data"]] == [result["id"]] and listed["meta"]["total"] == 1
        assert result["created_at"].endswith("Z") and "." in result["created_at"]


def test_the_documents_request_names_groups_of_the_one_field_that_has_them(v1):
    """experiments-api.md's example names groups and a metric, no group_field: the groups
    are values of the one hyperparameter that takes them all; two such fields are a 422."""
    accuracies = {"model_a": [0.89, 0.91, 0.88, 0.90], "model_b": [0.82, 0.80, 0.83, 0.81]}
    runs = [({"model": m, "lr": 0.01}, {"accuracy": a}) for m, values in accuracies.items() for a in values]
    insert_experiment(v1.data_dir / "appliance.db", "exp_stats_doc", runs)
    example = {
        "experiment_id": "exp_stats_doc",
        "test_type": "two_sample_t_test",
        "groups": ["model_a", "model_b"],
        "metric": "accuracy",
        "options": {"alpha": 0.05, "alternative": "two_sided"},
    }
    with v1.admin() as admin:
        result = post_test(admin, **example)
        assert result["group_field"] == "hyperparameters.model" and result["sample_sizes"] == [4, 4]
        assert result["interpretation"]["significance"] == "significant"
        twice = [({"model": m, "judge": m}, {"accuracy": a}) for m, values in accuracies.items() for a in values]
        insert_experiment(v1.data_dir / "appliance.db", "exp_stats_twice", twice)
        response = admin.post(RESULTS, json={"test": {**example, "experiment_id": "exp_stats_twice"}})
        details = assert_invalid(response, "group_field")["details"]["group_field"][0]
        assert "hyperparameters.judge" in details and "hyperparameters.model" in details
