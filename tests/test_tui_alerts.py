"""The alerts screen on a real server whose CPU rule always holds (threshold 0): an
alert opens REOPEN_SECONDS after start, and a new one that long after one is resolved."""

from __future__ import annotations

from textual.command import CommandPalette
from textual.widgets import Input

from appliance.tui.screens.alerts import AlertsScreen
from appliance.tui.widgets.comment_dialog import CommentDialog
from tests.tui_support import api, screen_text, tui_for, type_text, wait_until

REOPEN_SECONDS = 3  # long enough that a reload cannot be what shows the new alert
CPU_ALWAYS = {
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.3",
    "APPLIANCE_ALERT_CPU_PERCENT": "0",
    "APPLIANCE_ALERT_CPU_FOR_SECONDS": str(REOPEN_SECONDS),
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
}


async def answer_comment(pilot, app, comment: str) -> None:
    # Typed keys go to the comment only once it has the focus (t alone switches the theme).
    await wait_until(pilot, lambda: isinstance(app.screen, CommentDialog) and isinstance(app.focused, Input))
    await type_text(pilot, comment)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))


async def test_acknowledge_and_resolve_with_comments_and_new_alerts_arrive_live(fresh_server):
    server = fresh_server(env=CPU_ALWAYS)
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen) and app.screen)
        await wait_until(pilot, lambda: app.live.connected and screen.loads >= 1)
        first = await wait_until(pilot, screen.selected)
        alert_id = first["alert_id"]
        assert first["rule"] == "cpu_usage" and "High CPU Usage" in screen_text(app)

        await pilot.press("c")
        await answer_comment(pilot, app, "looking into it")
        await wait_until(pilot, lambda: screen.alerts[alert_id]["status"] == "acknowledged")
        acked = await api(server, lambda c: c.get_alert(alert_id))
        assert acked.status == "acknowledged" and acked.acknowledged_by == "admin"
        assert acked.acknowledged_comment == "looking into it"
        assert "comment: looking into it" in screen_text(app)  # the detail panel

        loads = screen.loads
        await pilot.press("r")
        await answer_comment(pilot, app, "fixed it")
        # Resolved leaves the "open" view (closing the dialog reloads the list once).
        await wait_until(pilot, lambda: alert_id not in screen.alerts and screen.loads == loads + 1)
        assert screen.alerts == {}
        resolved = await api(server, lambda c: c.get_alert(alert_id))
        assert resolved.status == "resolved" and resolved.resolved_comment == "fixed it"
        assert resolved.acknowledged_comment == "looking into it"
        # The rule still holds, so a new alert opens and arrives through the feed: the
        # list is not loaded again.
        reopened = await wait_until(pilot, lambda: list(screen.alerts))
        assert screen.loads == loads + 1 and reopened[0] != alert_id
        assert screen.alerts[reopened[0]]["status"] == "active"

        # The history filter (from the command palette) shows the resolved alert and
        # its comments.
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette) and isinstance(app.focused, Input))
        await type_text(pilot, "show resolved alerts")
        await pilot.pause(0.5)  # the palette searches as it is typed
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.status_filter == "resolved")
        await wait_until(pilot, lambda: alert_id in screen.alerts and screen.selected_id() == alert_id)
        text = screen_text(app)
        assert "comment: fixed it" in text and "comment: looking into it" in text


async def test_a_key_without_admin_is_told_why_it_cannot_acknowledge(fresh_server):
    server = fresh_server(env=CPU_ALWAYS)
    viewer = (await api(server, lambda c: c.create_api_key("alert-viewer", ["sandbox_read"]))).api_key
    app = tui_for(server, viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen) and app.screen)
        await wait_until(pilot, screen.selected)  # any key may read alerts
        await pilot.press("c")
        await answer_comment(pilot, app, "mine")
        await wait_until(pilot, lambda: any("admin" in n.message for n in app._notifications))
        assert screen.selected()["status"] == "active"
