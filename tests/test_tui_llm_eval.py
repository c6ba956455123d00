"""The LLM evaluation screen on a real server whose models are a scripted server on
loopback: benchmarks run through the API land in the screen's results (a running one
with its progress), and choosing a dataset shows its leaderboard, with the 95% Wilson
intervals and the non-significant neighbours computed here. Also GET /api/v1/benchmark,
the list the screen reads."""

from __future__ import annotations

import json
import math
from importlib import resources

from textual.widgets import Select

from appliance.client import ApplianceClient
from appliance.tui.screens.llm_eval import LlmEvalScreen
from appliance.tui.widgets.leaderboard_table import LeaderboardTable
from tests.llm_servers import Reply, Seen
from tests.llm_support import assert_llm_error
from tests.support import eventually
from tests.tui_support import api, screen_text, tui_for, wait_until

DEMO = resources.files("appliance.services.llm") / "shipped" / "datasets"
ROWS = [json.loads(line) for line in (DEMO / "demo_multiple_choice.jsonl").read_text().splitlines()]
ANSWERS = {row["question"]: "ABCD"[row["answer"]] for row in ROWS}
MC = "demo_multiple_choice"
WRONG = {"claude-scripted": {0, 1}}  # the items each server model gets wrong, by place
HANGS_FROM = 4  # `limited` answers the items before this place, then never again


def script(seen: Seen) -> Reply | str:
    question = next((q for q in ANSWERS if q in seen.text), None)
    if question is None:
        return "I do not know."
    place, right = list(ANSWERS).index(question), ANSWERS[question]
    model = str(seen.body.get("model"))
    if model == "limited" and place >= HANGS_FROM:
        return Reply(hang=True)
    given = ("A" if right != "A" else "B") if place in WRONG.get(model, set()) else right
    return f"Let me see.\nAnswer: {given}"


def wilson(correct: int, total: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


async def test_benchmarks_and_a_chosen_datasets_leaderboard(llm, scripted):
    scripted.reset(script)
    for model in ("model_claude", "model_chat"):
        await api(llm, lambda c, m=model: c.run_benchmark(MC, model=m, cache=False))
    # The newest finished result is on another dataset: the screen starts on that one.
    await api(llm, lambda c: c.run_benchmark("demo_arithmetic", model="model_chat", sample_size=3, cache=False))
    running = await api(llm, lambda c: c.run_benchmark(MC, model="model_limited", wait=False, concurrency=2))
    await api(
        llm,
        lambda c: eventually(
            lambda: c.list_runs(experiment_id=running["experiment_id"])["data"][0]["progress"] >= 0.25,
            message="the running benchmark answered the items before the hang",
        ),
    )

    app = tui_for(llm)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("l")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, LlmEvalScreen) and app.screen)
        await wait_until(pilot, lambda: screen.leaderboard is not None)
        assert screen.dataset == "demo_arithmetic"
        shown = screen_text(app)
        assert "example-tests" in shown  # the shipped suite, never run: "never"
        assert "scripted-chat" in shown and "claude-scripted" in shown and "limited" in shown
        row = next(line for line in shown.splitlines() if "limited" in line)
        assert "running" in row and "%" in row, row  # its progress from its experiment's run

        # Choose the multiple-choice dataset in the list the `f` key opens.
        await pilot.press("f")
        select = screen.query_one("#llm-dataset", Select)
        await wait_until(pilot, lambda: select.expanded)
        steps = screen.datasets.index(MC) - screen.datasets.index("demo_arithmetic")
        await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
        await wait_until(pilot, lambda: screen.dataset == MC and screen.leaderboard is not None)

        table = screen.query_one(LeaderboardTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert [(r[0], r[1]) for r in rows] == [("1", "scripted-chat"), ("2", "claude-scripted")]
        low, high = wilson(16, 16)
        assert rows[0][2:4] == [percent(1.0), f"[{percent(low)}, {percent(high)}]"]
        low, high = wilson(14, 16)
        assert rows[1][2:4] == [percent(14 / 16), f"[{percent(low)}, {percent(high)}]"]
        # Two discordant items: McNemar's exact p is 0.5, so the two do not differ significantly.
        assert (rows[0][4], rows[1][4]) == ("≈ 2", "≈ 1")
        assert rows[0][5:7] == ["16/16", "0.5"]


def test_the_results_list_newest_first_and_only_the_keys_own(llm, scripted):
    scripted.reset(script)
    with llm.admin() as admin:
        made = admin.post("/api/v1/benchmark", json={"dataset": MC, "model": "model_chat", "sample_size": 2})
        assert made.status_code == 200, made.text
        listed = admin.get("/api/v1/benchmark", params={"limit": 1}).json()
        assert [r["id"] for r in listed["results"]] == [made.json()["id"]] and listed["total"] >= 1
        assert listed["results"][0] == made.json()
        of_other = admin.get("/api/v1/benchmark", params={"dataset": "demo_code"}).json()
        assert of_other == {"results": [], "total": 0}
        assert_llm_error(admin.get("/api/v1/benchmark", params={"limit": 0}), 400, "INVALID_REQUEST")
    with ApplianceClient(llm.url, api_key=llm.admin_key) as client:
        key = client.create_api_key("benchmark-reader", ["read"]).api_key
    with llm.client(key) as reader:
        assert reader.get("/api/v1/benchmark").json() == {"results": [], "total": 0}
