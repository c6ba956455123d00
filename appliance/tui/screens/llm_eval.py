"""LLM evaluation: the test suites with their latest runs' scores, the benchmark results
(a running one with its progress) and a dataset's leaderboard, with 95% intervals and
the neighbours it does not differ from significantly.

Everything comes from the API (GET /api/v1/suites, /api/v1/suite-runs, /api/v1/benchmark,
/api/v1/datasets, /api/v1/leaderboard), on showing, after a reconnect and on ctrl+r;
while a benchmark runs, and only while the screen is shown, the results are asked for
again every few seconds (the feed carries no benchmark events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static

from appliance.client import ApplianceClient
from appliance.tui.screens.base import ApplianceScreen, PaletteCommand
from appliance.tui.widgets.benchmark_table import BenchmarkTable
from appliance.tui.widgets.leaderboard_table import LeaderboardTable
from appliance.tui.widgets.suite_table import SuiteTable

RUNS_LIMIT = 200  # the newest suite runs read, to find each suite's latest
RESULTS_LIMIT = 100  # the newest benchmark results shown
LEADERBOARD_TOP = 20
RUNNING_REFRESH_SECONDS = 3.0


@dataclass
class Results:
    page: dict[str, Any]  # GET /api/v1/benchmark's answer: results, total
    progress: dict[int, float]  # result id -> share of items answered, for the running ones


@dataclass
class Overview:
    suites: list[dict[str, Any]]
    runs: list[dict[str, Any]]  # suite runs, newest first
    results: Results
    datasets: list[str]


def load_results(client: ApplianceClient) -> Results:
    page = client.benchmark_results(limit=RESULTS_LIMIT)
    return Results(page, running_progress(client, page["results"]))


def load_overview(client: ApplianceClient) -> Overview:
    """What the screen shows but the leaderboard, in one worker thread."""
    return Overview(
        suites=client.list_suites(),
        runs=client.suite_runs(limit=RUNS_LIMIT)["runs"],
        results=load_results(client),
        datasets=[dataset["name"] for dataset in client.list_datasets()],
    )


def running_progress(client: ApplianceClient, results: Iterable[dict[str, Any]]) -> dict[int, float]:
    """Each running result's progress: its experiment run's (the feed carries none)."""
    progress = {}
    for result in results:
        if result.get("status") == "running":
            runs = client.list_runs(experiment_id=result["experiment_id"])["data"]
            run = next((r for r in runs if r["id"] == result["run_id"]), None)
            if run is not None and run.get("progress") is not None:
                progress[result["id"]] = float(run["progress"])
    return progress


class LlmEvalScreen(ApplianceScreen[None]):
    TITLE = "LLM evaluation"
    BINDINGS = [
        Binding("f", "choose_dataset", "Dataset"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]
    DEFAULT_CSS = """
    LlmEvalScreen .llm-heading { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    LlmEvalScreen #llm-results { height: 1fr; }
    LlmEvalScreen #llm-leaderboard { height: 1fr; }
    LlmEvalScreen #llm-leaderboard-bar { height: 1; background: $boost; }
    LlmEvalScreen #llm-leaderboard-bar Static { width: auto; padding: 0 1; text-style: bold; }
    LlmEvalScreen #llm-dataset { width: 36; height: 1; }
    LlmEvalScreen #llm-dataset SelectCurrent { border: none; height: 1; padding: 0 1; }
    LlmEvalScreen #llm-dataset SelectOverlay { width: 36; }
    LlmEvalScreen #llm-leaderboard-note { width: 1fr; text-style: none; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.dataset: str | None = None  # the leaderboard's; None until the datasets are known
        self.datasets: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.leaderboard: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Suites", id="llm-suites-heading", classes="llm-heading")
        yield SuiteTable(id="llm-suites")
        yield Static("Benchmark results", id="llm-results-heading", classes="llm-heading")
        yield BenchmarkTable(id="llm-results")
        with Horizontal(id="llm-leaderboard-bar"):
            yield Static("Leaderboard")
            yield Select[str]((), prompt="dataset (f)", allow_blank=True, id="llm-dataset")
            yield Static(id="llm-leaderboard-note")
        yield LeaderboardTable(id="llm-leaderboard")

    def on_mount(self) -> None:
        # The base class loads from the API on mount; the timer runs only while shown.
        self.running_timer = self.set_interval(RUNNING_REFRESH_SECONDS, self.tick)

    def on_screen_suspend(self) -> None:
        self.running_timer.pause()

    def on_screen_resume(self) -> None:
        self.running_timer.resume()

    # --- loading ------------------------------------------------------------------------

    async def refresh_data(self) -> None:
        overview = await self.app.api(load_overview, action="load suites and benchmark results")
        if overview is None:
            return
        self.query_one(SuiteTable).show(overview.suites, overview.runs)
        self.show_results(overview.results)
        self.show_datasets(overview.datasets)
        await self.load_leaderboard()

    async def load_leaderboard(self) -> None:
        dataset = self.dataset
        if dataset is None:
            self.show_leaderboard(None)
            return
        board = await self.app.api(
            lambda c: c.leaderboard(dataset, top=LEADERBOARD_TOP), action=f"load the leaderboard of {dataset}"
        )
        if board is not None and dataset == self.dataset:
            self.show_leaderboard(board)

    async def load_results(self) -> None:
        loaded = await self.app.api(load_results, action="load benchmark results")
        if loaded is None:
            return
        was_running = {r["id"] for r in self.results if r.get("status") == "running"}
        self.show_results(loaded)
        ended = [r for r in self.results if r["id"] in was_running and r.get("status") != "running"]
        if any(r.get("dataset") == self.dataset for r in ended):
            await self.load_leaderboard()  # a result that just ended may rank

    async def tick(self) -> None:
        """Every RUNNING_REFRESH_SECONDS while shown, if a benchmark runs (and the feed is
        up: while it is down, the banner says so and a reconnect reloads everything)."""
        if self.app.live.connected and any(r.get("status") == "running" for r in self.results):
            self.run_exclusive(self.load_results, group="results")

    # --- showing ------------------------------------------------------------------------

    def show_results(self, loaded: Results) -> None:
        self.results = list(loaded.page["results"])
        self.query_one(BenchmarkTable).show(self.results, loaded.progress)
        total, shown = loaded.page.get("total", len(self.results)), len(self.results)
        more = f" (the newest {shown} of {total})" if total > shown else f" ({total})"
        running = sum(1 for r in self.results if r.get("status") == "running")
        self.query_one("#llm-results-heading", Static).update(
            f"Benchmark results{more}" + (f" · {running} running" if running else "")
        )

    def show_datasets(self, datasets: list[str]) -> None:
        self.datasets = datasets
        if self.dataset not in datasets:
            # The dataset of the newest finished result: the leaderboard most likely wanted.
            finished = [r["dataset"] for r in self.results if r.get("status") == "completed"]
            self.dataset = next((d for d in finished if d in datasets), datasets[0] if datasets else None)
        select = self.query_one("#llm-dataset", Select)
        with self.prevent(Select.Changed):
            select.set_options((name, name) for name in datasets)
            if self.dataset is not None:
                select.value = self.dataset

    def show_leaderboard(self, board: dict[str, Any] | None) -> None:
        self.leaderboard = board
        entries = (board or {}).get("entries") or []
        self.query_one(LeaderboardTable).show(entries)
        if board is None:
            note = "loading…" if self.dataset else "no dataset"
        else:
            note = f"{len(entries)} model{'s' if len(entries) != 1 else ''}"
        if entries:
            note += " · 95% Wilson intervals · ≈: no significant difference (McNemar)"
        self.query_one("#llm-leaderboard-note", Static).update(note)

    # --- actions ------------------------------------------------------------------------

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "llm-dataset" or not isinstance(event.value, str):
            return
        self.choose(event.value)

    def choose(self, dataset: str) -> None:
        """Show `dataset`'s leaderboard."""
        if dataset == self.dataset and self.leaderboard is not None:
            return
        self.dataset = dataset
        self.show_leaderboard(None)
        self.run_exclusive(self.load_leaderboard, group="leaderboard")

    def action_choose_dataset(self) -> None:
        select = self.query_one("#llm-dataset", Select)
        select.focus()
        select.expanded = True

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield (
            "LLM evaluation: choose the leaderboard's dataset",
            "Opens the list of datasets (key f)",
            self.action_choose_dataset,
        )
        yield (
            "LLM evaluation: refresh",
            "Reload suites, benchmark results and the leaderboard (key ctrl+r)",
            self.action_reload,
        )
