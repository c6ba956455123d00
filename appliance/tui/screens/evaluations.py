"""Evaluations screen (placeholder until built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from appliance.tui.screens.base import ApplianceScreen


class EvaluationsScreen(ApplianceScreen):
    TITLE = "Evaluations"

    def compose_body(self) -> ComposeResult:
        yield Static("Evaluations")
