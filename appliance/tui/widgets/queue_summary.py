"""One line saying how deep the evaluation queue is and how many run now."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class QueueSummary(Static):
    """`Queue 3 · running 2`; figures come from /ws/monitor (queue_depth,
    running_executions) or GET /api/queue-status, whichever is newer."""

    DEFAULT_CSS = """
    QueueSummary { width: auto; height: 1; padding: 0 1; }
    """

    def show(self, queued: float | None, running: float | None) -> None:
        line = Text()
        line.append("Queue ", style="bold")
        line.append(_count(queued), style="bold yellow" if queued else "")
        line.append(" · running ")
        line.append(_count(running), style="bold cyan" if running else "")
        self.update(line)


def _count(value: float | None) -> str:
    return "—" if value is None else str(int(value))
