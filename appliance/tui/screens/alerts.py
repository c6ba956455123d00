"""Alerts screen (placeholder until built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from appliance.tui.screens.base import ApplianceScreen


class AlertsScreen(ApplianceScreen):
    TITLE = "Alerts"

    def compose_body(self) -> ComposeResult:
        yield Static("Alerts")
