"""Experiments: the list with status and progress bars; below, the selected experiment
(progress, ETA, best result) with its runs, the selected run's metrics over its steps as
a plot, its checkpoints and its log followed live; start, pause, resume, cancel, clone.

Experiment events (status, progress, each run's end, errors) reload the screen as they
happen: from the bus in `appliance run`, from the daemon's `experiment:<id>` channels
when attached (the screen follows the experiments it lists that have not ended). While
they arrive, the screen only polls the selected run's log and metrics while it runs
(no event carries log lines) every POLL_SECONDS, and reloads everything every
RESYNC_SECONDS (a new experiment has no event); while they do not (the socket lost),
it reloads everything every POLL_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from appliance.client import ApplianceClient
from appliance.core.events import ExperimentEvent, ExperimentProgress
from appliance.core.experiments import ExperimentStatus
from appliance.tui.experiment_channels import ExperimentPushes
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.widgets.checkpoint_list import CheckpointList
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.experiment_facts import ExperimentFacts
from appliance.tui.widgets.experiment_table import ExperimentTable
from appliance.tui.widgets.metric_plot import MetricPlot
from appliance.tui.widgets.run_log import RunLog
from appliance.tui.widgets.run_table import RunTable

POLL_SECONDS = 2.0
RESYNC_SECONDS = 30.0
ENDED = frozenset(status.value for status in ExperimentStatus if status.is_terminal)
LIST_SIZE = 100
LOG_TAIL = 200


class ExperimentsScreen(ApplianceScreen[None]):
    TITLE = "Experiments"
    DEFAULT_CSS = """
    ExperimentsScreen #experiments { height: auto; max-height: 30%; min-height: 3; }
    ExperimentsScreen #experiment-detail { height: 1fr; border-top: solid $primary; }
    ExperimentsScreen #run-panes { height: 1fr; min-height: 4; }
    ExperimentsScreen #runs { width: 3fr; }
    ExperimentsScreen #run-side { width: 2fr; padding: 0 1; }
    ExperimentsScreen #run-log { height: 1fr; }
    """
    BINDINGS = [
        Binding("g", "start", "Start"),
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("o", "clone", "Clone"),
        Binding("full_stop", "next_metric", "Next metric"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.experiments: dict[str, dict[str, Any]] = {}  # id -> list entry, newest first
        self.progress: dict[str, float | None] = {}  # id -> progress, from details and events
        self.detail: dict[str, Any] | None = None  # the selected experiment's GET
        self.run: dict[str, Any] | None = None  # the selected run's GET
        self.total = 0
        self.loads = 0
        self.loaded_at = 0.0  # time.monotonic() of the last whole load

    def compose_body(self) -> ComposeResult:
        yield Static(id="experiment-summary")
        yield ExperimentTable(id="experiments")
        with Vertical(id="experiment-detail"):
            yield ExperimentFacts(id="experiment-facts")
            with Horizontal(id="run-panes"):
                yield RunTable(id="runs")
                with Vertical(id="run-side"):
                    yield MetricPlot(id="metric-plot")
                    yield CheckpointList(id="checkpoints")
                    yield RunLog(id="run-log")

    def on_mount(self) -> None:
        self._show_summary()
        self.set_interval(POLL_SECONDS, self._poll)

    def _poll(self) -> None:
        live = self.app.live
        if not (self.is_current and live.connected):
            return
        if not live.experiment_pushes or time.monotonic() - self.loaded_at >= RESYNC_SECONDS:
            self.action_reload()
        elif (self.run or {}).get("status") == "running":
            self.run_exclusive(self._load_run, group="run")

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, ExperimentProgress):
            self.progress[item.experiment_id] = item.progress
        if isinstance(item, ExperimentEvent | ExperimentPushes) and self.is_current:
            self.action_reload()

    # --- loading ---------------------------------------------------------------------

    async def refresh_data(self) -> None:
        listing = await self.app.api(
            lambda c: c.list_experiments(sort="-created_at", per_page=LIST_SIZE), action="list experiments"
        )
        if listing is None:
            return
        self.loads += 1
        self.loaded_at = time.monotonic()
        self.total = int((listing.get("meta") or {}).get("total", len(listing["data"])))
        self.experiments = {e["id"]: dict(e) for e in listing["data"]}
        self.app.backend.feed.follow_experiments(i for i, e in self.experiments.items() if e.get("status") not in ENDED)
        self.query_one(ExperimentTable).show(list(self.experiments.values()), self.progress)
        self._show_summary()
        await self._load_selected()

    async def _load_selected(self) -> None:
        experiment_id = self.selected_id()
        if experiment_id is None:
            self.detail = self.run = None
            self._show_detail()
            return
        detail = await self.app.api(lambda c: c.get_experiment(experiment_id), action=f"show {experiment_id}")
        if detail is None or experiment_id != self.selected_id():
            return
        self.detail = dict(detail)
        self.progress[experiment_id] = detail.get("progress")
        self.experiments.setdefault(experiment_id, {}).update(
            {k: detail[k] for k in ("status", "name", "updated_at") if k in detail}
        )
        self.query_one(ExperimentTable).show(list(self.experiments.values()), self.progress)
        runs = await self.app.api(
            lambda c: c.list_runs(experiment_id=experiment_id, sort="position", per_page=LIST_SIZE),
            action=f"list runs of {experiment_id}",
        )
        self.query_one(RunTable).show(list(runs["data"]) if runs else [])
        self._show_detail()
        await self._load_run()

    async def _load_run(self) -> None:
        run_id = self.query_one(RunTable).selected_id()
        if run_id is None:
            self.run = None
            self._show_run(None, {}, [], [])
            return
        run = await self.app.api(lambda c: c.get_run(run_id), action=f"show run {run_id}")
        metrics = await self.app.api(lambda c: c.run_metrics(run_id), action=f"metrics of {run_id}")
        logs = await self.app.api(lambda c: c.run_logs(run_id, tail=LOG_TAIL), action=f"logs of {run_id}")
        if run is None or run_id != self.query_one(RunTable).selected_id():
            return
        self.run = dict(run)
        self._show_run(run_id, dict(metrics or {}), list(logs or []), list(run.get("checkpoints") or []))

    # --- drawing ---------------------------------------------------------------------

    def _show_summary(self) -> None:
        running = sum(1 for e in self.experiments.values() if e.get("status") == "running")
        shown = len(self.experiments)
        more = f" (newest {shown} of {self.total})" if self.total > shown else ""
        self.query_one("#experiment-summary", Static).update(
            f"{self.total} experiment{'s' if self.total != 1 else ''}{more} · {running} running"
        )

    def _show_detail(self) -> None:
        self.query_one(ExperimentFacts).show(self.detail)

    def _show_run(
        self, run_id: str | None, metrics: dict[str, Any], logs: list[dict[str, Any]], checkpoints: list[Any]
    ) -> None:
        self.query_one(MetricPlot).show(metrics)
        self.query_one(CheckpointList).show(checkpoints)
        self.query_one(RunLog).show(run_id, logs)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "experiments":
            if (self.detail or {}).get("id") != self.selected_id():
                self.run_exclusive(self._load_selected, group="detail")
        elif event.data_table.id == "runs" and (self.run or {}).get("id") != self.query_one(RunTable).selected_id():
            self.run_exclusive(self._load_run, group="run")

    def selected_id(self) -> str | None:
        return self.query_one(ExperimentTable).selected_id()

    # --- actions ---------------------------------------------------------------------

    async def _act(self, verb: str, call: Callable[[ApplianceClient, str], Any]) -> Any:
        experiment_id = self.selected_id()
        if experiment_id is None:
            self.notify("No experiment selected", severity="warning")
            return None
        done = await self.app.api(lambda c: call(c, experiment_id), action=f"{verb} {experiment_id}")
        if done is not None:
            self.notify(f"{experiment_id}: {verb} → {done.get('status')}", timeout=4)
            await self.refresh_data()
        return done

    @work(group="experiment-action")
    async def action_start(self) -> None:
        await self._act("start", lambda c, e: c.start_experiment(e))

    @work(group="experiment-action")
    async def action_pause(self) -> None:
        await self._act("pause", lambda c, e: c.pause_experiment(e))

    @work(group="experiment-action")
    async def action_resume(self) -> None:
        await self._act("resume", lambda c, e: c.resume_experiment(e))

    @work(group="experiment-action")
    async def action_cancel(self) -> None:
        experiment_id = self.selected_id()
        if experiment_id is None:
            self.notify("No experiment selected", severity="warning")
            return
        question = f"Cancel {experiment_id}? Runs waiting are cancelled and running ones are stopped."
        if await self.app.push_screen_wait(ConfirmDialog("Cancel experiment", question, confirm_label="Cancel it")):
            await self._act("cancel", lambda c, e: c.cancel_experiment(e))

    @work(group="experiment-action")
    async def action_clone(self) -> None:
        clone = await self._act("clone", lambda c, e: c.clone_experiment(e))
        if clone is not None:
            table = self.query_one(ExperimentTable)
            if clone["id"] in self.experiments:
                table.move_cursor(row=table.get_row_index(clone["id"]))

    def action_next_metric(self) -> None:
        self.query_one(MetricPlot).next_metric()

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield ("Experiments: start", "Start the selected pending experiment (key g)", self.action_start)
        yield ("Experiments: pause", "No new run starts; running ones finish (key p)", self.action_pause)
        yield ("Experiments: resume", "Runs start again (key r)", self.action_resume)
        yield (
            "Experiments: cancel",
            "Cancel the selected experiment, after a confirmation (key c)",
            self.action_cancel,
        )
        yield ("Experiments: clone", "A new pending experiment with the same config (key o)", self.action_clone)
        yield ("Experiments: refresh", "Reload the experiments now (key ctrl+r)", self.action_reload)
