"""The evaluations screen against a real server: rows appear and finish live, filters,
the detail view with streamed output, kill, resubmit, and permissions."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App

from appliance.client import ApplianceClient
from appliance.tui.screens.evaluation_detail import EvaluationDetailScreen
from appliance.tui.screens.evaluations import EvaluationsScreen
from appliance.tui.widgets.code_view import CodeView
from appliance.tui.widgets.evaluation_table import EvaluationTable
from appliance.tui.widgets.output_log import OutputLog
from tests.tui_support import screen_text, tui_for, wait_until

SMALL, LARGE = (80, 24), (120, 40)
# Runs until killed (or for the 120 s it is given, should a kill not come).
SPIN = "while True:\n    pass"
# under 100 characters: GET /api/evaluations' code_preview holds all of it. A line a
# second: the detail view shows each before the next comes, even on a busy machine.
SLOW_LINES = "import time\nfor i in range(6):\n print('tick', i, flush=True)\n time.sleep(1)\nprint('done')"


def visible_text(app) -> str:
    """What the terminal shows right now, line by line (footer and toasts included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notifications(app) -> list:
    return list(app._notifications)


def row_status(app, eval_id: str) -> str | None:
    table = app.screen.query_one(EvaluationTable)
    try:
        return str(table.get_row(eval_id)[1])
    except Exception:  # noqa: BLE001 - not on screen
        return None


def table_ids(app) -> list[str]:
    table = app.screen.query_one(EvaluationTable)
    return [table.get_row_at(i)[0] for i in range(table.row_count)]


async def submit(client: ApplianceClient, code: str, language: str = "python", **options) -> str:
    answer = await asyncio.to_thread(client.submit_evaluation, language, code, **options)
    return answer["eval_id"]


async def api_status(client: ApplianceClient, eval_id: str) -> dict:
    return await asyncio.to_thread(client.evaluation_status, eval_id)


async def open_evaluations(pilot) -> EvaluationsScreen:
    await pilot.press("e")
    screen = await wait_until(pilot, lambda: isinstance(pilot.app.screen, EvaluationsScreen) and pilot.app.screen)
    await wait_until(pilot, lambda: pilot.app.live.connected and screen.total is not None)
    return screen


class OneLog(App):
    def compose(self):
        yield OutputLog(id="log")


@pytest.mark.parametrize(
    "before, snapshot, after, shown",
    [
        # chunks seen after asking are in the snapshot already
        (["tick 2", "\n"], "tick 0\ntick 1\ntick 2\n", ["tick 3\n"], "tick 0\ntick 1\ntick 2\ntick 3\n"),
        # a chunk sent before the snapshot was taken arrives after it (it crossed the answer)
        ([], "tick 0\ntick 1\ntick 2\n", ["tick 2\n", "tick 3\n"], "tick 0\ntick 1\ntick 2\ntick 3\n"),
        # split differently: half a line before, its newline after
        (["tick 2"], "tick 0\ntick 1\ntick 2\n", ["\n", "tick 3\n"], "tick 0\ntick 1\ntick 2\ntick 3\n"),
        # chunks lag far behind the snapshot
        ([], "a1\na2\na3\na4\n", ["a2\n", "a3\n", "a4\n", "a5\n"], "a1\na2\na3\na4\na5\n"),
        # plain new output after the snapshot
        ([], "one\n", ["two\n", "three\n"], "one\ntwo\nthree\n"),
    ],
)
async def test_output_log_joins_snapshot_and_chunks(before, snapshot, after, shown):
    async with OneLog().run_test() as pilot:
        log = pilot.app.query_one(OutputLog)
        log.mark()
        for chunk in before:
            log.append(chunk)
        log.load(snapshot)
        for chunk in after:
            log.append(chunk)
        await pilot.pause()
        assert log.text == shown
        assert list(log.lines) == shown.split("\n")
        log.finish(shown + "end\n")  # the completed event has the last word
        log.load("stale")
        assert log.text == shown + "end\n"


@pytest.fixture
def admin(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


async def test_submitted_evaluation_appears_and_completes_live(server, admin):
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        await open_evaluations(pilot)
        first = await submit(admin, "print('first')")
        second = await submit(admin, "print('second')")
        # nothing pressed: the feed brings both rows and their final status
        await wait_until(
            pilot,
            lambda: (
                (row_status(app, first) or "").startswith("completed")
                and (row_status(app, second) or "").startswith("completed")
            ),
        )
        ids = table_ids(app)
        assert ids.index(second) < ids.index(first)  # newest first
        assert "completed ✓" in screen_text(app)
        shown = visible_text(app)
        assert "Queue" in shown and "running" in shown  # the queue line
        for key in ("Open", "Status", "Lang", "Kill", "Resubmit"):
            assert key in shown.splitlines()[-1], shown  # in the footer at 80x24


async def test_filters_hide_and_show_rows(server, admin):
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_evaluations(pilot)
        python_id = await submit(admin, "print('py')")
        bash_id = await submit(admin, "echo sh", language="bash")
        failing_id = await submit(admin, "import sys; sys.exit(3)")
        await wait_until(
            pilot,
            lambda: all((row_status(app, e) or "").startswith("completed") for e in (python_id, bash_id, failing_id)),
        )
        assert row_status(app, failing_id) == "completed ✗"

        # language: all -> bash (cycle with l until it is bash)
        for _ in range(10):
            if screen.language_filter == "bash":
                break
            await pilot.press("l")
        assert screen.language_filter == "bash"
        await wait_until(pilot, lambda: bash_id in table_ids(app) and python_id not in table_ids(app))
        assert "lang bash" in visible_text(app)

        # status: all -> queued -> running: none of ours is running any more
        await pilot.press("f", "f")
        assert screen.status_filter == "running"
        await wait_until(pilot, lambda: bash_id not in table_ids(app))
        await pilot.press("f")  # completed: the bash one is back
        await wait_until(pilot, lambda: bash_id in table_ids(app))
        assert "status completed" in visible_text(app)

        # back to every language and status
        while screen.language_filter is not None:
            await pilot.press("l")
        while screen.status_filter is not None:
            await pilot.press("f")
        await wait_until(pilot, lambda: {python_id, bash_id, failing_id} <= set(table_ids(app)))


async def open_running_detail(pilot, app, eval_id: str) -> EvaluationDetailScreen:
    """Wait until the evaluation runs, then open it from the table."""
    await wait_until(pilot, lambda: row_status(app, eval_id) == "running")
    app.screen.query_one(EvaluationTable).select(eval_id)
    await pilot.press("enter")
    return await wait_until(pilot, lambda: isinstance(app.screen, EvaluationDetailScreen) and app.screen)


async def test_detail_shows_code_and_streams_output(server, admin):
    app = tui_for(server)
    async with app.run_test(size=LARGE) as pilot:
        await open_evaluations(pilot)
        eval_id = await submit(admin, SLOW_LINES, timeout=120)
        detail = await open_running_detail(pilot, app, eval_id)
        assert detail.eval_id == eval_id
        stdout = detail.query_one("#stdout", OutputLog)

        # while it runs, lines arrive one by one, never repeated or left out
        final = "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\ndone\n"
        samples: list[str] = []

        def sample(condition):
            samples.append(stdout.text)
            return condition()

        await wait_until(pilot, lambda: sample(lambda: "tick 1" in stdout.text and "done" not in stdout.text))
        assert "running" in visible_text(app)
        await wait_until(pilot, lambda: sample(lambda: "done" in stdout.text and detail.facts.get("memory_used")))
        assert stdout.text == final
        assert all(final.startswith(text) for text in samples), samples
        assert len({text for text in samples if text != final}) >= 2  # it grew while running
        assert list(stdout.lines[:7]) == final.splitlines()

        shown = visible_text(app)
        assert "completed ✓" in shown and "exit 0" in shown
        assert "timeout 120.00 s" in shown and "python on docker" in shown  # limits
        assert "peak memory" in shown and "limits hit none" in shown  # accounting
        assert "tick 5" in shown  # the output tab is the one showing
        assert detail.query_one(CodeView).code == SLOW_LINES

        await pilot.press("v", "v")  # output -> errors -> code
        await pilot.pause(0.2)
        assert "for i in range(6):" in visible_text(app)

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluationsScreen))
        assert app.screen.query_one(EvaluationTable).selected_id == eval_id


async def test_kill_from_the_table(server, admin):
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        await open_evaluations(pilot)
        eval_id = await submit(admin, SPIN, timeout=120)
        await wait_until(pilot, lambda: row_status(app, eval_id) == "running")
        app.screen.query_one(EvaluationTable).select(eval_id)
        await pilot.press("x")
        await wait_until(pilot, lambda: row_status(app, eval_id) == "failed")
        body = await api_status(admin, eval_id)
        assert (body["status"], body["reason"]) == ("failed", "killed")
        assert any("terminated" in str(n.message) for n in notifications(app))


async def test_kill_from_the_detail_view(server, admin):
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        await open_evaluations(pilot)
        eval_id = await submit(admin, "print('started', flush=True)\n" + SPIN, timeout=120)
        detail = await open_running_detail(pilot, app, eval_id)
        await wait_until(pilot, lambda: "started" in detail.query_one("#stdout", OutputLog).text)
        await pilot.press("x")
        await wait_until(pilot, lambda: detail.facts.get("status") == "failed")
        await wait_until(pilot, lambda: "killed" in visible_text(app))
        assert (await api_status(admin, eval_id))["reason"] == "killed"
        # killing it again: the server says why not
        await pilot.press("x")
        await wait_until(pilot, lambda: any("already finished" in str(n.message) for n in notifications(app)))


async def test_resubmit_runs_the_same_code_again(server, admin):
    code = "print(6 * 7)"
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_evaluations(pilot)
        original = await submit(admin, code, timeout=7)
        await wait_until(pilot, lambda: (row_status(app, original) or "").startswith("completed"))
        table = screen.query_one(EvaluationTable)
        table.select(original)
        await pilot.press("r")
        again = await wait_until(pilot, lambda: table.selected_id != original and table.selected_id)
        assert any(again in str(n.message) for n in notifications(app))
        await wait_until(pilot, lambda: (row_status(app, again) or "").startswith("completed"))
        body = await api_status(admin, again)
        assert (body["language"], body["timeout"], body["output"]) == ("python", 7.0, "42\n")
        listed = await asyncio.to_thread(admin.list_evaluations, limit=50)
        previews = {e["eval_id"]: e["code_preview"] for e in listed["evaluations"]}
        assert previews[again] == previews[original] == code

        # from the detail view: the new evaluation opens in its place
        table.select(again)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluationDetailScreen))
        await pilot.press("r")
        third = await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, EvaluationDetailScreen)
                and app.screen.eval_id not in (original, again)
                and app.screen.eval_id
            ),
        )
        await wait_until(pilot, lambda: app.screen.facts.get("status") == "completed")
        assert app.screen.query_one(CodeView).code == code
        await wait_until(pilot, lambda: app.screen.query_one("#stdout", OutputLog).text == "42\n")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluationsScreen) and table.selected_id == third)


async def test_read_only_key_cannot_kill(server, admin):
    owner = f"tui-team-{time.time_ns()}"
    team_key = (await asyncio.to_thread(admin.create_api_key, f"{owner}-exec", ["execute", "read"], owner=owner))[
        "api_key"
    ]
    read_key = (await asyncio.to_thread(admin.create_api_key, f"{owner}-read", ["read"], owner=owner))["api_key"]
    with ApplianceClient(server.url, api_key=team_key) as team:
        eval_id = await submit(team, SPIN, timeout=120)
        try:
            app = tui_for(server, key=read_key)
            async with app.run_test(size=SMALL) as pilot:
                await open_evaluations(pilot)
                await wait_until(pilot, lambda: row_status(app, eval_id) == "running")
                app.screen.query_one(EvaluationTable).select(eval_id)
                await pilot.press("x")
                error = await wait_until(
                    pilot, lambda: next((n for n in notifications(app) if n.severity == "error"), None)
                )
                assert "kill" in str(error.message) and "403" in str(error.title), error
                await pilot.press("r")  # resubmitting needs execute too
                await wait_until(pilot, lambda: sum(n.severity == "error" for n in notifications(app)) == 2)
                await pilot.pause(0.5)
                assert row_status(app, eval_id) == "running"
                assert (await api_status(team, eval_id))["status"] == "running"
        finally:
            await asyncio.to_thread(team.kill_evaluation, eval_id)


async def test_every_action_is_in_the_palette(server, admin):
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_evaluations(pilot)
        eval_id = await submit(admin, "print('palette')")
        await wait_until(pilot, lambda: (row_status(app, eval_id) or "").startswith("completed"))
        titles = [title for title, _, _ in screen.palette_commands()]
        for word in (
            "Open",
            "Kill",
            "Resubmit",
            "status filter",
            "language filter",
            "Show failed",
            "Show only python",
            "every status",
        ):
            assert any(word in t for t in titles), (word, titles)

        screen.open_detail(eval_id)
        detail = await wait_until(pilot, lambda: isinstance(app.screen, EvaluationDetailScreen) and app.screen)
        await wait_until(pilot, lambda: detail.query("#code-view") and detail.facts.get("engine"))
        detail_titles = [title for title, _, _ in detail.palette_commands()]
        for word in ("Back", "Kill", "Resubmit", "Show output", "Show errors", "Show code"):
            assert any(word in t for t in detail_titles), (word, detail_titles)
        assert not list(screen.palette_commands())  # covered: only the detail's own count
        back = next(cb for title, _, cb in detail.palette_commands() if title.startswith("Back"))
        back()
        await wait_until(pilot, lambda: app.screen is screen)

        show_failed = next(cb for title, _, cb in screen.palette_commands() if title == "Show failed evaluations")
        show_failed()
        assert screen.status_filter == "failed"
        await wait_until(pilot, lambda: eval_id not in table_ids(app))
        assert "status failed" in visible_text(app)


async def test_long_code_is_shown_and_resubmitted_whole(server, admin):
    code = "\n".join(f"print({i})" for i in range(30))  # well over the list's 100-character preview
    app = tui_for(server)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_evaluations(pilot)
        eval_id = await submit(admin, code)
        await wait_until(pilot, lambda: (row_status(app, eval_id) or "").startswith("completed"))
        screen.query_one(EvaluationTable).select(eval_id)
        await pilot.press("enter")
        detail = await wait_until(pilot, lambda: isinstance(app.screen, EvaluationDetailScreen) and app.screen)
        await wait_until(pilot, lambda: detail.facts.get("engine"))
        await pilot.press("v", "v")
        await pilot.pause(0.2)
        assert detail.query_one(CodeView).code == code  # from eval-status, not the preview
        await pilot.press("r")
        again = await wait_until(
            pilot,
            lambda: isinstance(app.screen, EvaluationDetailScreen) and app.screen is not detail and app.screen.eval_id,
        )
        assert (await api_status(admin, again))["code"] == code


async def test_detail_without_the_live_feed_learns_the_end_from_a_held_status_request(server, admin):
    """The feed cannot connect (a port nothing listens on): the detail screen follows the
    evaluation with GET /api/eval-status/{id}?wait=, not with events."""
    from appliance.tui.app import create_tui
    from appliance.tui.backend import Backend
    from appliance.tui.feeds import RemoteFeed
    from tests.support import free_port

    key = server.admin_key
    feed = RemoteFeed(f"ws://127.0.0.1:{free_port()}", key, open_timeout=1.0, backoff=(60.0,))
    app = create_tui(Backend(ApplianceClient(server.url, api_key=key), feed, server.url))
    async with app.run_test(size=LARGE) as pilot:
        eval_id = await submit(admin, "import time\ntime.sleep(2)\nprint('ended')", timeout=60)
        await wait_until(pilot, lambda: not app.live.connected)
        detail = EvaluationDetailScreen(eval_id)
        await app.push_screen(detail)
        await wait_until(pilot, lambda: detail.facts.get("status") == "completed")
        await wait_until(pilot, lambda: detail.query_one("#stdout", OutputLog).text == "ended\n")
        assert not app.live.connected  # no event brought it
