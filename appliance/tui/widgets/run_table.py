"""An experiment's runs: status, progress bar, attempt and latest metrics."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from appliance.tui.widgets.experiment_table import status_text
from appliance.tui.widgets.fitted_table import FittedDataTable
from appliance.tui.widgets.progress_bar import progress_text

COLUMNS = (
    ("id", "Run"),
    ("status", "Status"),
    ("progress", "Progress"),
    ("attempt", "Try"),
    ("hyperparameters", "Hyperparameters"),
    ("metrics", "Metrics"),
)


def compact(values: dict[str, Any], limit: int = 40) -> str:
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunTable(FittedDataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, runs: list[dict[str, Any]]) -> None:
        selected = self.selected_id()
        self.clear()
        for run in runs:
            self.add_row(
                run["id"],
                status_text(run.get("status", "?")),
                progress_text(run.get("progress"), width=6),
                str(run.get("attempt", 1)),
                compact(run.get("hyperparameters") or {}),
                compact(run.get("metrics") or {}),
                key=run["id"],
            )
        ids = [run["id"] for run in runs]
        if selected in ids:
            self.move_cursor(row=ids.index(selected))

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return str(key) if key is not None else None
