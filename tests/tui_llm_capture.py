"""Capture the LLM evaluation screen's replay fixtures (tests/tui_fixtures/api_v1_*) from a
real server, as tests/tui_capture.py does for the other screens, and on its own: it needs
no sandbox, only a scripted model server on loopback (tests/llm_servers.py).

    .venv/bin/python -m tests.tui_llm_capture

The state: the shipped `example-tests` suite run once; benchmarks on the demo datasets by
models whose right and wrong answers are scripted here (so the leaderboard has ranks,
intervals and neighbours that do not differ significantly), and one benchmark that
stays running (its model never answers the later items). The requests are the ones the
screen makes: its own loading functions are called with a client whose responses are
recorded. Times move to the fixed day and ids become constants (tui_capture.Normaliser);
run times are pinned, since they differ on every run."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from appliance.client import ApplianceClient
from appliance.tui.screens import llm_eval
from tests.llm_servers import Reply, ScriptedModelServer, Seen, default_script
from tests.llm_support import start_llm_server
from tests.support import eventually
from tests.tui_capture import Normaliser
from tests.tui_replay import FIXTURE_DIR, fixture_name, llm_fixture, request_key

RUN_IDS = re.compile(r"\b(?:(?:exp|run)_[0-9a-f]{12}|srun_\d{8}_\d{6}_[0-9a-f]{8})\b")

DEMO = resources.files("appliance.services.llm") / "shipped" / "datasets"
CHOICE_ROWS = [json.loads(line) for line in (DEMO / "demo_multiple_choice.jsonl").read_text().splitlines()]
CHOICE_ANSWERS = {row["question"]: "ABCD"[row["answer"]] for row in CHOICE_ROWS}
ARITHMETIC_ROWS = [json.loads(line) for line in (DEMO / "demo_arithmetic.jsonl").read_text().splitlines()]
NUMBER_ANSWERS = {row["question"]: row["answer"].rsplit("####", 1)[1].strip() for row in ARITHMETIC_ROWS}

# server model name (Ollama's: its wire's) -> the places in the demo dataset of the
# items it gets wrong
WRONG = {
    "scripted-chat": {3},
    "scripted-completions": {0, 5},
    "claude-scripted": {0, 1, 2},
    "ollama": set(range(12)),
}
SHIPPED_AT = "2025-01-01T00:00:00Z"
HANGS_FROM = 6  # the `limited` model answers the items before this place, then never again
# model id -> its run's pinned mean wall time per item, in ms
MS_PER_ITEM = {"model_chat": 412, "model_completions": 388, "model_claude": 655, "model_ollama": 1290}


def model_of(seen: Seen) -> str:
    return "ollama" if seen.wire.startswith("ollama") else str(seen.body.get("model"))


def capture_script(seen: Seen) -> Reply | str:
    model = model_of(seen)
    choice = next((q for q in CHOICE_ANSWERS if q in seen.text), None)
    if choice is not None:
        place = list(CHOICE_ANSWERS).index(choice)
        if model == "limited" and place >= HANGS_FROM:
            return Reply(hang=True)
        right = CHOICE_ANSWERS[choice]
        given = ("A" if right != "A" else "B") if place in WRONG.get(model, set()) else right
        return f"Thinking it over.\nAnswer: {given}"
    number = next((q for q in NUMBER_ANSWERS if q in seen.text), None)
    if number is not None:
        place = list(NUMBER_ANSWERS).index(number)
        answer = int(NUMBER_ANSWERS[number]) + (1 if place in WRONG.get(model, set()) else 0)
        return f"Working it out step by step.\n#### {answer}"
    return default_script(seen)


def make_state(client: ApplianceClient) -> None:
    client.run_suite("example-tests", model="model_chat", cache=False)
    client.run_benchmark("demo_arithmetic", model="model_chat", cache=False)
    for model in ("model_ollama", "model_completions", "model_claude", "model_chat"):
        client.run_benchmark("demo_multiple_choice", model=model, cache=False)
    running = client.run_benchmark("demo_multiple_choice", model="model_limited", wait=False, concurrency=2)
    eventually(
        lambda: llm_eval.running_progress(client, [running]).get(running["id"], 0) >= HANGS_FROM / 16,
        message="the running benchmark answered the items before the hang",
    )


def capture(client: ApplianceClient) -> list[tuple[str, int, str]]:
    """(request, status, body) of every request the screen makes, as it makes them."""
    responses: list[tuple[str, int, str]] = []

    def record(response: httpx.Response) -> None:
        response.read()
        target = response.request.url.raw_path.decode()
        responses.append((target, response.status_code, response.text))

    client.http.event_hooks["response"].append(record)
    overview = llm_eval.load_overview(client)
    for dataset in overview.datasets:
        client.leaderboard(dataset, top=llm_eval.LEADERBOARD_TOP)
    client.http.event_hooks["response"].remove(record)
    return responses


def pin_times(path: str, body: Any) -> Any:
    """Each finished result's wall time from MS_PER_ITEM, as the server would report it,
    and the shipped datasets' dates (their files' times, which differ per checkout)."""
    per_item = dict(MS_PER_ITEM)
    if path == "/api/v1/datasets":
        for dataset in body["datasets"]:
            if dataset.get("demo"):
                dataset["created_at"] = SHIPPED_AT
    elif path == "/api/v1/benchmark":
        for result in body["results"]:
            if result["status"] == "completed":
                result["total_time_ms"] = _ms_per_item(result, per_item) * result["total"]
    elif path == "/api/v1/leaderboard":
        for entry in body["entries"]:
            entry["latency_ms"] = _ms_per_item(entry, per_item)
    return body


def _ms_per_item(result: dict[str, Any], per_item: dict[str, int]) -> int:
    by_server_name = {
        "scripted-chat": "model_chat",
        "scripted-completions": "model_completions",
        "claude-scripted": "model_claude",
    }
    return per_item[by_server_name.get(result["model"], "model_ollama")]


class RunIds:
    """Experiment, run and suite-run ids as constants: the n-th of each kind met (in the
    responses' fixed order) always gets the same one, whatever else a capture meets."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, match: re.Match) -> str:
        real = match.group(0)
        if real not in self.names:
            prefix = real.split("_", 1)[0]
            seen = sum(1 for known in self.names if known.startswith(f"{prefix}_"))
            tail = hashlib.sha256(f"{prefix}{seen}".encode()).hexdigest()[: len(real) - len(prefix) - 1]
            self.names[real] = f"{prefix}_{tail}"
        return self.names[real]


def save(responses: list[tuple[str, int, str]], began: datetime) -> None:
    normaliser, run_ids = Normaliser(began, {}), RunIds()
    for old in FIXTURE_DIR.glob("*.json"):
        if llm_fixture(old.name):
            old.unlink()

    def text(raw: str) -> str:
        return RUN_IDS.sub(run_ids, normaliser.text(raw))

    for target, status, raw in responses:
        key = request_key("GET", text(target))
        body = json.loads(text(raw))
        if status < 400:
            body = pin_times(key.split(" ", 1)[1].split("?", 1)[0], body)
        assert llm_fixture(fixture_name(key)), f"{key}: add its file's prefix to tui_replay.LLM_FIXTURE_PREFIXES"
        fixture = {"request": key, "status": status, "body": body}
        (FIXTURE_DIR / fixture_name(key)).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="appliance-tui-llm-capture-"))
    began = datetime.now(UTC)
    model_server = ScriptedModelServer().start()
    model_server.reset(capture_script)
    server = start_llm_server(data_dir, model_server)
    try:
        with ApplianceClient(server.url, api_key=server.admin_key) as client:
            make_state(client)
            responses = capture(client)
        save(responses, began)
        print(f"{len(responses)} responses saved to {FIXTURE_DIR}")
    finally:
        server.stop()
        model_server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
