"""Sandboxes: the persistent sandboxes with their limits, the selected one in full below
(use, files, snapshots); create, delete, start a stopped one again, refresh.

There are no sandbox events on the feed, so the screen polls, every POLL_SECONDS and
only while it is the one on view."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from appliance.client import ApiError, ApplianceClient
from appliance.tui.screens.base import ApplianceScreen, PaletteCommand
from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.create_sandbox_dialog import CreateSandboxDialog
from appliance.tui.widgets.fitted_table import FittedDataTable
from appliance.tui.widgets.sandbox_detail import SandboxDetail

POLL_SECONDS = 5.0
SETTLE_SECONDS = 1.0  # a new sandbox is up about half a second after it is created
LIST_LIMIT = 200
LIMITS_PER_LOAD = 20  # details fetched per load for rows whose limits are not known yet
STATUS_CELL = {"running": "green", "creating": "yellow", "stopped": "dim", "error": "bold red"}
RESTARTABLE = ("stopped", "error")  # a PUT recreates their container (docs/sandbox-api.md)
COLUMNS = (
    ("id", "ID"),
    ("name", "Name"),
    ("status", "Status"),
    ("runtime", "Runtime"),
    ("engine", "Engine"),
    ("memory", "Memory"),
    ("cpu", "CPU"),
    ("disk", "Disk"),
    ("created", "Created (UTC)"),
)


def sandbox_row(sandbox: dict[str, Any], limits: dict[str, Any] | None) -> tuple[str | Text, ...]:
    status = sandbox.get("status", "?")
    limits = limits or {}
    cpu = limits.get("cpu_limit")
    return (
        sandbox["sandbox_id"],
        sandbox.get("name", ""),
        Text(status, style=STATUS_CELL.get(status, "")),
        sandbox.get("runtime", ""),
        sandbox.get("engine", ""),
        limits.get("memory_limit", "…"),
        "…" if cpu is None else f"{cpu:g}",
        limits.get("disk_limit", "…"),
        utc_text(sandbox.get("created_at")),
    )


class SandboxesScreen(ApplianceScreen[None]):
    TITLE = "Sandboxes"
    BINDINGS = [
        Binding("n", "create", "New"),
        Binding("x,delete", "delete", "Delete"),
        Binding("p", "restart", "Start again"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sandboxes: dict[str, dict[str, Any]] = {}  # id -> summary, in creation order
        self.limits: dict[str, dict[str, Any]] = {}  # id -> resources, from details or create
        self.detail: dict[str, Any] | None = None  # the selected sandbox's GET
        self.snapshots: list[dict[str, Any]] | None = None
        self.total = 0
        self.loads = 0
        self.changes = 0  # creates and deletes made here; a list older than one is dropped
        self.deleting: str | None = None  # asked about or being deleted: not to be loaded

    def compose_body(self) -> ComposeResult:
        yield Static(id="sandbox-summary")
        table: FittedDataTable[str | Text] = FittedDataTable(id="sandboxes", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield SandboxDetail()

    def on_mount(self) -> None:
        # ApplianceScreen.on_mount (Textual calls every class's handler) loads the data.
        self._show_summary()
        self.set_interval(POLL_SECONDS, self._poll)

    def _poll(self) -> None:
        if self.is_current and self.app.live.connected:
            self.action_reload()

    # --- loading ---------------------------------------------------------------------

    async def refresh_data(self) -> None:
        changes = self.changes
        listing = await self.app.api(lambda c: c.list_sandboxes(limit=LIST_LIMIT), action="list sandboxes")
        if listing is None or changes != self.changes:
            return  # failed (the notification says why), or older than the table: next poll
        self.loads += 1
        self.total = listing["total"]
        self.sandboxes = {s["sandbox_id"]: dict(s) for s in listing["sandboxes"]}
        self.limits = {k: v for k, v in self.limits.items() if k in self.sandboxes}
        self._redraw()
        await self._load_missing_limits()
        await self._load_selected()

    async def _load_missing_limits(self) -> None:
        """The list has no limits: each row's come from its GET once (they change only by
        a PUT; the selected row's are re-read on every load)."""
        missing = [s for s in self.sandboxes if s not in self.limits][:LIMITS_PER_LOAD]
        for sandbox_id in missing:
            try:
                detail = await self.app.backend.call(partial(ApplianceClient.get_sandbox, sandbox_id=sandbox_id))
            except ApiError:
                continue  # gone meanwhile, or not ours to see: the next load tells
            self._remember(detail)
        if missing:
            self._redraw()

    async def _load_selected(self) -> None:
        sandbox_id = self.selected_id()
        if sandbox_id is None:
            self.detail, self.snapshots = None, None
            self._show_detail()
            return
        if sandbox_id == self.deleting:
            return
        detail = await self.app.api(lambda c: c.get_sandbox(sandbox_id), action=f"show sandbox {sandbox_id}")
        snapshots = await self.app.api(lambda c: c.list_snapshots(sandbox_id), action=f"list snapshots of {sandbox_id}")
        if detail is None or sandbox_id not in self.sandboxes:
            return
        self.detail, self.snapshots = dict(detail), snapshots
        self._remember(detail)
        self._redraw()

    def _remember(self, detail: dict[str, Any]) -> None:
        """A GET or a create is the latest word on a sandbox: its row follows it."""
        sandbox_id = detail["sandbox_id"]
        self.limits[sandbox_id] = dict(detail.get("resources") or {})
        if sandbox_id in self.sandboxes:
            for key in ("name", "status", "status_reason", "runtime", "engine", "template", "created_at"):
                if key in detail:
                    self.sandboxes[sandbox_id][key] = detail[key]

    # --- drawing ---------------------------------------------------------------------

    def _redraw(self, select: str | None = None) -> None:
        table = self.query_one("#sandboxes", DataTable)
        selected = select or self.selected_id()
        table.clear()
        for sandbox_id, sandbox in self.sandboxes.items():
            table.add_row(*sandbox_row(sandbox, self.limits.get(sandbox_id)), key=sandbox_id)
        if selected in self.sandboxes:
            table.move_cursor(row=table.get_row_index(selected))
        self._show_summary()
        self._show_detail()

    def _show_summary(self) -> None:
        shown = len(self.sandboxes)
        more = f" (first {shown} of {self.total})" if self.total > shown else ""
        self.query_one("#sandbox-summary", Static).update(
            f"{self.total} sandbox{'es' if self.total != 1 else ''}{more} · refreshed every {POLL_SECONDS:g} s"
        )

    def _show_detail(self) -> None:
        sandbox_id = self.selected_id()
        panel = self.query_one(SandboxDetail)
        if sandbox_id is None:
            panel.show(None)
        elif self.detail is not None and self.detail.get("sandbox_id") == sandbox_id:
            panel.show({**self.detail, **self.sandboxes[sandbox_id]}, self.snapshots)
        else:  # until its GET answers: what the list and the cache know
            panel.show({**self.sandboxes[sandbox_id], "resources": self.limits.get(sandbox_id)}, None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        if self.selected_id() and (self.detail or {}).get("sandbox_id") != self.selected_id():
            self.run_exclusive(self._load_selected, group="detail")

    def selected_id(self) -> str | None:
        table = self.query_one("#sandboxes", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    # --- actions ---------------------------------------------------------------------

    @work(group="sandbox-action")
    async def action_create(self) -> None:
        templates = await self.app.api(lambda c: c.list_templates(), action="list templates")
        if templates is None:
            return
        if not templates:
            self.notify("The appliance offers no templates: build the runtime images first", severity="warning")
            return
        choice = await self.app.push_screen_wait(CreateSandboxDialog([dict(t) for t in templates]))
        if choice is None:
            return
        created = await self.app.api(
            lambda c: c.create_sandbox(template=choice["template"], name=choice["name"]), action="create sandbox"
        )
        if created is None:
            return
        sandbox_id = created["sandbox_id"]
        self.changes += 1
        self.sandboxes[sandbox_id] = dict(created)
        self.total += 1
        self._remember(created)
        self.detail = None
        self._redraw(select=sandbox_id)
        self.notify(f"Sandbox {sandbox_id} ({created.get('name')}) is being created", timeout=4)
        self.set_timer(SETTLE_SECONDS, lambda: self.run_exclusive(self._load_selected, group="detail"))

    @work(group="sandbox-action")
    async def action_delete(self) -> None:
        sandbox_id = self.selected_id()
        if sandbox_id is None:
            self.notify("No sandbox selected", severity="warning")
            return
        sandbox = self.sandboxes[sandbox_id]
        running = sandbox.get("status") in ("running", "creating")
        question = f"Delete {sandbox_id} ({sandbox.get('name')}), its files and its snapshots?" + (
            " Its container is stopped; programs in it end." if running else ""
        )
        self.deleting = sandbox_id  # the reload as the dialog closes must not GET it meanwhile
        try:
            if not await self.app.push_screen_wait(ConfirmDialog("Delete sandbox", question, confirm_label="Delete")):
                return
            # The confirmation is the consent a running sandbox needs (the API's force=true).
            deleted = await self.app.api(
                lambda c: c.delete_sandbox(sandbox_id, force=True), action=f"delete sandbox {sandbox_id}"
            )
        finally:
            self.deleting = None
        if deleted is None:
            return
        self.changes += 1
        self.sandboxes.pop(sandbox_id, None)
        self.limits.pop(sandbox_id, None)
        self.total = max(0, self.total - 1)
        self._redraw()
        self.notify(f"Sandbox {sandbox_id} deleted", timeout=4)

    @work(group="sandbox-action")
    async def action_restart(self) -> None:
        """A stopped or failed sandbox's container is made again by a PUT with no change
        (the API has no start/stop; see docs/sandbox-api.md)."""
        sandbox_id = self.selected_id()
        if sandbox_id is None:
            self.notify("No sandbox selected", severity="warning")
            return
        status = self.sandboxes[sandbox_id].get("status")
        if status not in RESTARTABLE:
            self.notify(
                f"{sandbox_id} is {status}: only a stopped or failed sandbox is started again", severity="warning"
            )
            return
        detail = await self.app.api(lambda c: c.update_sandbox(sandbox_id), action=f"start {sandbox_id} again")
        if detail is not None:
            self._remember(detail)
            self._redraw()
            self.notify(f"Sandbox {sandbox_id} is being started again", timeout=4)

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield ("Sandboxes: new sandbox", "Create one from a template (key n; needs sandbox_write)", self.action_create)
        yield (
            "Sandboxes: delete the selected sandbox",
            "With its files and snapshots, after a confirmation (key x; needs sandbox_write)",
            self.action_delete,
        )
        yield (
            "Sandboxes: start the selected sandbox again",
            "Recreate the container of a stopped or failed sandbox (key p; needs sandbox_write)",
            self.action_restart,
        )
        yield ("Sandboxes: refresh", "Reload the sandboxes now (key ctrl+r)", self.action_reload)
