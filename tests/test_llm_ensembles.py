"""Ensembles (experiment type `ensemble`) end to end through the API against a scripted
model server on loopback: three models whose wrong items are chosen here, voted on by
majority, by weights from the config and by weights from accuracy on a held-out split;
the votes, the results and the leaderboard entry are checked item by item. And the
voting rules themselves (core/llm/voting.py)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from appliance.core.llm.datasets import Kind
from appliance.core.llm.voting import accuracy_weights, vote
from tests.llm_servers import Seen
from tests.support import eventually

DEMO = resources.files("appliance.services.llm") / "shipped" / "datasets"
MC_ROWS = [json.loads(line) for line in (DEMO / "demo_multiple_choice.jsonl").read_text().splitlines()]
HELD_OUT = [
    {"id": f"held-{i}", "question": f"Held-out question number {i}?", "choices": ["p", "q", "r", "s"], "answer": i % 4}
    for i in range(4)
]
QUESTIONS = [row["question"] for row in MC_ROWS + HELD_OUT]
RIGHT = {row["question"]: "ABCD"[row["answer"]] for row in MC_ROWS + HELD_OUT}
MODELS = ["model_chat", "model_claude", "model_ollama"]
# Wrong items per wire, by place in the demo dataset; then on the held-out split.
WRONG = {"openai-chat": {0, 1, 2, 3}, "anthropic": {2, 3, 4, 5}, "ollama-chat": {4, 5, 6, 7}}
HELD_WRONG = {"openai-chat": set(), "anthropic": {0, 1}, "ollama-chat": {0, 1, 2, 3}}


def wrong_letter(right: str) -> str:
    return "A" if right != "A" else "B"


def ensemble_script(seen: Seen) -> str:
    question = next(q for q in QUESTIONS if q in seen.text)
    right = RIGHT[question]
    if question.startswith("Held-out"):
        wrong = int(question.rsplit(" ", 1)[1].rstrip("?")) in HELD_WRONG[seen.wire]
    else:
        wrong = QUESTIONS.index(question) in WRONG[seen.wire]
    return f"The answer is {wrong_letter(right) if wrong else right}."


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def run_ensemble(admin, config: dict) -> tuple[str, dict, list[dict], list[str]]:
    body = {"experiment": {"name": "ensemble", "config": {"type": "ensemble", "cache": False, **config}}}
    created = admin.post("/api/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    experiment_id = created.json()["data"]["id"]
    assert admin.post(f"/api/v1/experiments/{experiment_id}/start").status_code == 200
    eventually(
        lambda: admin.get(f"/api/v1/experiments/{experiment_id}").json()["data"]["status"] == "completed",
        message="the ensemble to complete",
    )
    [run] = admin.get(f"/api/v1/experiments/{experiment_id}/runs").json()["data"]
    logs = [line["message"] for line in admin.get(f"/api/v1/runs/{run['id']}/logs").json()["data"]]
    result_id = int(
        next(line for line in logs if "benchmark result" in line).split("benchmark result ")[1].split(":")[0]
    )
    items = admin.get(f"/api/v1/benchmark/{result_id}/items").json()
    return experiment_id, items["result"], items["items"], logs


def wrong_items(items: list[dict]) -> set[int]:
    return {place for place, item in enumerate(items) if not item["correct"]}


def test_majority_vote_lands_on_the_leaderboard(admin, scripted):
    scripted.reset(ensemble_script)
    experiment_id, result, items, _ = run_ensemble(
        admin, {"models": MODELS, "voting_strategy": "majority", "dataset": "demo_multiple_choice"}
    )
    assert result["provider"] == "ensemble" and result["model"].startswith("majority vote of ")
    # Items 2, 3 (chat and claude wrong) and 4, 5 (claude and ollama wrong) are lost.
    assert wrong_items(items) == {2, 3, 4, 5} and (result["correct"], result["total"]) == (12, 16)
    assert items[0]["details"] == {
        "model_chat": wrong_letter(items[0]["expected"]),
        "model_claude": items[0]["expected"],
        "model_ollama": items[0]["expected"],
    }
    assert items[0]["extracted"] == items[0]["expected"]
    board = admin.get("/api/v1/leaderboard", params={"dataset": "demo_multiple_choice"}).json()["entries"]
    [entry] = [e for e in board if e["provider"] == "ensemble"]
    assert entry["experiment_id"] == experiment_id and entry["accuracy"] == 12 / 16


def test_weights_from_the_config(admin, scripted):
    scripted.reset(ensemble_script)
    _, result, items, logs = run_ensemble(
        admin,
        {
            "models": MODELS,
            "voting_strategy": "weighted",
            "weights": {"model_chat": 3, "model_claude": 1, "model_ollama": 1},
            "dataset": "demo_multiple_choice",
        },
    )
    # chat's 3 outweighs the other two together: chat's wrong items are lost, no others.
    assert wrong_items(items) == {0, 1, 2, 3} and result["correct"] == 12
    assert any("weights: model_chat 3, model_claude 1, model_ollama 1" in line for line in logs), logs


def test_weights_from_accuracy_on_a_held_out_split(admin, scripted):
    content = "".join(json.dumps(row) + "\n" for row in HELD_OUT)
    assert admin.post("/api/v1/datasets", json={"name": "held-out-mc", "content": content}).status_code == 201
    scripted.reset(ensemble_script)
    _, result, items, logs = run_ensemble(
        admin,
        {
            "models": MODELS,
            "voting_strategy": "weighted",
            "held_out": {"dataset": "held-out-mc"},
            "dataset": "demo_multiple_choice",
            "sample_size": 8,
            "seed": 3,
        },
    )
    # Held out: chat 4/4, claude 2/4, ollama 0/4: weights 1, 0.5, 0.
    assert any("weights: model_chat 1, model_claude 0.5, model_ollama 0" in line for line in logs), logs
    assert any("held-out held-out-mc: model_claude 2/4 right" in line for line in logs), logs
    assert result["total"] == 8
    by_id = {item["item_id"]: item for item in items}
    for item_id, item in by_id.items():
        place = int(item_id.split("-")[1]) - 1
        # chat (1) against claude (0.5) with ollama (0) not counting: chat decides.
        assert item["correct"] is (place not in WRONG["openai-chat"]), item


def test_bad_ensembles_are_refused_naming_the_field(admin):
    def refused(config: dict, status: int, field: str) -> None:
        body = {
            "experiment": {"name": "bad", "config": {"type": "ensemble", "dataset": "demo_multiple_choice", **config}}
        }
        response = admin.post("/api/v1/experiments", json=body)
        assert response.status_code == status, response.text
        assert field in json.dumps(response.json()["error"]), response.text

    refused({"models": ["model_chat"]}, 422, "config.models")
    refused({"models": MODELS, "voting_strategy": "weighted"}, 422, "config.weights")
    refused({"models": MODELS, "weights": {"model_chat": 1}}, 422, "config.voting_strategy")
    refused(
        {"models": MODELS, "voting_strategy": "weighted", "weights": {"model_chat": 1, "model_claude": 1}},
        422,
        "config.weights",
    )
    refused({"models": MODELS, "dataset": "demo_code"}, 422, "config.dataset")
    refused({"models": MODELS, "dataset": "mmlu"}, 404, "appliance datasets import")
    refused({"models": ["model_chat", "gpt-4"]}, 404, "gpt-4")


# --- the voting rules -------------------------------------------------------------------------


def test_majority_counts_votes_and_a_tie_goes_to_the_first_listed():
    assert vote(["A", "B", "B"], [1, 1, 1], Kind.MULTIPLE_CHOICE) == "B"
    assert vote(["A", "B"], [1, 1], Kind.MULTIPLE_CHOICE) == "A"
    assert vote(["B", "A"], [1, 1], Kind.MULTIPLE_CHOICE) == "B"
    assert vote([None, None, "C"], [1, 1, 1], Kind.MULTIPLE_CHOICE) == "C"
    assert vote([None, None], [1, 1], Kind.MULTIPLE_CHOICE) is None


def test_weighted_votes_sum_weights_and_equal_answers_count_as_one():
    assert vote(["A", "B", "B"], [3, 1, 1], Kind.MULTIPLE_CHOICE) == "A"
    assert vote(["1200", "1200.0", "7"], [1, 1, 1.5], Kind.NUMBER) == "1200"
    assert vote(["Paris.", "paris", "Rome"], [1, 1, 1.5], Kind.TEXT) == "Paris."


def test_accuracy_weights_fall_back_to_equal_when_every_model_scored_zero():
    assert accuracy_weights([0.5, 0.25]) == [0.5, 0.25]
    assert accuracy_weights([0.0, 0.0]) == [1.0, 1.0]
