"""One line naming the filters of the evaluations table and how many rows they let through."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

ALL = "all"


class EvaluationFilterBar(Static):
    """`status all (f) · lang python (l) · 12 of 543`: the keys that change each filter are
    on the line itself, so the footer need not be read to find them."""

    DEFAULT_CSS = """
    EvaluationFilterBar { width: 1fr; height: 1; padding: 0 1; text-align: right; }
    """

    def show(self, status: str | None, language: str | None, shown: int, total: int | None) -> None:
        line = Text()
        for label, value, key in (("status", status, "f"), ("lang", language, "l")):
            line.append(f"{label} ")
            line.append(value or ALL, style="bold" if value else "dim")
            line.append(f" ({key}) · ", style="dim")
        line.append(f"{shown} of {'?' if total is None else total}")
        self.update(line)
