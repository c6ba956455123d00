"""Benchmarks end to end through the API (POST /api/v1/benchmark, experiments of type
`benchmark`, GET /api/v1/leaderboard) against a scripted model server on loopback whose
answers are known: which items each model gets right is decided here, so the scores,
the 95% Wilson intervals and McNemar's p-values are computed here and compared."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from importlib import resources

import pytest

from tests.llm_servers import Reply, Seen, words
from tests.llm_support import assert_llm_error
from tests.support import ROOT, eventually

DEMO = resources.files("appliance.services.llm") / "shipped" / "datasets"
MC_ROWS = [json.loads(line) for line in (DEMO / "demo_multiple_choice.jsonl").read_text().splitlines()]
ANSWERS = {row["question"]: "ABCD"[row["answer"]] for row in MC_ROWS}
QUESTIONS = [row["question"] for row in MC_ROWS]
ARITHMETIC = [json.loads(line) for line in (DEMO / "demo_arithmetic.jsonl").read_text().splitlines()]


def question_of(seen: Seen) -> str:
    return next(q for q in QUESTIONS if q in seen.text)


def wrong_letter(right: str) -> str:
    return "A" if right != "A" else "B"


# Which items each wire's model gets wrong (by place in the demo dataset).
WRONG = {"openai-chat": set(), "anthropic": {0, 1}, "ollama-chat": set(range(12))}


def benchmark_script(seen: Seen) -> str:
    question = question_of(seen)
    right = ANSWERS[question]
    if QUESTIONS.index(question) in WRONG.get(seen.wire, set()):
        return f"Let me think. It could be {right}. No: the answer is {wrong_letter(right)}."
    # The first letter written is a wrong one: only the final letter counts.
    return f"{wrong_letter(right)} is wrong, the answer is {right}"


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def experiments_total(admin) -> int:
    return admin.get("/api/v1/experiments").json()["meta"]["total"]


def test_the_documents_benchmark_answer_and_the_experiment_it_ran_as(admin, scripted):
    scripted.reset(benchmark_script)
    response = admin.post(
        "/api/v1/benchmark",
        json={"dataset": "demo_multiple_choice", "provider": "claude", "model": "model_claude", "cache": False},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"id", "dataset", "provider", "model", "score", "accuracy", "total_time_ms", "total_tokens"} <= set(body)
    assert isinstance(body["id"], int) and isinstance(body["total_time_ms"], int)
    assert (body["dataset"], body["provider"], body["model"]) == ("demo_multiple_choice", "claude", "claude-scripted")
    assert body["score"] == body["accuracy"] == pytest.approx(14 / 16)
    assert (body["correct"], body["total"], body["status"]) == (14, 16, "completed")
    asked = scripted.requests("anthropic")
    assert len(asked) == 16
    assert body["total_tokens"] == sum(words(s.text) + words(benchmark_script(s)) for s in asked)

    experiment = admin.get(f"/api/v1/experiments/{body['experiment_id']}").json()["data"]
    assert experiment["status"] == "completed" and experiment["config"]["type"] == "benchmark"
    assert experiment["results_summary"]["best_accuracy"] == pytest.approx(14 / 16)
    [run] = admin.get(f"/api/v1/experiments/{body['experiment_id']}/runs").json()["data"]
    assert run["id"] == body["run_id"] and run["status"] == "completed" and run["progress"] == 1.0
    assert run["metrics"]["accuracy"] == pytest.approx(14 / 16)

    items = admin.get(f"/api/v1/benchmark/{body['id']}/items", params={"limit": 3}).json()
    assert items["total_items"] == 16 and [i["item_id"] for i in items["items"]] == ["mc-01", "mc-02", "mc-03"]
    first = items["items"][0]
    assert first["correct"] is False and first["extracted"] == wrong_letter(first["expected"])
    assert "Which planet is closest to the Sun?" in first["messages"][0]["content"]
    assert "the answer is" in first["response"]
    third = items["items"][2]
    assert third["correct"] is True and third["extracted"] == third["expected"] == "C"
    assert admin.get(f"/api/v1/benchmark/{body['id']}").json()["accuracy"] == pytest.approx(14 / 16)


def test_wait_false_answers_at_once_with_the_ids(admin, scripted):
    scripted.reset(lambda seen: Reply(text="The total is... #### " + _arithmetic_answer(seen), delay=0.3))
    started = admin.post(
        "/api/v1/benchmark",
        json={
            "dataset": "demo_arithmetic",
            "model": "model_chat",
            "sample_size": 5,
            "wait": False,
            "cache": False,
            "concurrency": 1,
        },
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "running" and isinstance(body["id"], int) and body["experiment_id"].startswith("exp_")
    done = eventually(
        lambda: (r := admin.get(f"/api/v1/benchmark/{body['id']}").json())["status"] == "completed" and r,
        message="the benchmark to complete",
    )
    assert (done["correct"], done["total"], done["accuracy"]) == (5, 5, 1.0)
    # The same seed and size draw the same items.
    again = admin.post(
        "/api/v1/benchmark", json={"dataset": "demo_arithmetic", "model": "model_chat", "sample_size": 5}
    ).json()
    first = [i["item_id"] for i in admin.get(f"/api/v1/benchmark/{body['id']}/items").json()["items"]]
    second = [i["item_id"] for i in admin.get(f"/api/v1/benchmark/{again['id']}/items").json()["items"]]
    assert first == second and len(first) == 5


def _arithmetic_answer(seen: Seen) -> str:
    row = next(r for r in ARITHMETIC if r["question"] in seen.text)
    return "{:,}".format(int(row["answer"].rsplit("#### ", 1)[1]))  # with a thousands comma when it has one


def test_bad_requests_store_nothing(admin, scripted):
    before = experiments_total(admin)
    error = assert_llm_error(
        admin.post("/api/v1/benchmark", json={"dataset": "mmlu", "model": "model_chat"}),
        404,
        "NOT_FOUND",
        "appliance datasets import",
    )
    assert error["details"]["dataset"] == "mmlu"
    assert_llm_error(admin.post("/api/v1/benchmark", json={"model": "model_chat"}), 400, "INVALID_REQUEST", "dataset")
    assert_llm_error(
        admin.post(
            "/api/v1/benchmark", json={"dataset": "demo_arithmetic", "provider": "ollama", "model": "model_chat"}
        ),
        400,
        "INVALID_REQUEST",
        "provider",
    )
    assert_llm_error(
        admin.post("/api/v1/benchmark", json={"dataset": "demo_arithmetic", "model": "no-such-model"}),
        404,
        "NOT_FOUND",
    )
    assert_llm_error(
        admin.post("/api/v1/benchmark", json={"dataset": "demo_arithmetic", "sample_size": 0}), 400, "INVALID_REQUEST"
    )
    assert experiments_total(admin) == before


def test_a_model_that_never_answers_is_a_provider_error(admin, scripted):
    scripted.reset(lambda seen: Reply(status=400, body=b'{"error": {"message": "no such model"}}'))
    error = assert_llm_error(
        admin.post("/api/v1/benchmark", json={"dataset": "demo_code", "model": "model_chat", "cache": False}),
        502,
        "PROVIDER_ERROR",
        "every model call failed",
    )
    result = admin.get(f"/api/v1/benchmark/{error['details']['id']}").json()
    assert result["status"] == "failed" and result["errors"] == 3
    experiment = admin.get(f"/api/v1/experiments/{error['details']['experiment_id']}").json()["data"]
    assert experiment["status"] == "failed"


# --- the leaderboard --------------------------------------------------------------------------


def wilson(correct: int, total: int) -> tuple[float, float]:
    """Wilson's score interval at 95%, written out here from its formula."""
    z = 1.959963984540054
    p = correct / total
    centre = (p + z**2 / (2 * total)) / (1 + z**2 / total)
    half = (z / (1 + z**2 / total)) * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2))
    return centre - half, centre + half


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact binomial p of b out of b + c at 1/2."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_an_experiment_of_three_models_lands_on_the_leaderboard_with_intervals(admin, scripted):
    scripted.reset(benchmark_script)
    created = admin.post(
        "/api/v1/experiments",
        json={
            "experiment": {
                "name": "three models on the demo questions",
                "config": {
                    "type": "benchmark",
                    "dataset": "demo_multiple_choice",
                    "models": ["model_chat", "model_claude", "model_ollama"],
                    "max_parallel": 3,
                    "cache": False,
                },
            }
        },
    )
    assert created.status_code == 201, created.text
    experiment_id = created.json()["data"]["id"]
    assert admin.post(f"/api/v1/experiments/{experiment_id}/start").status_code == 200
    eventually(
        lambda: admin.get(f"/api/v1/experiments/{experiment_id}").json()["data"]["status"] == "completed",
        message="the experiment to complete",
    )
    board = admin.get("/api/v1/leaderboard", params={"dataset": "demo_multiple_choice", "top": 10})
    assert board.status_code == 200, board.text
    body = board.json()
    assert body["dataset"] == "demo_multiple_choice" and "Wilson" in body["interval_method"]
    entries = body["entries"]
    assert [(e["rank"], e["provider"], e["correct"]) for e in entries] == [
        (1, "openai-compatible", 16),
        (2, "claude", 14),
        (3, "ollama", 4),
    ]
    for entry in entries:
        assert entry["experiment_id"] == experiment_id
        assert entry["score"] == entry["accuracy"] == pytest.approx(entry["correct"] / 16)
        assert entry["confidence_interval"] == pytest.approx(wilson(entry["correct"], 16), abs=1e-12)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["date"]) and isinstance(entry["latency_ms"], int)
    # 1 vs 2: right/wrong on items 0 and 1 only (b=2, c=0): p = 0.5, not significant.
    first, second, third = entries
    assert first["vs_next"]["paired_items"] == 16
    assert first["vs_next"]["p_value"] == pytest.approx(exact_mcnemar(2, 0))
    assert first["vs_next"]["significant"] is False and "McNemar" in first["vs_next"]["method"]
    assert first["not_significantly_different_from"] == [2] and second["not_significantly_different_from"] == [1]
    # 2 vs 3: items 2..11 (b=10, c=0): p = 2 / 2^10, significant.
    assert second["vs_next"]["p_value"] == pytest.approx(exact_mcnemar(10, 0))
    assert second["vs_next"]["significant"] is True and third["not_significantly_different_from"] == []
    assert third["vs_next"] is None

    top = admin.get("/api/v1/leaderboard", params={"dataset": "demo_multiple_choice", "top": 1}).json()["entries"]
    assert len(top) == 1 and top[0]["vs_next"]["rank"] == 2


def test_leaderboard_errors(admin):
    assert_llm_error(admin.get("/api/v1/leaderboard"), 400, "INVALID_REQUEST", "dataset")
    assert_llm_error(admin.get("/api/v1/leaderboard", params={"dataset": "mmlu"}), 404, "NOT_FOUND", "import")
    empty = admin.get("/api/v1/leaderboard", params={"dataset": "demo_code"})
    assert empty.status_code == 200 and empty.json()["entries"] == []


# --- the experiment's actions -----------------------------------------------------------------


def slow_arithmetic(seen: Seen) -> Reply:
    return Reply(text="#### " + _arithmetic_answer(seen), delay=0.2)


def start_slow(admin) -> dict:
    started = admin.post(
        "/api/v1/benchmark",
        json={"dataset": "demo_arithmetic", "model": "model_chat", "wait": False, "cache": False, "concurrency": 1},
    )
    assert started.status_code == 202, started.text
    return started.json()


def test_a_cancelled_benchmark_stops_asking(admin, scripted):
    scripted.reset(slow_arithmetic)
    body = start_slow(admin)
    eventually(lambda: len(scripted.requests("openai-chat")) >= 2, message="two items asked")
    assert admin.post(f"/api/v1/experiments/{body['experiment_id']}/cancel").status_code == 200
    result = eventually(
        lambda: (r := admin.get(f"/api/v1/benchmark/{body['id']}").json())["status"] != "running" and r,
        message="the result to end",
    )
    assert result["status"] == "failed" and result["error"] == "stopped"
    [run] = admin.get(f"/api/v1/experiments/{body['experiment_id']}/runs").json()["data"]
    assert run["status"] == "cancelled"
    asked = len(scripted.requests("openai-chat"))
    assert asked < 20
    assert len(scripted.requests("openai-chat")) == asked  # nothing more is asked


def test_a_paused_benchmark_starts_over_under_the_same_id(admin, scripted):
    scripted.reset(slow_arithmetic)
    body = start_slow(admin)
    eventually(lambda: len(scripted.requests("openai-chat")) >= 2, message="two items asked")
    paused = admin.post(f"/api/v1/experiments/{body['experiment_id']}/pause", json={"stop_running": True})
    assert paused.status_code == 200, paused.text
    scripted.reset(lambda seen: "#### " + _arithmetic_answer(seen))
    assert admin.post(f"/api/v1/experiments/{body['experiment_id']}/resume").status_code == 200
    result = eventually(
        lambda: (r := admin.get(f"/api/v1/benchmark/{body['id']}").json())["status"] == "completed" and r,
        message="the result to complete",
    )
    assert (result["correct"], result["total"]) == (20, 20)
    items = admin.get(f"/api/v1/benchmark/{body['id']}/items").json()
    assert items["total_items"] == 20


def test_deleting_the_experiment_takes_its_results_off_the_leaderboard(admin, scripted):
    scripted.reset(lambda seen: "#### " + _arithmetic_answer(seen))
    body = admin.post("/api/v1/benchmark", json={"dataset": "demo_arithmetic", "model": "model_ollama"}).json()
    board = admin.get("/api/v1/leaderboard", params={"dataset": "demo_arithmetic"}).json()["entries"]
    assert body["id"] in [e["id"] for e in board]
    assert admin.delete(f"/api/v1/experiments/{body['experiment_id']}").status_code == 204
    board = admin.get("/api/v1/leaderboard", params={"dataset": "demo_arithmetic"}).json()["entries"]
    assert body["id"] not in [e["id"] for e in board]
    assert_llm_error(admin.get(f"/api/v1/benchmark/{body['id']}"), 404, "NOT_FOUND")


@pytest.mark.parametrize("result_id", [0, -3, 2**63, 615569707404671884492739652354048])
def test_an_id_no_result_can_have_is_a_404(admin, result_id):
    """Ids past SQLite's integers too (schemathesis found a 500 there)."""
    assert_llm_error(admin.get(f"/api/v1/benchmark/{result_id}"), 404, "NOT_FOUND")
    assert_llm_error(admin.get(f"/api/v1/benchmark/{result_id}/items"), 404, "NOT_FOUND")


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(llm, *args: str) -> subprocess.CompletedProcess[str]:
    connection = ["--url", llm.url, "--api-key-file", str(llm.data_dir / "admin.key")]
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, *connection], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_cli_runs_a_benchmark_with_a_progress_bar_and_prints_the_leaderboard(llm, scripted):
    scripted.reset(lambda seen: Reply(text="#### " + _arithmetic_answer(seen), delay=0.05))
    done = run_cli(llm, "benchmark", "demo_arithmetic", "--model", "model_claude", "--concurrency", "2", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "claude-scripted (claude) on demo_arithmetic: 20/20 right, accuracy 1.000" in done.stdout
    lines = done.stderr.splitlines()
    assert lines and lines[-1] == "[answers] 20/20" and all(line.startswith("[answers] ") for line in lines)
    board = run_cli(llm, "leaderboard", "demo_arithmetic")
    assert board.returncode == 0, board.stderr
    assert "Wilson" in board.stdout and "claude-scripted" in board.stdout
    missing = run_cli(llm, "benchmark", "mmlu")
    assert missing.returncode == 1 and "404 NOT_FOUND" in missing.stderr and "datasets import" in missing.stderr
