"""The table of evaluations, newest first, updated row by row as events arrive."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets.data_table import RowDoesNotExist

from appliance.tui.evaluation_text import code_line, status_text, utc_time
from appliance.tui.widgets.fitted_table import FittedDataTable

COLUMNS = (("id", "ID"), ("status", "Status"), ("language", "Lang"), ("created", "Created UTC"), ("code", "Code"))
CODE_CELL_CHARS = 60
Row = tuple[str | Text, ...]  # a row's cells, in the order of COLUMNS


class EvaluationTable(FittedDataTable[str | Text]):
    """One row per evaluation, keyed by eval_id. `show` brings the rows in line with a
    list of summaries (GET /api/evaluations items, kept current from the feed) while
    keeping the cursor on the evaluation it was on."""

    DEFAULT_CSS = """
    EvaluationTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._created: dict[str, str] = {}  # eval_id -> created_at, the sort order
        self._shown: dict[str, Row] = {}  # eval_id -> the cells last drawn

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return row_key.value

    def select(self, eval_id: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.move_cursor(row=self.get_row_index(eval_id), animate=False)

    def show(self, records: Iterable[Mapping[str, Any]]) -> None:
        selected = self.selected_id
        wanted = {r["eval_id"]: r for r in records}
        for eval_id in [e for e in self._shown if e not in wanted]:
            self.remove_row(eval_id)
            del self._shown[eval_id]
            self._created.pop(eval_id, None)
        added = False
        for eval_id, record in wanted.items():
            cells = _cells(record)
            before = self._shown.get(eval_id)
            if before is None:
                self._created[eval_id] = record.get("created_at") or ""
                self.add_row(*cells, key=eval_id)
                added = True
            elif before != cells:
                for (column, _), old, new in zip(COLUMNS, before, cells, strict=True):
                    if old != new:
                        self.update_cell(eval_id, column, new)
            self._shown[eval_id] = cells
        if added:
            self.sort("id", key=lambda eval_id: (self._created.get(eval_id, ""), eval_id), reverse=True)
            if selected in self._shown:
                self.select(selected)
            else:
                self.move_cursor(row=0, animate=False)


def _cells(record: Mapping[str, Any]) -> Row:
    preview = code_line(record.get("code_preview") or "")
    if len(preview) > CODE_CELL_CHARS:
        preview = preview[: CODE_CELL_CHARS - 1] + "…"
    return (
        record["eval_id"],
        status_text(record.get("status", ""), record.get("success")),
        record.get("language") or "",
        utc_time(record.get("created_at")),
        preview,
    )
