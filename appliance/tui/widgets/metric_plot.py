"""One metric of a run over its steps, as a text plot: the metric's name, its range and
last value, and a bar per step scaled between the smallest and the largest value."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

BLOCKS = " ▁▂▃▄▅▆▇█"


def plot_line(values: list[float], width: int) -> str:
    """The last `width` values, each as a block of its height in [min, max]."""
    shown = values[-width:] if width > 0 else []
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[top if span == 0 else 1 + round((v - low) / span * (top - 1))] for v in shown)


class MetricPlot(Static):
    DEFAULT_CSS = """
    MetricPlot { height: 3; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    metric: reactive[str | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: dict[str, list[dict[str, Any]]] = {}

    def show(self, history: dict[str, list[dict[str, Any]]]) -> None:
        """`GET /api/v1/runs/:id/metrics`'s data; keeps the metric shown if it is there."""
        self.history = history
        if self.metric not in history:
            self.metric = next(iter(sorted(history)), None)
        self.refresh()

    def next_metric(self) -> None:
        names = sorted(self.history)
        if names:
            at = names.index(self.metric) if self.metric in names else -1
            self.metric = names[(at + 1) % len(names)]

    def watch_metric(self) -> None:
        self.refresh()

    def render(self) -> Text:
        if not self.metric:
            return Text("No metrics reported yet.", style="dim")
        points = self.history.get(self.metric, [])
        values = [float(p["value"]) for p in points]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.metric}  ", "bold")
        if values:
            text.append(f"last {values[-1]:.4g}")
            if len(self.history) > 1:
                text.append(f"  (1 of {len(self.history)}; . next)", "dim")
            steps = f"steps {points[0]['step']}–{points[-1]['step']}"
            text.append(f"\n{steps}  min {min(values):.4g}  max {max(values):.4g}", "dim")
        text.append("\n")
        text.append(plot_line(values, max(self.content_size.width, 1)), "cyan")
        return text
