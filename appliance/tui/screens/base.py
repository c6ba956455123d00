"""What every top-level screen shares: header, connection banner, footer, live updates
and its entries in the command palette."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header

from appliance.tui.live import FeedItem
from appliance.tui.widgets.connection_banner import ConnectionBanner


class LiveUpdate(Message):
    """One feed item, posted by the app to every screen on the stack."""

    def __init__(self, item: FeedItem) -> None:
        super().__init__()
        self.item = item


# (title, help, callback) for the command palette
PaletteCommand = tuple[str, str, Callable[[], object]]


class ApplianceScreen(Screen):
    """Subclasses yield their own widgets from `compose_body`, react to the feed in
    `on_live_update`, reload from the API in `refresh_data` (called on mount, on resume
    and after a reconnect) and list their actions in `palette_commands`."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())

    async def on_mount(self) -> None:
        self.run_worker(self.refresh_data, group="refresh", exclusive=True)

    async def on_screen_resume(self) -> None:
        self.run_worker(self.refresh_data, group="refresh", exclusive=True)

    async def refresh_data(self) -> None:
        """Load what the screen shows from the API (through `self.app.api`)."""

    def on_live_update(self, message: LiveUpdate) -> None:
        """Override to react to feed items."""

    def palette_commands(self) -> Iterable[PaletteCommand]:
        return ()
