"""The sandboxes screen on the shared server: create and delete real sandboxes from the
TUI and check each step through the API. Each sandbox is a real container."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from textual.widgets import Input

from appliance.client import ApiError
from appliance.tui.screens.sandboxes import SandboxesScreen
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.create_sandbox_dialog import CreateSandboxDialog
from tests.support import HANG_SECONDS
from tests.tui_support import api, screen_text, tui_for, wait_until


async def select_sandbox(pilot, app, sandbox_id: str) -> SandboxesScreen:
    """Open the sandboxes screen and move the cursor to `sandbox_id` once it is listed."""
    await pilot.press("s")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.screen)
    await wait_until(pilot, lambda: sandbox_id in screen.sandboxes)
    table = screen.query_one("#sandboxes")
    table.move_cursor(row=table.get_row_index(sandbox_id))
    return screen


async def delete_quietly(server, sandbox_id: str) -> None:
    with contextlib.suppress(ApiError):  # the test deleted it itself
        await api(server, lambda c: c.delete_sandbox(sandbox_id, force=True))


async def test_create_then_delete_a_sandbox_from_the_tui(server):
    app = tui_for(server)
    made: list[str] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("s")
            screen = await wait_until(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.screen)
            await wait_until(pilot, lambda: screen.loads >= 1)

            await pilot.press("n")
            await wait_until(
                pilot, lambda: isinstance(app.screen, CreateSandboxDialog) and isinstance(app.focused, Input)
            )
            await pilot.press(*"tui-made")
            await pilot.press("enter")
            found = await wait_until(pilot, lambda: [s for s, b in screen.sandboxes.items() if b["name"] == "tui-made"])
            sandbox_id = found[0]
            made.append(sandbox_id)
            running = await api(server, lambda c: c.wait_for_sandbox(sandbox_id, "running", timeout=HANG_SECONDS))
            assert running.name == "tui-made" and running.runtime == "python"

            # The new row is selected; its GET a moment later shows it running, with limits.
            assert screen.selected_id() == sandbox_id
            await wait_until(
                pilot,
                lambda: (
                    screen.sandboxes[sandbox_id]["status"] == "running"
                    and (screen.detail or {}).get("sandbox_id") == sandbox_id
                ),
            )
            text = screen_text(app)
            assert f"{sandbox_id} tui-made running python" in text
            assert running.resources.memory_limit in text and "Snapshots" in text

            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_until(pilot, lambda: sandbox_id not in screen.sandboxes)
            with pytest.raises(ApiError) as gone:
                await api(server, lambda c: c.get_sandbox(sandbox_id))
            assert gone.value.status_code == 404
    finally:
        # Whatever the TUI made, even if the test failed before it learnt the id.
        listing = await api(server, lambda c: c.list_sandboxes(limit=1000))
        made += [s.sandbox_id for s in listing.sandboxes if s.name.endswith("made")]
        for sandbox_id in set(made):
            await delete_quietly(server, sandbox_id)


async def test_files_and_snapshots_of_the_selected_sandbox_and_cancelled_delete(server):
    created = await api(server, lambda c: c.create_sandbox("python", name="tui-files"))
    sandbox_id = created.sandbox_id
    try:
        await api(server, lambda c: c.wait_for_sandbox(sandbox_id, "running", timeout=HANG_SECONDS))
        await api(server, lambda c: c.upload_file(sandbox_id, b"print('hi')\n", name="hello.py"))
        snapshot = await api(server, lambda c: c.create_snapshot(sandbox_id, "tui-snap"))
        await api(server, lambda c: c.wait_for_snapshot(sandbox_id, snapshot.snapshot_id, timeout=HANG_SECONDS))
        app = tui_for(server)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await select_sandbox(pilot, app, sandbox_id)
            await wait_until(pilot, lambda: (screen.detail or {}).get("sandbox_id") == sandbox_id)
            text = screen_text(app)
            assert "/sandbox/hello.py" in text and snapshot.snapshot_id in text and "tui-snap" in text

            # n(o) in the confirmation keeps it.
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("n")
            await wait_until(pilot, lambda: isinstance(app.screen, SandboxesScreen))
            assert (await api(server, lambda c: c.get_sandbox(sandbox_id))).status == "running"
    finally:
        await delete_quietly(server, sandbox_id)


async def test_a_stopped_sandbox_is_started_again_from_the_tui(fresh_server, docker_client):
    # The reconciler would start it by itself: keep it out of the way.
    server = fresh_server(env={"APPLIANCE_SANDBOX_RECONCILE_SECONDS": "3600"})
    created = await api(server, lambda c: c.create_sandbox("python", name="tui-restart"))
    sandbox_id = created.sandbox_id
    try:
        await api(server, lambda c: c.wait_for_sandbox(sandbox_id, "running", timeout=HANG_SECONDS))
        await asyncio.to_thread(lambda: docker_client.containers.get(f"appliance-{sandbox_id}").stop(timeout=1))
        assert (await api(server, lambda c: c.get_sandbox(sandbox_id))).status == "stopped"
        app = tui_for(server)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await select_sandbox(pilot, app, sandbox_id)
            await wait_until(
                pilot,
                lambda: (
                    screen.sandboxes[sandbox_id]["status"] == "stopped"
                    and (screen.detail or {}).get("sandbox_id") == sandbox_id
                ),
            )
            await pilot.press("p")
            await wait_until(pilot, lambda: screen.sandboxes[sandbox_id]["status"] in ("creating", "running"))
            running = await api(server, lambda c: c.wait_for_sandbox(sandbox_id, "running", timeout=HANG_SECONDS))
            assert running.status == "running"
            await pilot.press("p")  # a running one is not restarted: the screen says why
            await wait_until(pilot, lambda: any("only a stopped or failed" in n.message for n in app._notifications))
    finally:
        await delete_quietly(server, sandbox_id)
