"""The banner that says the daemon is out of reach and when the next attempt is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

if TYPE_CHECKING:
    from textual import getters

    from appliance.tui.app import ApplianceTui


class ConnectionBanner(Static):
    """Hidden while connected; a warning line while the feed reconnects."""

    if TYPE_CHECKING:  # for the type checker only, as in ApplianceScreen
        app = getters.app(ApplianceTui)

    DEFAULT_CSS = """
    ConnectionBanner {
        display: none;
        height: 1;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
    }
    ConnectionBanner.-lost { display: block; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "connection_text", self._show, init=True)

    def _show(self, text: str) -> None:
        lost = not self.app.live.connected and text != "connecting…"
        self.set_class(lost, "-lost")
        self.update(f"⚠ {text}" if lost else "")
