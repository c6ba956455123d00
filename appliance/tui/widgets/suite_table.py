"""The test suites, each at its latest version, beside the score of its latest run.

Suite          Version  Cases  Last run             Score  Pass rate
example-tests  1.0          5  2025-01-15 09:30:02  0.600  3/5 (60%)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.fitted_table import FittedDataTable

COLUMNS = ("Suite", "Version", "Cases", "Last run (UTC)", "Score", "Passed")
RUN_STATUS_STYLE = {"running": "cyan", "failed": "bold red", "cancelled": "yellow"}


def latest_runs(runs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """suite name -> its newest run, from runs listed newest first."""
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.get("kind") == "suite" and run.get("suite"):
            latest.setdefault(run["suite"], run)
    return latest


def run_cells(run: dict[str, Any] | None) -> tuple[str | Text, ...]:
    if run is None:
        return ("never", "—", "—")
    when = utc_text(run.get("finished_at") or run.get("created_at"))
    result = run.get("suite_result")
    status = run.get("status", "")
    if status != "completed" or result is None:
        progress = run.get("progress") or {}
        done, total = progress.get("done", 0), progress.get("total", 0)
        said = f"{status} {done}/{total}" if status == "running" else status
        return (when, Text(said, style=RUN_STATUS_STYLE.get(status, "")), "—")
    cases = result.get("total_cases", 0)
    passed = result.get("passed_cases", 0)
    share = f" ({100 * passed / cases:.0f}%)" if cases else ""
    return (when, f"{result.get('avg_score', 0):.3f}", f"{passed}/{cases}{share}")


class SuiteTable(FittedDataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for label in COLUMNS:
            self.add_column(label, key=label)

    def show(self, suites: Iterable[dict[str, Any]], runs: Iterable[dict[str, Any]]) -> None:
        latest = latest_runs(runs)
        self.clear()
        for suite in suites:
            name = suite["name"]
            self.add_row(
                name,
                suite.get("version", ""),
                Text(str(suite.get("case_count", 0)), justify="right"),
                *run_cells(latest.get(name)),
                key=name,
            )
