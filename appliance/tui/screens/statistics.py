"""Statistics: the stored statistical results, all or one experiment's, the selected one
in full below, and a report written to a file (the same file `appliance report` and
appliance.client write: the appliance makes it, the TUI saves it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from appliance.client import ApplianceClient, ExportedFile
from appliance.tui.screens.base import ApplianceScreen, PaletteCommand
from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.comment_dialog import CommentDialog
from appliance.tui.widgets.fitted_table import FittedDataTable
from appliance.tui.widgets.report_dialog import ReportDialog, ReportOrder
from appliance.tui.widgets.statistical_result_detail import StatisticalResultDetail, figure

PAGE = 100  # the newest results shown; the rest stay in the API's list
SIGNIFICANCE_CELL = {"significant": "bold green", "not_significant": "yellow"}
# What decides first (which test, which groups, the verdict, p), so a narrow terminal
# shows it; the table scrolls sideways to the rest.
COLUMNS = (
    ("test", "Test"),
    ("groups", "Groups"),
    ("significance", "Result"),
    ("p", "p"),
    ("effect", "Effect size"),
    ("metric", "Metric"),
    ("experiment", "Experiment"),
    ("created", "Created (UTC)"),
)


def result_row(result: dict[str, Any]) -> tuple[str | Text, ...]:
    interpretation = result.get("interpretation") or {}
    significance = interpretation.get("significance", "")
    return (
        result.get("test_type", ""),
        " vs ".join(result.get("groups", [])),
        Text(significance.replace("_", " "), style=SIGNIFICANCE_CELL.get(significance, "")),
        figure(result.get("p_value")),
        f"{result.get('effect_size_type', '')} {figure(result.get('effect_size'))}",
        result.get("metric") or "",
        result.get("experiment_id") or "inline",
        utc_text(result.get("created_at")),
    )


class StatisticsScreen(ApplianceScreen[None]):
    TITLE = "Statistics"
    BINDINGS = [
        Binding("f", "choose_experiment", "Experiment"),
        Binding("w", "write_report", "Write report"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self, report_directory: Path | None = None) -> None:
        super().__init__()
        self.experiment_id: str | None = None  # None: every result the key may see
        self.results: dict[str, dict[str, Any]] = {}
        self.total = 0
        self.loads = 0  # how many times the list came from the API (for the tests)
        self.report_directory = report_directory
        self.written: list[Path] = []  # the reports this screen wrote

    def compose_body(self) -> ComposeResult:
        yield Static(id="statistics-filter")
        table: FittedDataTable[str | Text] = FittedDataTable(id="statistics", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield StatisticalResultDetail()

    async def refresh_data(self) -> None:
        experiment_id = self.experiment_id

        def load(client: ApplianceClient) -> Any:
            return client.list_statistical_results(experiment_id, sort="-created_at", per_page=PAGE)

        found = await self.app.api(load, action="list statistical results")
        if found is None:
            return
        self.loads += 1
        self.results = {r["id"]: r for r in found["data"]}
        self.total = found["meta"]["total"]
        self._redraw()

    def _redraw(self) -> None:
        table = self.query_one("#statistics", DataTable)
        selected = self.selected_id()
        table.clear()
        for result in self.results.values():
            table.add_row(*result_row(result), key=result["id"])
        if selected in self.results:
            table.move_cursor(row=table.get_row_index(selected))
        shown = f"experiment {self.experiment_id}" if self.experiment_id else "all experiments and inline data"
        more = f" (the newest {len(self.results)})" if self.total > len(self.results) else ""
        self.query_one("#statistics-filter", Static).update(
            f"{self.total} result{'s' if self.total != 1 else ''}{more} · {shown} · f: experiment · w: write a report"
        )
        self._show_detail()

    def _show_detail(self) -> None:
        self.query_one(StatisticalResultDetail).show(self.selected())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def selected_id(self) -> str | None:
        table = self.query_one("#statistics", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def selected(self) -> dict[str, Any] | None:
        stat_id = self.selected_id()
        return self.results.get(stat_id) if stat_id else None

    # --- actions ---------------------------------------------------------------------

    def show_experiment(self, experiment_id: str | None) -> None:
        self.experiment_id = experiment_id or None
        self.results = {}
        self.total = 0
        self._redraw()
        self.action_reload()

    @work(group="statistics-filter")
    async def action_choose_experiment(self) -> None:
        chosen = await self.app.push_screen_wait(
            CommentDialog("Show an experiment's results", "Its id; leave empty for every result.", ok_label="Show")
        )
        if chosen is not None:
            self.show_experiment(chosen.strip())

    def _report_ids(self) -> list[str]:
        if self.experiment_id:
            return [self.experiment_id]
        selected = self.selected()
        return [selected["experiment_id"]] if selected and selected.get("experiment_id") else []

    @work(group="statistics-report")
    async def action_write_report(self) -> None:
        order = await self.app.push_screen_wait(ReportDialog(self._report_ids(), self.report_directory))
        if order is not None:
            await self.write_report(order)

    async def write_report(self, order: ReportOrder) -> Path | None:
        """Have the appliance make the report, then save it where the order says."""

        def make(client: ApplianceClient) -> ExportedFile:
            if order.kind == "comparison":
                return client.export_comparison(order.experiment_ids, order.format)
            return client.export_experiment(order.experiment_ids[0], order.format)

        made = await self.app.api(make, action=f"write the {order.kind} report")
        if made is None:
            return None
        try:
            path = made.save(order.path)
        except OSError as exc:
            self.notify(f"cannot write {order.path}: {exc.strerror or exc}", severity="error", timeout=8)
            return None
        self.written.append(path)
        self.notify(f"wrote {path} ({len(made.content)} bytes)", timeout=6)
        return path

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield (
            "Statistics: show one experiment's results",
            "Asks for an experiment id; empty shows every result (key f)",
            self.action_choose_experiment,
        )
        yield (
            "Statistics: write a report to a file",
            "A comparison report (html, latex, markdown, csv, json) or an experiment's export (key w)",
            self.action_write_report,
        )
        yield ("Statistics: refresh", "Reload the results from the appliance (key ctrl+r)", self.action_reload)
