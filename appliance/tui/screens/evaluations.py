"""Queue and evaluations: a live table of evaluations, newest first, filtered by status
and language; open one, kill one, run one again.

Rows come from GET /api/evaluations and are then kept current from the feed: an event
for a row on screen updates that row; an event for an evaluation not on screen yet (or a
deeper queue, since queueing sends no event) asks for the list again, at most once per
RELOAD_GAP_SECONDS however many events arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import DataTable

from appliance.core.events import Completed, EvaluationEvent, OutputChunk, StatusUpdate
from appliance.tui.evaluation_text import STATUSES, is_newer_status
from appliance.tui.live import MetricSample
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.screens.evaluation_detail import DetailClosed, EvaluationDetailScreen, Resubmitted, kill, resubmit
from appliance.tui.widgets.evaluation_filter_bar import EvaluationFilterBar
from appliance.tui.widgets.evaluation_table import EvaluationTable
from appliance.tui.widgets.queue_summary import QueueSummary

LIST_LIMIT = 200  # the newest this many (per status filter) are in the table
RELOAD_GAP_SECONDS = 1.0
RELOAD_DELAY_SECONDS = 0.2  # lets a burst of events share one reload
STATUS_CHOICES: tuple[str | None, ...] = (None, *STATUSES)


class EvaluationsScreen(ApplianceScreen[None]):
    TITLE = "Evaluations"
    DEFAULT_CSS = """
    EvaluationsScreen #evaluations-bar { height: 1; }
    """
    BINDINGS = [
        # priority: the table would otherwise take Enter for itself
        Binding("enter", "open", "Open", priority=True),
        Binding("f", "cycle_status", "Status"),
        Binding("l", "cycle_language", "Lang"),
        Binding("x", "kill", "Kill"),
        Binding("r", "resubmit", "Resubmit"),
    ]
    AUTO_FOCUS = "#evaluations"

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict[str, Any]] = {}  # eval_id -> row (list item + events)
        self.total: int | None = None  # the server's count for the status filter
        self.status_filter: str | None = None
        self.language_filter: str | None = None
        self._codes: dict[str, str] = {}  # whole programs this TUI submitted itself
        self._reload_timer: Timer | None = None
        self._last_reload = 0.0
        self._queue_figures: dict[str, float | None] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="evaluations-bar"):
            yield QueueSummary(id="queue")
            yield EvaluationFilterBar(id="filters")
        yield EvaluationTable(id="evaluations")

    # --- loading ------------------------------------------------------------------------

    async def refresh_data(self) -> None:
        await self._load_rows()
        if "queue_depth" in self.app.live.latest:
            self._show_queue(self.app.live.latest.get("queue_depth"), self.app.live.latest.get("running_executions"))
        else:
            queue = await self.app.api(lambda c: c.queue_status(), action="load queue status")
            if queue is not None:
                self._show_queue(queue.get("queued"), queue.get("processing"))

    async def _load_rows(self) -> None:
        wanted = self.status_filter
        self._last_reload = time.monotonic()
        answer = await self.app.api(
            lambda c: c.list_evaluations(status=wanted, limit=LIST_LIMIT), action="list evaluations"
        )
        if answer is None or wanted != self.status_filter:
            return  # failed (and said so), or the filter moved on and another load follows
        fresh: dict[str, dict[str, Any]] = {}
        for item in answer["evaluations"]:
            row, known = dict(item), self.records.get(item["eval_id"])
            if known is not None and not is_newer_status(row["status"], known["status"]):
                # an event already moved it on while this answer was on its way
                row.update({k: known[k] for k in ("status", "success", "exit_code") if k in known})
            fresh[row["eval_id"]] = row
        self.records = fresh
        self.total = answer.get("count")
        self._redraw()

    def _schedule_reload(self) -> None:
        """Reload the list soon, coalescing every request that comes before it runs."""
        if self._reload_timer is not None or self._covered():
            return  # one is on its way, or the detail is on top (resuming reloads anyway)
        delay = max(RELOAD_DELAY_SECONDS, self._last_reload + RELOAD_GAP_SECONDS - time.monotonic())
        self._reload_timer = self.set_timer(delay, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_timer = None
        self.run_exclusive(self._load_rows, group="rows")

    # --- live ---------------------------------------------------------------------------

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, EvaluationEvent):
            self._apply_event(item)
        elif isinstance(item, MetricSample) and item.metric in ("queue_depth", "running_executions"):
            before = self._queue_figures.get("queue_depth")
            self._queue_figures[item.metric] = item.value
            self._show_queue(self._queue_figures.get("queue_depth"), self._queue_figures.get("running_executions"))
            if item.metric == "queue_depth" and (item.value or 0) > (before or 0):
                self._schedule_reload()  # something was queued: queueing sends no event

    def _apply_event(self, event: EvaluationEvent) -> None:
        status = status_after(event)
        row = self.records.get(event.eval_id)
        if row is None:
            if status is not None and (self.status_filter is None or status == self.status_filter):
                self._schedule_reload()
            return
        changed = False
        if status and status != row["status"] and is_newer_status(status, row["status"]):
            row["status"], changed = status, True
        if isinstance(event, Completed):
            row.update(success=event.data.success, exit_code=event.data.exit_code)
            changed = True
        if changed:
            self._redraw()

    # --- drawing ------------------------------------------------------------------------

    def _passes(self, row: dict[str, Any]) -> bool:
        return (self.status_filter is None or row["status"] == self.status_filter) and (
            self.language_filter is None or row.get("language") == self.language_filter
        )

    def _redraw(self) -> None:
        rows = [row for row in self.records.values() if self._passes(row)]
        self.query_one(EvaluationTable).show(rows)
        self.query_one(EvaluationFilterBar).show(self.status_filter, self.language_filter, len(rows), self.total)

    def _show_queue(self, queued: float | None, running: float | None) -> None:
        self._queue_figures.update(queue_depth=queued, running_executions=running)
        self.query_one(QueueSummary).show(queued, running)

    def _covered(self) -> bool:
        """True while another of our screens (the detail) is on top of this one."""
        stack = self.app.screen_stack
        return self in stack and any(isinstance(s, ApplianceScreen) for s in stack[stack.index(self) + 1 :])

    # --- actions ------------------------------------------------------------------------

    def _selected(self) -> str | None:
        eval_id = self.query_one(EvaluationTable).selected_id
        if eval_id is None:
            self.notify("No evaluation is selected", severity="warning")
        return eval_id

    def action_open(self) -> None:
        eval_id = self._selected()
        if eval_id is not None:
            self.open_detail(eval_id)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        # a click on the highlighted row (Enter is the screen's own binding)
        if message.row_key.value:
            self.open_detail(message.row_key.value)

    def open_detail(self, eval_id: str) -> None:
        screen = EvaluationDetailScreen(eval_id, summary=self.records.get(eval_id), code=self._codes.get(eval_id))
        self.app.push_screen(screen, self._detail_closed)

    def _detail_closed(self, result: DetailClosed | None) -> None:
        if result is None:
            return
        if result.resubmitted is not None:
            self._add_resubmitted(result.resubmitted)
        self.query_one(EvaluationTable).select(result.eval_id)
        if result.open:
            self.open_detail(result.eval_id)

    def _add_resubmitted(self, made: Resubmitted) -> None:
        self._codes[made.eval_id] = made.code
        self.records.setdefault(made.eval_id, made.record)
        self._redraw()

    def set_status_filter(self, status: str | None) -> None:
        self.status_filter = status
        self._redraw()  # what is loaded already, at once; the server's list follows
        self.run_exclusive(self._load_rows, group="rows")

    def set_language_filter(self, language: str | None) -> None:
        self.language_filter = language
        self._redraw()

    def action_cycle_status(self) -> None:
        index = STATUS_CHOICES.index(self.status_filter)
        self.set_status_filter(STATUS_CHOICES[(index + 1) % len(STATUS_CHOICES)])

    def _language_choices(self) -> list[str | None]:
        seen: set[str] = {row["language"] for row in self.records.values() if row.get("language")}
        return [None, *sorted(seen | ({self.language_filter} if self.language_filter else set()))]

    def action_cycle_language(self) -> None:
        choices = self._language_choices()
        index = choices.index(self.language_filter)
        self.set_language_filter(choices[(index + 1) % len(choices)])

    async def action_kill(self) -> None:
        eval_id = self._selected()
        if eval_id is not None:
            await kill(self.app, eval_id)

    async def action_resubmit(self) -> None:
        eval_id = self._selected()
        if eval_id is None:
            return
        made = await resubmit(
            self.app,
            eval_id,
            preview=(self.records.get(eval_id) or {}).get("code_preview"),
            code=self._codes.get(eval_id),
        )
        if made is not None:
            self._add_resubmitted(made)
            self.query_one(EvaluationTable).select(made.eval_id)

    def palette_commands(self) -> Iterable[PaletteCommand]:
        if self._covered():
            return  # the detail on top has its own
        yield ("Open the selected evaluation", "Code, output, limits and accounting (key enter)", self.action_open)
        yield (
            "Kill the selected evaluation",
            "Stop it if queued or running; needs execute (key x)",
            lambda: self.run_worker(self.action_kill()),
        )
        yield (
            "Resubmit the selected evaluation",
            "Run its code again as a new evaluation; needs execute (key r)",
            lambda: self.run_worker(self.action_resubmit()),
        )
        yield (
            "Cycle the status filter",
            "all → queued → running → completed → failed → timeout (key f)",
            self.action_cycle_status,
        )
        yield ("Cycle the language filter", "all → each language in the table (key l)", self.action_cycle_language)
        for status in STATUS_CHOICES:
            title = f"Show {status} evaluations" if status else "Show evaluations of every status"
            yield (
                title,
                "Filter the table by status (key f cycles)",
                partial(self.set_status_filter, status),
            )
        for language in self._language_choices():
            title = f"Show only {language} evaluations" if language else "Show evaluations in every language"
            yield (
                title,
                "Filter the table by language (key l cycles)",
                partial(self.set_language_filter, language),
            )


def status_after(event: EvaluationEvent) -> str | None:
    """The evaluation's status once the event happened; None when it does not tell."""
    match event:
        case StatusUpdate(data=running):
            return running.status
        case Completed(data=final):
            return final.status
        case OutputChunk():
            return "running"
    return None
