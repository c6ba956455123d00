"""Benchmark results, newest first; a running one with how far it got.

    Dataset               Model            Accuracy  Correct  Status       Time    Provider
    demo_multiple_choice  claude-scripted     87.5%    14/16  completed    10.5 s  claude
    demo_multiple_choice  limited                 —        —  running 38%       —  openai-compatible

What tells results apart comes first: a narrow terminal scrolls sideways to the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text

from appliance.tui.widgets.fitted_table import FittedDataTable

COLUMNS = ("Dataset", "Model", "Accuracy", "Correct", "Status", "Time", "Provider")
STATUS_STYLE = {"completed": "green", "running": "cyan", "failed": "bold red"}


def duration_text(milliseconds: float | None) -> str:
    if not milliseconds:
        return "—"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f}%"


def result_cells(result: dict[str, Any], progress: float | None) -> tuple[str | Text, ...]:
    status = result.get("status", "")
    running = status == "running"
    label = status
    if running and progress is not None:
        label = f"running {100 * progress:.0f}%"
    elif result.get("errors"):
        label = f"{status}, {result['errors']} errors"
    return (
        result.get("dataset", ""),
        result.get("model", ""),
        Text("—" if running else percent(result.get("accuracy")), justify="right"),
        Text("—" if running else f"{result.get('correct', 0)}/{result.get('total', 0)}", justify="right"),
        Text(label, style=STATUS_STYLE.get(status, "")),
        Text(duration_text(None if running else result.get("total_time_ms")), justify="right"),
        result.get("provider", ""),
    )


class BenchmarkTable(FittedDataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for label in COLUMNS:
            self.add_column(label, key=label)

    def show(self, results: Iterable[dict[str, Any]], progress: Mapping[int, float]) -> None:
        """`progress`: result id -> share of items answered, for the running ones known."""
        self.clear()
        for result in results:
            self.add_row(*result_cells(result, progress.get(result["id"])), key=str(result["id"]))
