"""Asks for a new API key's name, permissions and optional expiry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

# The permissions of docs/sandbox-api.md ("API keys and permissions"), and what the API
# gives a key when none are named.
PERMISSIONS = (
    ("execute", "run code (/api/execute, evaluations)"),
    ("read", "the platform API's reads"),
    ("sandbox_read", "read own sandboxes"),
    ("sandbox_write", "create/change/delete sandboxes"),
    ("admin", "everything, keys, alerts"),
)
DEFAULT_PERMISSIONS = ("execute", "sandbox_read", "sandbox_write")
DAYS = re.compile(r"^(\d{1,5})\s*d$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_expiry(text: str, *, now: datetime | None = None) -> str | None:
    """ "" -> None (never); "30d" -> 30 days from now; "2026-01-31" -> that midnight UTC;
    an ISO 8601 time (without a zone: UTC) as it is. ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    now = now or datetime.now(UTC)
    if match := DAYS.match(text):
        return (now + timedelta(days=int(match.group(1)))).isoformat().replace("+00:00", "Z")
    if DATE.match(text):
        text += "T00:00:00Z"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # ValueError if malformed
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CreateKeyDialog(ModalScreen[dict[str, Any] | None]):
    """Dismisses with {"name", "permissions", "expires_at"} or None (cancelled)."""

    DEFAULT_CSS = """
    CreateKeyDialog { align: center middle; }
    CreateKeyDialog > Vertical {
        width: 66; max-width: 95%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    CreateKeyDialog .title { text-style: bold; width: 1fr; }
    CreateKeyDialog SelectionList { height: auto; max-height: 7; border: none; padding: 0; }
    CreateKeyDialog .error { color: $error; height: auto; }
    CreateKeyDialog Horizontal { height: auto; align-horizontal: right; }
    CreateKeyDialog Button { margin-left: 1; }
    """
    AUTO_FOCUS = "#name"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New API key", classes="title")
            yield Label("Name")
            yield Input(placeholder="ci-runner", id="name", max_length=100, compact=True)
            yield Label("Permissions (space toggles)")
            yield SelectionList[str](
                *((f"{name:<14} {about}", name, name in DEFAULT_PERMISSIONS) for name, about in PERMISSIONS),
                id="permissions",
            )
            yield Label("Expires (empty: never; 30d; 2026-01-31; ISO time, UTC)")
            yield Input(placeholder="never", id="expires", compact=True)
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Create", variant="primary", id="create", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        error = self.query_one("#error", Static)
        if not name:
            error.update("A name is required.")
            self.query_one("#name", Input).focus()
            return
        try:
            expires_at = parse_expiry(self.query_one("#expires", Input).value)
        except ValueError:
            error.update("Expiry: write 30d, 2026-01-31 or an ISO 8601 time.")
            self.query_one("#expires", Input).focus()
            return
        permissions = list(self.query_one("#permissions", SelectionList).selected)
        self.dismiss({"name": name, "permissions": permissions, "expires_at": expires_at})

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "create":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
