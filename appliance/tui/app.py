"""The TUI application. `create_tui` is the one factory the CLI and the tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import httpx
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from appliance import __version__
from appliance.client import ApiError, ApplianceClient
from appliance.tui.backend import Backend
from appliance.tui.live import Connected, Disconnected, FeedItem, LiveData
from appliance.tui.screens.alerts import AlertsScreen
from appliance.tui.screens.api_keys import ApiKeysScreen
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate
from appliance.tui.screens.dashboard import DashboardScreen
from appliance.tui.screens.evaluations import EvaluationsScreen
from appliance.tui.screens.experiments import ExperimentsScreen
from appliance.tui.screens.llm_eval import LlmEvalScreen
from appliance.tui.screens.metrics import MetricsScreen
from appliance.tui.screens.sandboxes import SandboxesScreen
from appliance.tui.screens.statistics import StatisticsScreen

T = TypeVar("T")
DARK_THEME, LIGHT_THEME = "textual-dark", "textual-light"

# mode -> (key, title, screen); the order is the footer's and the palette's
SCREENS = {
    "dashboard": ("d", "Dashboard", DashboardScreen),
    "evaluations": ("e", "Evaluations", EvaluationsScreen),
    "alerts": ("a", "Alerts", AlertsScreen),
    "metrics": ("m", "Metrics", MetricsScreen),
    "sandboxes": ("s", "Sandboxes", SandboxesScreen),
    # Capital E: every screen's own keys are lower case, and e is Evaluations.
    "experiments": ("E", "Experiments", ExperimentsScreen),
    "keys": ("k", "API keys", ApiKeysScreen),
    "statistics": ("i", "Statistics", StatisticsScreen),
    "llm": ("l", "LLM eval", LlmEvalScreen),
}
# Screens whose key the footer leaves out: at 120 columns it is full, and theme and quit
# matter more there; the palette ("Go to ...") and docs/tui.md name their keys.
NOT_IN_FOOTER = frozenset({"statistics", "experiments", "llm"})


class ApplianceTui(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "appliance"
    MODES = {mode: screen for mode, (_, _, screen) in SCREENS.items()}
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        *(
            Binding(key, f"switch_mode('{mode}')", title, show=mode not in NOT_IN_FOOTER)
            for mode, (key, title, _) in SCREENS.items()
        ),
        Binding("t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]

    connection_text = reactive("connecting…")

    def __init__(self, backend: Backend, *, dark: bool = True) -> None:
        super().__init__()
        self.backend = backend
        self.live = LiveData()
        self.theme = DARK_THEME if dark else LIGHT_THEME
        self.sub_title = f"{backend.label} · v{__version__}"

    def on_mount(self) -> None:
        self.run_worker(self.backend.feed.run(self.feed_received), name="feed", group="feed")

    def on_unmount(self) -> None:
        self.backend.close()

    # --- live data ----------------------------------------------------------------------

    def feed_received(self, item: FeedItem) -> None:
        """The feed's sink: remember the item, then tell every screen on the stack."""
        self.live.apply(item)
        if isinstance(item, (Connected, Disconnected)):
            self.connection_text = self.live.status_text
        for screen in self.screen_stack:
            screen.post_message(LiveUpdate(item))
            if isinstance(item, Connected) and isinstance(screen, ApplianceScreen):
                screen.run_exclusive(screen.refresh_data, group="refresh")

    # --- requests -----------------------------------------------------------------------

    async def api(self, request: Callable[[ApplianceClient], T], *, action: str) -> T | None:
        """Make one request; on failure tell the user why (the server's own message) and
        return None. `action` names what was tried, e.g. "acknowledge alert"."""
        try:
            return await self.backend.call(request)
        except ApiError as exc:
            self.notify(f"{action}: {exc.message}", title=f"{exc.status_code} {exc.code}", severity="error", timeout=8)
        except httpx.TransportError as exc:
            self.notify(f"{action}: the appliance does not answer ({type(exc).__name__})", severity="error", timeout=8)
        except asyncio.CancelledError:
            raise
        return None

    # --- actions and palette ------------------------------------------------------------

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT_THEME if self.theme == DARK_THEME else DARK_THEME

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, (key, title, _) in SCREENS.items():
            yield SystemCommand(
                f"Go to {title}", f"Show the {title} screen (key {key})", lambda mode=mode: self.switch_mode(mode)
            )
        yield SystemCommand(
            "Toggle light/dark theme", "Switch between the light and dark theme (key t)", self.action_toggle_theme
        )
        for base in self.screen_stack:
            if isinstance(base, ApplianceScreen):
                for title, help_text, callback in base.palette_commands():
                    yield SystemCommand(title, help_text, callback)


def create_tui(backend: Backend, *, dark: bool = True) -> ApplianceTui:
    return ApplianceTui(backend, dark=dark)
