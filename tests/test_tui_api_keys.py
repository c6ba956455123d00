"""The API keys screen on the shared server: a key made in the TUI works, its secret is
shown once, revoking it in the TUI locks it out, and a key without admin is told why."""

from __future__ import annotations

from datetime import UTC

import pytest
from textual.widgets import Input

from appliance.client import ApiError
from appliance.tui.screens.api_keys import ApiKeysScreen
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.create_key_dialog import CreateKeyDialog, parse_expiry
from appliance.tui.widgets.secret_dialog import SecretDialog
from tests.tui_support import api, screen_text, tui_for, wait_until


async def open_keys_screen(pilot, app) -> ApiKeysScreen:
    await pilot.press("k")
    return await wait_until(pilot, lambda: isinstance(app.screen, ApiKeysScreen) and app.screen)


async def test_a_key_made_in_the_tui_works_until_it_is_revoked_in_the_tui(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_keys_screen(pilot, app)
        await wait_until(pilot, lambda: screen.loads >= 1)
        assert "(this TUI)" in screen_text(app)

        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, CreateKeyDialog) and isinstance(app.focused, Input))
        await pilot.press(*"tui-key", "tab", "tab", "3", "0", "d", "enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, SecretDialog) and app.screen)
        secret = dialog.secret
        shown = screen_text(app)
        assert secret.startswith("ak_") and secret in shown and "will not be shown again" in shown
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        assert secret not in screen_text(app)

        # The secret works, with the default permissions and the 30 days asked for.
        assert isinstance(await api(server, lambda c: c.list_sandboxes(), key=secret), dict)
        key_id = "key_" + secret.split("_")[1]
        record = [k for k in await api(server, lambda c: c.list_api_keys()) if k.key_id == key_id][0]
        assert record.name == "tui-key" and record.expires_at is not None
        assert sorted(record.permissions) == ["execute", "sandbox_read", "sandbox_write"]

        await wait_until(pilot, lambda: screen.selected_id() == key_id)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.keys.get(key_id, {}).get("revoked_at"))
        with pytest.raises(ApiError) as refused:
            await api(server, lambda c: c.list_sandboxes(), key=secret)
        assert refused.value.status_code == 401


async def test_a_key_without_admin_gets_the_servers_403_and_the_screen_stays_up(server):
    reader = (await api(server, lambda c: c.create_api_key("tui-reader", ["read", "sandbox_read"]))).api_key
    app = tui_for(server, reader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_keys_screen(pilot, app)
        note = await wait_until(pilot, lambda: [n for n in app._notifications if "admin" in n.message])
        assert "403" in (note[0].title or "") and "list API keys" in note[0].message
        assert screen.refused and screen.keys == {} and "needs an admin key" in screen_text(app)
        await pilot.press("n")  # creating is refused by the server, too, without a crash
        await wait_until(pilot, lambda: isinstance(app.screen, CreateKeyDialog) and isinstance(app.focused, Input))
        await pilot.press(*"nope", "enter")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ApiKeysScreen) and any("create API key" in n.message for n in app._notifications)
            ),
        )
        assert screen.is_mounted


def test_expiry_forms():
    from datetime import datetime

    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_expiry("", now=now) is None
    assert parse_expiry("30d", now=now) == "2025-01-31T12:00:00Z"
    assert parse_expiry("2026-01-31", now=now) == "2026-01-31T00:00:00Z"
    assert parse_expiry("2026-01-31T08:30:00", now=now) == "2026-01-31T08:30:00Z"
    with pytest.raises(ValueError):
        parse_expiry("next week", now=now)
