"""What every top-level screen shares: header, connection banner, footer, live updates
and its entries in the command palette."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker

from appliance.tui.live import FeedItem
from appliance.tui.widgets.connection_banner import ConnectionBanner

if TYPE_CHECKING:
    from textual import getters

    from appliance.tui.app import ApplianceTui

# What the screen hands back when it is dismissed (None for the top-level screens).
ScreenResult = TypeVar("ScreenResult")


class LiveUpdate(Message):
    """One feed item, posted by the app to every screen on the stack."""

    def __init__(self, item: FeedItem) -> None:
        super().__init__()
        self.item = item


# (title, help, callback) for the command palette
PaletteCommand = tuple[str, str, Callable[[], object]]


class ApplianceScreen(Screen[ScreenResult]):
    """Subclasses yield their own widgets from `compose_body`, react to the feed in
    `on_live_update`, reload from the API in `refresh_data` (called on mount, on resume
    and after a reconnect) and list their actions in `palette_commands`."""

    if TYPE_CHECKING:
        # Only for the type checker: these screens run in no other app, and the app's
        # module imports them (at run time Textual's own `app` property is used).
        app = getters.app(ApplianceTui)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def on_screen_resume(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    async def refresh_data(self) -> None:
        """Load what the screen shows from the API (through `self.app.api`)."""

    def on_live_update(self, message: LiveUpdate) -> None:
        """Override to react to feed items."""

    def palette_commands(self) -> Iterable[PaletteCommand]:
        return ()

    def run_exclusive(self, work: Callable[[], Coroutine[Any, Any, None]], *, group: str) -> Worker[None]:
        """Run `work` in a worker, cancelling the one of `group` still under way."""
        # The declared result type lets mypy pick Textual's coroutine-function form of
        # WorkType; on its own it infers Never for an async def (Textual issue #6386).
        return self.run_worker(partial(self._while_shown, work), group=group, exclusive=True)

    async def _while_shown(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await work()
        except NoMatches:
            # When the app quits or the screen is dismissed, its widgets go before its
            # workers are cancelled: an answer that lands in between has nowhere to go,
            # and must not turn a clean quit into a crash (exit status 1).
            if self.is_attached and self.app.is_running:
                raise
