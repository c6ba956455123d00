"""The TUI attached to a real server, as `appliance tui --url` attaches it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from appliance.client import ApplianceClient
from appliance.tui.app import ApplianceTui, create_tui
from appliance.tui.backend import Backend
from appliance.tui.feeds import RemoteFeed
from tests.support import HANG_SECONDS, eventually_async


def tui_for(server, key: str | None = None, *, dark: bool = True) -> ApplianceTui:
    """An app on `server` (a tests.support.ServerProcess) with `key` (default: admin)."""
    key = key or server.admin_key
    backend = Backend(ApplianceClient(server.url, api_key=key), RemoteFeed(server.ws_url, key), server.url)
    return create_tui(backend, dark=dark)


async def wait_until(pilot, condition: Callable[[], object], timeout: float = HANG_SECONDS, step: float = 0.1):
    """`eventually` for a Textual app: the pilot pauses between checks, so the app runs
    on meanwhile. Returns what `condition()` returned."""
    return await eventually_async(condition, timeout=timeout, interval=step, sleep=pilot.pause)


def screen_text(app: ApplianceTui) -> str:
    """Everything the current screen shows, as plain text (for `assert ... in`)."""
    from textual.widgets import DataTable, Static

    parts: list[str] = []
    for widget in app.screen.query("*"):
        if isinstance(widget, DataTable):
            for row in range(widget.row_count):
                parts.append(" ".join(str(c) for c in widget.get_row_at(row)))
        elif isinstance(widget, Static):
            parts.append(str(widget.render()))
    return "\n".join(parts)


async def api(server, request: Callable[[ApplianceClient], object], key: str | None = None):
    """One client call (`request(client)`) in a thread, so the app under test keeps
    running meanwhile; with the admin key unless `key` is given."""

    def call():
        with ApplianceClient(server.url, api_key=key or server.admin_key) as client:
            return request(client)

    return await asyncio.to_thread(call)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*("space" if ch == " " else ch for ch in text))
