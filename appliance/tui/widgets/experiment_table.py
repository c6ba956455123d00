"""The experiments list: one row each, with its status and a progress bar."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.fitted_table import FittedDataTable
from appliance.tui.widgets.progress_bar import progress_text

STATUS_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "paused": "cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
}
COLUMNS = (
    ("id", "ID"),
    ("name", "Name"),
    ("type", "Type"),
    ("status", "Status"),
    ("progress", "Progress"),
    ("updated", "Updated (UTC)"),
)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class ExperimentTable(FittedDataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, experiments: list[dict[str, Any]], progress: dict[str, float | None]) -> None:
        """Replace the rows, keeping the cursor on the experiment it was on."""
        selected = self.selected_id()
        self.clear()
        for e in experiments:
            self.add_row(*self.row(e, progress.get(e["id"])), key=e["id"])
        if selected is not None and selected in {e["id"] for e in experiments}:
            self.move_cursor(row=self.get_row_index(selected))

    @staticmethod
    def row(e: dict[str, Any], progress: float | None) -> tuple[str | Text, ...]:
        status = e.get("status", "?")
        if progress is None and status in ("completed", "failed", "cancelled"):
            progress = 1.0 if status == "completed" else None
        if progress is None and status == "pending":
            progress = 0.0
        return (
            e["id"],
            e.get("name", ""),
            str((e.get("config") or {}).get("type", "")),
            status_text(status),
            progress_text(progress),
            utc_text(e.get("updated_at")),
        )

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return str(key) if key is not None else None
