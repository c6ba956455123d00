"""Alerts: the appliance's alerts with status and severity filters, live from the feed,
the selected one in full below, and acknowledge / resolve with a comment (admin)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import msgspec
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from appliance.client import ApplianceClient
from appliance.core.events import AlertEvent
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.alert_detail import AlertDetail
from appliance.tui.widgets.comment_dialog import CommentDialog
from appliance.tui.widgets.fitted_table import FittedDataTable

# What the filter can show, and which `status` values of GET /api/alerts make it up
# (None: the API's default, the open ones). The API has no "all": it is two requests.
STATUS_FILTERS: dict[str, tuple[str | None, ...]] = {
    "open": (None,),
    "active": ("active",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "all": (None, "resolved"),
}
STATUS_FILTER_HELP = {
    "open": "active and acknowledged",
    "active": "not yet acknowledged",
    "acknowledged": "someone is on it",
    "resolved": "the history",
    "all": "open and resolved",
}
SEVERITIES = ("info", "warning", "critical", "emergency")
# An alert's status only moves forward, so of two copies the further one is the newer.
STATUS_ORDER = {"active": 0, "acknowledged": 1, "resolved": 2}
LIST_LIMIT = 200
MESSAGE_WIDTH = 48
# Fixed colours for table cells (rich styles); the detail panel uses theme colours.
SEVERITY_CELL = {"info": "cyan", "warning": "yellow", "critical": "bold red", "emergency": "bold reverse red"}
STATUS_CELL = {"active": "bold red", "acknowledged": "yellow", "resolved": "green"}
COLUMNS = (
    ("status", "Status"),
    ("severity", "Severity"),
    ("rule", "Rule"),
    ("opened", "Opened (UTC)"),
    ("message", "Message"),
    ("acked_by", "Acked by"),
    ("resolved_by", "Resolved by"),
)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _status_rank(alert: dict[str, Any]) -> int:
    return STATUS_ORDER.get(alert.get("status", ""), 0)


def alert_row(alert: dict[str, Any]) -> tuple[str | Text, ...]:
    status, severity = alert.get("status", "?"), alert.get("severity", "?")
    return (
        Text(status, style=STATUS_CELL.get(status, "")),
        Text(severity, style=SEVERITY_CELL.get(severity, "")),
        alert.get("rule", ""),
        utc_text(alert.get("triggered_at")),
        _short(alert.get("message", ""), MESSAGE_WIDTH),
        alert.get("acknowledged_by") or "",
        alert.get("resolved_by") or "",
    )


class AlertsScreen(ApplianceScreen[None]):
    TITLE = "Alerts"
    BINDINGS = [
        Binding("c", "acknowledge", "Acknowledge"),
        Binding("r", "resolve", "Resolve"),
        Binding("f", "next_status_filter", "Status"),
        Binding("v", "next_severity_filter", "Severity"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter = "open"
        self.severity_filter: str | None = None
        self.alerts: dict[str, dict[str, Any]] = {}  # the rows: what the filters show
        self.latest: dict[str, dict[str, Any]] = {}  # the newest copy of every alert seen
        # How many times the list came from the API: the tests use it to show that
        # rows arriving later came from the feed, not from a reload.
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static(id="alert-filter")
        table: FittedDataTable[str | Text] = FittedDataTable(id="alerts", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield AlertDetail()

    def on_mount(self) -> None:
        # ApplianceScreen.on_mount (Textual calls every class's handler) loads the data.
        self._show_filter()

    # --- loading and live changes ----------------------------------------------------

    async def refresh_data(self) -> None:
        statuses, severity = STATUS_FILTERS[self.status_filter], self.severity_filter

        def load(client: ApplianceClient) -> list[dict[str, Any]]:
            found: dict[str, Any] = {}
            for status in statuses:
                for alert in client.list_alerts(status=status, severity=severity, limit=LIST_LIMIT):
                    found[alert["alert_id"]] = alert
            return list(found.values())

        alerts = await self.app.api(load, action="list alerts")
        if alerts is None:
            return
        self.loads += 1
        # A feed item or an action's answer may have come in while the list was on its
        # way: the newer copy of each alert wins.
        newest = (self._newest(a) for a in alerts)
        self.alerts = {a["alert_id"]: a for a in newest if self._shown(a)}
        self._redraw()

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, AlertEvent):
            self._upsert(msgspec.structs.asdict(item))  # the alert as GET /api/alerts lists it

    def _shown(self, alert: dict[str, Any]) -> bool:
        statuses = STATUS_FILTERS[self.status_filter]
        status_ok = alert.get("status") in statuses or (
            None in statuses and alert.get("status") in ("active", "acknowledged")
        )
        return status_ok and self.severity_filter in (None, alert.get("severity"))

    def _newest(self, alert: dict[str, Any]) -> dict[str, Any]:
        known = self.latest.get(alert["alert_id"])
        if known is not None and _status_rank(known) > _status_rank(alert):
            return known
        self.latest[alert["alert_id"]] = dict(alert)
        return self.latest[alert["alert_id"]]

    def _upsert(self, alert: dict[str, Any]) -> None:
        """A changed alert: in the table if the filters show it, out of it otherwise."""
        alert = self._newest(alert)
        alert_id = alert["alert_id"]
        if self._shown(alert):
            self.alerts[alert_id] = alert
        elif self.alerts.pop(alert_id, None) is None:
            return
        self._redraw()

    def _redraw(self) -> None:
        table = self.query_one("#alerts", DataTable)
        selected = self.selected_id()
        ordered = sorted(self.alerts.values(), key=lambda a: a.get("triggered_at") or "", reverse=True)
        table.clear()
        for alert in ordered:
            table.add_row(*alert_row(alert), key=alert["alert_id"])
        if selected in self.alerts:
            table.move_cursor(row=table.get_row_index(selected))
        self._show_filter()
        self._show_detail()

    def _show_filter(self) -> None:
        severity = self.severity_filter or "any"
        count = len(self.alerts)
        self.query_one("#alert-filter", Static).update(
            f"{count} alert{'s' if count != 1 else ''} · status {self.status_filter} "
            f"({STATUS_FILTER_HELP[self.status_filter]}) · severity {severity}"
        )

    def _show_detail(self) -> None:
        self.query_one(AlertDetail).show(self.selected())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def selected_id(self) -> str | None:
        table = self.query_one("#alerts", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def selected(self) -> dict[str, Any] | None:
        alert_id = self.selected_id()
        return self.alerts.get(alert_id) if alert_id else None

    # --- actions ---------------------------------------------------------------------

    def action_acknowledge(self) -> None:
        self._change("acknowledge")

    def action_resolve(self) -> None:
        self._change("resolve")

    @work(group="alert-action")
    async def _change(self, verb: str) -> None:
        """Ask for a comment, then acknowledge or resolve; the server decides whether the
        alert may change (a 409 says who changed it first, a 403 that admin is needed)."""
        alert = self.selected()
        if alert is None:
            self.notify("No alert selected", severity="warning")
            return
        alert_id = alert["alert_id"]
        comment = await self.app.push_screen_wait(
            CommentDialog(
                f"{verb.capitalize()} {alert_id}",
                f"{alert.get('rule_name', '')}: {alert.get('message', '')}",
                ok_label=verb.capitalize(),
            )
        )
        if comment is None:
            return
        if verb == "acknowledge":
            changed = await self.app.api(
                lambda c: c.acknowledge_alert(alert_id, comment or None), action=f"acknowledge {alert_id}"
            )
        else:
            changed = await self.app.api(
                lambda c: c.resolve_alert(alert_id, comment or None), action=f"resolve {alert_id}"
            )
        if changed is not None:
            self._upsert(changed)
            self.notify(f"{alert_id} {changed['status']}", timeout=4)

    def set_status_filter(self, name: str) -> None:
        self.status_filter = name
        self._reload_filtered()

    def set_severity_filter(self, severity: str | None) -> None:
        self.severity_filter = severity
        self._reload_filtered()

    def action_next_status_filter(self) -> None:
        names = list(STATUS_FILTERS)
        self.set_status_filter(names[(names.index(self.status_filter) + 1) % len(names)])

    def action_next_severity_filter(self) -> None:
        choices = (None, *SEVERITIES)
        self.set_severity_filter(choices[(choices.index(self.severity_filter) + 1) % len(choices)])

    def _reload_filtered(self) -> None:
        self.alerts = {a_id: a for a_id, a in self.alerts.items() if self._shown(a)}
        self._redraw()
        self.action_reload()

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield (
            "Alerts: acknowledge the selected alert",
            "Someone is on it; asks for an optional comment (key c; needs admin)",
            self.action_acknowledge,
        )
        yield (
            "Alerts: resolve the selected alert",
            "Close it; asks for an optional comment (key r; needs admin)",
            self.action_resolve,
        )
        for name, about in STATUS_FILTER_HELP.items():
            yield (
                f"Alerts: show {name} alerts",
                f"Status filter: {about} (key f cycles)",
                partial(self.set_status_filter, name),
            )
        for severity in (None, *SEVERITIES):
            yield (
                f"Alerts: severity {severity or 'any'}",
                "Severity filter (key v cycles)",
                partial(self.set_severity_filter, severity),
            )
        yield ("Alerts: refresh", "Reload the alerts from the appliance (key ctrl+r)", self.action_reload)
