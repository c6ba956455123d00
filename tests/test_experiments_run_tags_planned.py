"""Planned runs get their tags from the config's `run_tags` patterns and from their own
program's `{"tags": [...]}` lines, through a real server running each run in Docker;
a paired t-test grouped by `tags.model` and paired by `tags.item` agrees with scipy."""

from __future__ import annotations

import pytest
from scipy import stats

from tests.experiments_support import start_v1_server
from tests.support import HANG_SECONDS, eventually

pytestmark = pytest.mark.slow

EXPERIMENTS = "/api/v1/experiments"
SCORES = {("a", 0): 0.50, ("a", 1): 0.61, ("a", 2): 0.47, ("b", 0): 0.58, ("b", 1): 0.66, ("b", 2): 0.59}

PROGRAM = r"""
import json
hp = json.load(open("hyperparameters.json"))
print(json.dumps({"tags": ["printed:" + hp["model"]]}))
print(json.dumps({"metrics": {"score": hp["score"]}}))
"""


@pytest.fixture(scope="module")
def v1(runtime_images, tmp_path_factory):
    server = start_v1_server(
        tmp_path_factory.mktemp("v1-run-tags-planned"), env={"APPLIANCE_WORKERS": "3", "APPLIANCE_ENGINES": "docker"}
    )
    yield server
    server.stop()


def test_planned_runs_are_tagged_by_their_config_and_program(v1):
    points = [{"model": model, "item": item, "score": score} for (model, item), score in SCORES.items()]
    config = {
        "type": "code",
        "code": PROGRAM,
        "list": points,
        "max_parallel": 3,
        "run_tags": ["planned", "model:{model}", "item:{item}"],
    }
    with v1.admin() as admin:
        created = admin.post(EXPERIMENTS, json={"experiment": {"name": "tagged plan", "config": config}})
        assert created.status_code == 201, created.text
        eid = created.json()["data"]["id"]
        assert admin.post(f"{EXPERIMENTS}/{eid}/start").status_code == 200

        def ended():
            found = admin.get(f"{EXPERIMENTS}/{eid}").json()["data"]
            return found if found["status"] in ("completed", "failed") else None

        done = eventually(ended, timeout=HANG_SECONDS, interval=0.3, message="the tagged plan ending")
        assert done["status"] == "completed", done
        runs = admin.get(f"{EXPERIMENTS}/{eid}/runs", params={"sort": "position", "per_page": 100}).json()["data"]
        assert [r["tags"] for r in runs] == [
            ["planned", f"model:{p['model']}", f"item:{p['item']}", f"printed:{p['model']}"] for p in points
        ]
        printed = admin.get(f"{EXPERIMENTS}/{eid}/runs", params={"filter[tag]": "printed:b"}).json()
        assert printed["meta"]["total"] == 3 and {r["hyperparameters"]["model"] for r in printed["data"]} == {"b"}

        response = admin.post(
            "/api/v1/statistical-results",
            json={
                "test": {
                    "test_type": "paired_t_test",
                    "experiment_id": eid,
                    "metric": "score",
                    "group_field": "tags.model",
                    "groups": ["a", "b"],
                    "pair_field": "tags.item",
                }
            },
        )
        assert response.status_code == 201, response.text
        result = response.json()["data"]
        a = [SCORES[("a", i)] for i in range(3)]
        b = [SCORES[("b", i)] for i in range(3)]
        assert result["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
        assert result["sample_sizes"] == [3, 3]
