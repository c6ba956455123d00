"""A run's log lines, the latest at the bottom, followed as they come."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import RichLog

LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


def log_line(line: dict[str, Any]) -> Text:
    level = str(line.get("level", "info"))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(str(line.get("timestamp", ""))[11:19] + " ", "dim")
    text.append(f"{level:<7} ", LEVEL_STYLE.get(level, ""))
    text.append(str(line.get("message", "")))
    return text


class RunLog(RichLog):
    DEFAULT_CSS = """
    RunLog { height: 1fr; min-height: 3; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=False, auto_scroll=True, markup=False)
        self.run_id: str | None = None
        self.shown: set[tuple[str, str]] = set()  # (timestamp, message) of the lines written

    def show(self, run_id: str | None, lines: list[dict[str, Any]]) -> None:
        """The run's latest lines: only those not written yet are added, so the view
        follows the run; another run starts over."""
        if run_id != self.run_id:
            self.clear()
            self.run_id, self.shown = run_id, set()
        for line in lines:
            key = (str(line.get("timestamp", "")), str(line.get("message", "")))
            if key not in self.shown:
                self.shown.add(key)
                self.write(log_line(line))
