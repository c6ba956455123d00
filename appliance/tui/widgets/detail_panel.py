"""The scrolling panel under a table that shows the selected row in full."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static


class DetailPanel(VerticalScroll):
    """Subclasses name what they show in NOTHING_SELECTED and call `show_content`."""

    NOTHING_SELECTED = "Nothing selected."
    DEFAULT_CSS = """
    DetailPanel {
        height: 40%; min-height: 6;
        border-top: solid $primary; padding: 0 1;
    }
    DetailPanel > Static { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(self.NOTHING_SELECTED, classes="detail-panel--body")

    def show_content(self, content: Content | None) -> None:
        """The selected row's content, or None when no row is selected."""
        self.query_one(".detail-panel--body", Static).update(content or self.NOTHING_SELECTED)
