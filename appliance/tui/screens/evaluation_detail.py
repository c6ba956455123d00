"""One evaluation in full: its facts (status, exit code, times, limits, accounting), its
output streaming in while it runs, and its code; kill it or run it again from here.

Pushed by the evaluations table; Escape goes back. When it closes it tells the table
which evaluation to select (and whether to open it: after a resubmit, the new one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TabbedContent, TabPane

from appliance.client.evaluations import FINAL_STATUSES
from appliance.core.clock import iso_z, utc_now
from appliance.core.events import Completed, EvaluationError, EvaluationEvent, OutputChunk, StatusUpdate
from appliance.tui.evaluation_text import CODE_PREVIEW_CHARS, full_code, is_newer_status, resubmission
from appliance.tui.live import Disconnected
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.widgets.code_view import CodeView
from appliance.tui.widgets.evaluation_facts import EvaluationFacts
from appliance.tui.widgets.output_log import OutputLog

if TYPE_CHECKING:
    from appliance.tui.app import ApplianceTui

TABS = (("output", "Output"), ("errors", "Errors"), ("code", "Code"))
# A held status request while the feed is down: short, so that quitting never waits long
# for the thread it runs in.
AWAIT_END_STEP_SECONDS = 5.0
# Fields of the `completed` event that are also fields of the status body.
COMPLETED_FIELDS = ("status", "success", "exit_code", "reason", "completed_at", "execution_time")


@dataclass(frozen=True)
class Resubmitted:
    """A new evaluation made from an old one: its id, its code and a table row for it."""

    eval_id: str
    code: str
    record: dict[str, Any]


@dataclass(frozen=True)
class DetailClosed:
    """What the detail screen hands back: the evaluation to select, and whether to open it."""

    eval_id: str
    open: bool = False
    resubmitted: Resubmitted | None = None


async def resubmit(
    app: ApplianceTui,
    eval_id: str,
    *,
    status: Mapping[str, Any] | None = None,
    preview: str | None = None,
    code: str | None = None,
) -> Resubmitted | None:
    """POST /api/eval with the same language, code, engine and timeout; notifies the new id.
    Returns None (after saying why) when it could not."""
    action = f"resubmit {eval_id}"
    if status is None or status.get("language") is None:
        status = await app.api(lambda c: c.evaluation_status(eval_id), action=action)
        if status is None:
            return None
    code = code if code is not None else full_code(status, preview)
    if code is None:
        app.notify(
            f"{action}: the API sends only the first {CODE_PREVIEW_CHARS} characters of its code, "
            "so it cannot be sent again from here",
            title="cannot resubmit",
            severity="error",
            timeout=8,
        )
        return None
    body = resubmission(status, code)
    answer = await app.api(lambda c: c.submit_evaluation(**body), action=action)
    if answer is None:
        return None
    new_id = answer["eval_id"]
    app.notify(
        f"{eval_id} resubmitted as {new_id} (queue position {answer.get('queue_position', '?')})",
        title=answer.get("message") or "resubmitted",
    )
    preview = code[:CODE_PREVIEW_CHARS] + ("..." if len(code) > CODE_PREVIEW_CHARS else "")
    record = {
        "eval_id": new_id,
        "status": answer.get("status", "queued"),
        "success": False,
        "language": body["language"],
        "created_at": iso_z(utc_now()),
        "code_preview": preview,
    }
    return Resubmitted(new_id, code, record)


async def kill(app: ApplianceTui, eval_id: str) -> None:
    """POST /api/eval/{id}/kill and show the server's answer."""
    answer = await app.api(lambda c: c.kill_evaluation(eval_id), action=f"kill {eval_id}")
    if answer is not None:
        app.notify(
            answer.get("message", ""),
            title=f"kill {eval_id}",
            severity="information" if answer.get("killed") else "warning",
        )


class EvaluationDetailScreen(ApplianceScreen[DetailClosed]):
    TITLE = "Evaluation"
    AUTO_FOCUS = "#stdout"
    DEFAULT_CSS = """
    EvaluationDetailScreen TabbedContent { height: 1fr; }
    EvaluationDetailScreen TabPane { padding: 0; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("v", "next_tab", "View"),
        Binding("x", "kill", "Kill"),
        Binding("r", "resubmit", "Resubmit"),
    ]

    def __init__(self, eval_id: str, *, summary: Mapping[str, Any] | None = None, code: str | None = None) -> None:
        super().__init__()
        self.eval_id = eval_id
        self.sub_title = eval_id
        # What is known so far: the table's row, then the status body, then events.
        self.facts: dict[str, Any] = {"eval_id": eval_id, **(summary or {})}
        self._code = code  # the whole program, when known
        self._finished = False
        self._panes_ready = asyncio.Event()
        self._early_events: list[EvaluationEvent] = []

    def compose_body(self) -> ComposeResult:
        yield EvaluationFacts(id="facts")
        with TabbedContent(initial="output"):
            with TabPane("Output", id="output"):
                yield OutputLog(id="stdout")
            with TabPane("Errors", id="errors"):
                yield OutputLog(id="stderr")
            with TabPane("Code", id="code"):
                yield CodeView(id="code-view")

    def on_mount(self) -> None:
        self.call_after_refresh(self._when_panes_mounted)

    def _when_panes_mounted(self) -> None:
        """The tab panes mount a little after the screen: wait for them, then draw and
        replay any event that came first."""
        if not self.query("#code-view"):
            self.call_after_refresh(self._when_panes_mounted)
            return
        self._panes_ready.set()
        self._show_facts()
        self._show_code()
        for event in self._early_events:
            self._apply_event(event)
        self._early_events.clear()

    # --- loading ------------------------------------------------------------------------

    async def refresh_data(self) -> None:
        await self._panes_ready.wait()
        stdout, stderr = self.query_one("#stdout", OutputLog), self.query_one("#stderr", OutputLog)
        stdout.mark()
        stderr.mark()
        status = await self.app.api(lambda c: c.evaluation_status(self.eval_id), action=f"load {self.eval_id}")
        logs = None
        if status is not None:  # (one error notification is enough)
            logs = await self.app.api(
                lambda c: c.evaluation_logs(self.eval_id), action=f"load output of {self.eval_id}"
            )
        source = logs or status
        # Through the message queue, so it lands after the chunks that arrived before it.
        self.post_message(self.Loaded(status, None if source is None else (source["output"], source["error"])))
        if status is not None and status.get("status") not in FINAL_STATUSES and not self.app.live.connected:
            self.run_exclusive(self._await_end, group="await-end")

    class Loaded(Message):
        """The status body and the output so far (stdout, stderr), as the server sent them."""

        def __init__(self, status: Mapping[str, Any] | None, output: tuple[str, str] | None) -> None:
            super().__init__()
            self.status, self.output = status, output

    def on_evaluation_detail_screen_loaded(self, message: Loaded) -> None:
        if message.status is not None:
            self._merge(message.status)
        if message.output is not None:
            for log_id, text in zip(("#stdout", "#stderr"), message.output, strict=True):
                log = self.query_one(log_id, OutputLog)
                if log.final:
                    continue  # the `completed` event's output is the last word
                log.finish(text) if self._finished else log.load(text)
        self._show_facts()
        self._show_code()
        self._show_error_mark()

    async def _reload_facts(self) -> None:
        """After `completed`: the accounting (peak memory, limits hit) is in the status body."""
        status = await self.app.api(lambda c: c.evaluation_status(self.eval_id), action=f"load {self.eval_id}")
        if status is not None:
            self._merge(status)
            self._show_facts()

    async def _await_end(self) -> None:
        """While the live feed is down: `GET /api/eval-status/{id}?wait=` until the
        evaluation ends (one held request at a time, no polling), then load it all."""
        while not self._finished:
            status = await self.app.api(
                lambda c: c.evaluation_status(self.eval_id, wait=AWAIT_END_STEP_SECONDS), action=f"load {self.eval_id}"
            )
            if status is None:
                return  # the appliance does not answer either; the feed's reconnect reloads
            if status.get("status") in FINAL_STATUSES:
                await self.refresh_data()
                return

    def _merge(self, status: Mapping[str, Any]) -> None:
        fields = {k: v for k, v in status.items() if k not in ("output", "error")}
        if not is_newer_status(fields.get("status"), self.facts.get("status")):
            # an answer older than an event already seen: it may only fill gaps
            fields = {k: v for k, v in fields.items() if self.facts.get(k) is None}
        self.facts.update(fields)
        self._finished = self._finished or self.facts.get("status") in ("completed", "failed", "timeout")

    # --- live ---------------------------------------------------------------------------

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, Disconnected) and not self._finished:
            # No events until the feed is back: the end comes from a held status request.
            self.run_exclusive(self._await_end, group="await-end")
            return
        if not isinstance(item, EvaluationEvent) or item.eval_id != self.eval_id:
            return
        if not self._panes_ready.is_set():
            self._early_events.append(item)
        else:
            self._apply_event(item)

    def _apply_event(self, item: EvaluationEvent) -> None:
        match item:
            case OutputChunk(data=chunk):
                log_id = "#stderr" if chunk.stream == "stderr" else "#stdout"
                self.query_one(log_id, OutputLog).append(chunk.output)
                self._show_error_mark()
                if self.facts.get("status") == "queued":
                    self.facts["status"] = "running"
                    self._show_facts()
            case StatusUpdate(data=running):
                if is_newer_status(running.status, self.facts.get("status")):
                    self.facts["status"] = running.status
                if running.started_at:
                    self.facts["started_at"] = running.started_at
                self._show_facts()
            case Completed(data=final):
                self.facts.update({k: getattr(final, k) for k in COMPLETED_FIELDS})
                self._finished = True
                self.query_one("#stdout", OutputLog).finish(final.output)
                self.query_one("#stderr", OutputLog).finish(final.error)
                self._show_facts()
                self._show_error_mark()
                self.run_exclusive(self._reload_facts, group="facts")
            case EvaluationError(data=problem):
                self.query_one("#stderr", OutputLog).append(f"{problem.error}\n")
                self._show_error_mark()

    # --- drawing ------------------------------------------------------------------------

    def _show_facts(self) -> None:
        self.query_one(EvaluationFacts).show(self.facts)

    def _show_error_mark(self) -> None:
        """`Errors •` when stderr has something, so it is not missed behind its tab."""
        has_errors = bool(self.query_one("#stderr", OutputLog).text)
        tab = self.query_one(TabbedContent).get_tab("errors")
        label = "Errors •" if has_errors else "Errors"
        if str(tab.label) != label:
            tab.label = label

    def _show_code(self) -> None:
        code = self._code or full_code(self.facts, self.facts.get("code_preview"))
        view = self.query_one(CodeView)
        if code is not None:
            self._code = code
            view.show(code, self.facts.get("language"))
        elif self.facts.get("code_preview"):
            view.show(self.facts["code_preview"], self.facts.get("language"), complete=False)

    # --- actions ------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(DetailClosed(self.eval_id))

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        ids = [tab_id for tab_id, _ in TABS]
        tabs.active = ids[(ids.index(tabs.active) + 1) % len(ids)] if tabs.active in ids else ids[0]

    def show_tab(self, tab_id: str) -> None:
        self.query_one(TabbedContent).active = tab_id

    async def action_kill(self) -> None:
        await kill(self.app, self.eval_id)

    async def action_resubmit(self) -> None:
        status = self.facts if self.facts.get("language") and "engine" in self.facts else None
        made = await resubmit(
            self.app, self.eval_id, status=status, preview=self.facts.get("code_preview"), code=self._code
        )
        if made is not None:
            self.dismiss(DetailClosed(made.eval_id, open=True, resubmitted=made))

    def palette_commands(self) -> Iterable[PaletteCommand]:
        eid = self.eval_id
        yield ("Back to the evaluations table", "Close this evaluation (key escape)", self.action_back)
        yield (
            f"Kill {eid}",
            "Stop this evaluation; needs the execute permission (key x)",
            lambda: self.run_worker(self.action_kill()),
        )
        yield (
            f"Resubmit {eid}",
            "Run the same code again as a new evaluation; needs execute (key r)",
            lambda: self.run_worker(self.action_resubmit()),
        )
        for tab_id, title in TABS:
            yield (
                f"Show {title.lower()} of {eid}",
                f"Switch to the {title} tab (key v cycles)",
                partial(self.show_tab, tab_id),
            )
