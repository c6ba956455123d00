"""A DataTable that redraws its rows once their columns are fitted to them.

Textual measures column widths for new rows when the table is next idle, but keeps the
lines it drew before then, cut to the column labels' widths ("ev", "runnin"): a table
filled by a worker could stay clipped until its data next changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Cell = TypeVar("Cell")  # what the table's cells hold: str, rich Text, ...


class FittedDataTable(DataTable[Cell]):
    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        self._clear_caches()  # the lines drawn with the old widths
        self.refresh()
