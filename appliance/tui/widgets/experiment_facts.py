"""The selected experiment in a few lines: status, progress and ETA, the runs by status,
the best result so far, and the actions its status allows."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from appliance.tui.widgets.experiment_table import status_text
from appliance.tui.widgets.progress_bar import progress_text

# The key of each action on the experiments screen.
ACTION_KEYS = {"start": "g", "pause": "p", "resume": "r", "cancel": "c", "clone": "o"}


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def facts_text(detail: dict[str, Any] | None) -> Text:
    if detail is None:
        return Text("No experiment selected.", style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{detail['id']}  ", "bold")
    text.append(f"{detail.get('name', '')}  ")
    text.append_text(status_text(str(detail.get("status", "?"))))
    text.append("  ")
    text.append_text(progress_text(detail.get("progress"), width=16))
    text.append(f"  ETA {eta_text(detail.get('eta_seconds'))}\n")
    summary = detail.get("results_summary") or {}
    counts = ("completed", "failed", "running", "pending", "cancelled")
    text.append(f"runs {summary.get('total_runs', 0)}: ")
    text.append(", ".join(f"{summary.get(f'{c}_runs', 0)} {c}" for c in counts))
    objective = summary.get("objective")
    if objective and summary.get("best_value") is not None:
        text.append(f"  best {objective['metric']} {summary['best_value']:.4g} ({summary.get('best_run_id')})")
    text.append("\n")
    allowed = [a for a in detail.get("allowed_actions") or [] if a in ACTION_KEYS]
    text.append("actions: ", "dim")
    text.append("  ".join(f"{ACTION_KEYS[a]} {a}" for a in allowed) or "none", "dim")
    return text


class ExperimentFacts(Static):
    DEFAULT_CSS = """
    ExperimentFacts { height: 3; width: 1fr; padding: 0 1; }
    """

    def show(self, detail: dict[str, Any] | None) -> None:
        self.update(facts_text(detail))
