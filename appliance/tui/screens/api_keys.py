"""API keys (admin): the keys with their permissions and dates; create one (its secret
is shown once) and revoke one. A key without admin sees the server's 403 and nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from appliance.tui.screens.base import ApplianceScreen, PaletteCommand
from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.create_key_dialog import CreateKeyDialog
from appliance.tui.widgets.fitted_table import FittedDataTable
from appliance.tui.widgets.secret_dialog import SecretDialog

COLUMNS = (
    ("key_id", "Key id"),
    ("name", "Name"),
    ("owner", "Owner"),
    ("permissions", "Permissions"),
    ("created", "Created (UTC)"),
    ("expires", "Expires (UTC)"),
    ("revoked", "Revoked (UTC)"),
    ("last_used", "Last used (UTC)"),
)


def key_id_of(secret: str | None) -> str | None:
    """A key `ak_<hex>_<secret>` has the id `key_<hex>` (services/auth.py)."""
    parts = (secret or "").strip().split("_")
    return f"key_{parts[1]}" if len(parts) >= 3 and parts[0] == "ak" else None


def key_row(key: dict[str, Any], own_id: str | None) -> tuple[str | Text, ...]:
    revoked = key.get("revoked_at")
    style = "dim strike" if revoked else ""
    name = key.get("name", "") + (" (this TUI)" if key["key_id"] == own_id else "")
    return (
        Text(key["key_id"], style=style),
        Text(name, style=style),
        key.get("owner", ""),
        ",".join(key.get("permissions") or []) or "—",
        utc_text(key.get("created_at")),
        utc_text(key.get("expires_at"), empty="never"),
        utc_text(revoked),
        utc_text(key.get("last_used_at"), empty="never"),
    )


class ApiKeysScreen(ApplianceScreen[None]):
    TITLE = "API keys"
    BINDINGS = [
        Binding("n", "create", "New key"),
        Binding("x,delete", "revoke", "Revoke"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, dict[str, Any]] = {}
        self.loads = 0
        self.changes = 0  # keys created here; a list older than one is dropped
        self.refused = False  # the last load failed (a key without admin gets a 403)

    def compose_body(self) -> ComposeResult:
        yield Static(id="key-summary")
        table: FittedDataTable[str | Text] = FittedDataTable(id="keys", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        # ApplianceScreen.on_mount (Textual calls every class's handler) loads the data.
        self._show_summary()

    @property
    def own_key_id(self) -> str | None:
        return key_id_of(getattr(self.app.backend.client, "api_key", None))

    # --- loading and drawing -----------------------------------------------------------

    async def refresh_data(self) -> None:
        changes = self.changes
        keys = await self.app.api(lambda c: c.list_api_keys(), action="list API keys")
        if changes != self.changes:
            return  # older than the table; the next load (after the secret dialog) has it
        self.refused = keys is None
        if keys is not None:
            self.loads += 1
            self.keys = {k["key_id"]: dict(k) for k in keys}
        self._redraw()

    def _redraw(self, select: str | None = None) -> None:
        table = self.query_one("#keys", DataTable)
        selected = select or self.selected_id()
        own = self.own_key_id
        table.clear()
        for key in self.keys.values():
            table.add_row(*key_row(key, own), key=key["key_id"])
        if selected in self.keys:
            table.move_cursor(row=table.get_row_index(selected))
        self._show_summary()

    def _show_summary(self) -> None:
        summary = self.query_one("#key-summary", Static)
        if self.refused:
            summary.update("Could not list the keys (the notification says why): managing keys needs an admin key.")
            return
        active = sum(1 for k in self.keys.values() if not k.get("revoked_at"))
        summary.update(f"{len(self.keys)} keys, {active} not revoked · a key's secret is shown only when it is created")

    def selected_id(self) -> str | None:
        table = self.query_one("#keys", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    # --- actions ---------------------------------------------------------------------

    @work(group="key-action")
    async def action_create(self) -> None:
        request = await self.app.push_screen_wait(CreateKeyDialog())
        if request is None:
            return
        created = await self.app.api(
            lambda c: c.create_api_key(request["name"], request["permissions"], expires_at=request["expires_at"]),
            action="create API key",
        )
        if created is None:
            return
        secret = created["api_key"]
        self.changes += 1
        self.keys[created["key_id"]] = {k: v for k, v in created.items() if k != "api_key"}
        self._redraw(select=created["key_id"])
        await self.app.push_screen_wait(SecretDialog(f"New API key {created['key_id']} ({created['name']})", secret))

    @work(group="key-action")
    async def action_revoke(self) -> None:
        key_id = self.selected_id()
        if key_id is None:
            self.notify("No key selected", severity="warning")
            return
        key = self.keys[key_id]
        if key.get("revoked_at"):
            self.notify(f"{key_id} was revoked already", severity="warning")
            return
        warning = " This is the key this TUI uses: it loses its connection." if key_id == self.own_key_id else ""
        question = f"Revoke {key_id} ({key.get('name')})? Every request with it is refused from now on.{warning}"
        if not await self.app.push_screen_wait(ConfirmDialog("Revoke API key", question, confirm_label="Revoke")):
            return
        revoked = await self.app.api(lambda c: c.revoke_api_key(key_id), action=f"revoke {key_id}")
        if revoked is None:
            return
        self.notify(revoked.get("message") or f"{key_id} revoked", timeout=4)
        await self.refresh_data()  # the list has the revocation time

    def action_reload(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield ("API keys: new key", "Create a key; its secret is shown once (key n; needs admin)", self.action_create)
        yield (
            "API keys: revoke the selected key",
            "Refuse it from now on, after a confirmation (key x; needs admin)",
            self.action_revoke,
        )
        yield ("API keys: refresh", "Reload the keys (key ctrl+r; needs admin)", self.action_reload)
