"""How the TUI reaches the appliance: requests through `ApplianceClient`, live events
through a `Feed`.

The client is synchronous, so each request runs in a worker thread: the screen never
waits on the network, and a slow or lost daemon cannot freeze the TUI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from appliance.client import ApplianceClient
from appliance.tui.feeds import Feed

T = TypeVar("T")


@dataclass
class Backend:
    client: ApplianceClient
    feed: Feed
    label: str  # what the header says the TUI is attached to, e.g. the daemon's URL

    async def call(self, request: Callable[[ApplianceClient], T]) -> T:
        """`await backend.call(lambda c: c.list_alerts())`; raises ApiError, httpx errors."""
        return await asyncio.to_thread(request, self.client)

    def close(self) -> None:
        self.client.close()
