"""The Statistics screen on a real server: the stored results with the selected one in
full, one experiment's results, and a report written to a file that is the very file
the endpoint (and so appliance.client and `appliance report`) gives."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from appliance.tui.screens.statistics import StatisticsScreen
from appliance.tui.widgets.comment_dialog import CommentDialog
from appliance.tui.widgets.report_dialog import ReportDialog
from tests.experiments_support import start_v1_server
from tests.report_fixtures import insert_experiment
from tests.tui_support import api, screen_text, tui_for, type_text, wait_until


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-tui-statistics"))
    yield server
    server.stop()


async def open_statistics(pilot, app) -> StatisticsScreen:
    await pilot.press("i")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, StatisticsScreen) and app.screen)
    await wait_until(pilot, lambda: screen.loads >= 1)
    return screen


async def test_results_are_listed_and_the_selected_one_shown_in_full(v1):
    welch = await api(
        v1,
        lambda c: c.run_statistical_test(
            "welch_t_test", data={"tuned": [0.91, 0.93, 0.92, 0.95], "base": [0.81, 0.84, 0.80, 0.83]}, metric="acc"
        ),
    )
    anova = await api(
        v1,
        lambda c: c.run_statistical_test(
            "one_way_anova", data={"a": [1, 2, 3, 4], "b": [2, 3, 4, 5], "c": [6, 7, 8, 9]}
        ),
    )
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_statistics(pilot, app)
        assert {welch.id, anova.id} <= set(screen.results)
        shown = screen_text(app)
        assert "welch_t_test" in shown and "tuned vs base" in shown and "one_way_anova" in shown
        # Newest first: the ANOVA, with its pairwise comparisons below.
        assert screen.selected_id() == anova.id
        shown = screen_text(app)
        assert "eta_squared" in shown and "a vs c" in shown and "adjusted" in shown
        await pilot.press("down")
        await wait_until(pilot, lambda: screen.selected_id() == welch.id)
        shown = screen_text(app)
        assert welch.interpretation.practical_significance in shown
        assert "smallest effect these samples detect" in shown and "tuned" in shown

        # An experiment nobody has is the server's 404, told as a notification.
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, CommentDialog) and isinstance(app.focused, Input))
        await type_text(pilot, "exp_nobody")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("exp_nobody" in n.message for n in app._notifications))
        assert screen.experiment_id == "exp_nobody" and screen.results == {}


async def test_an_experiments_results_and_a_report_written_to_a_file(v1, tmp_path, monkeypatch):
    db = v1.data_dir / "appliance.db"
    insert_experiment(db, "exp_tui_a", [({"model": "a"}, {"accuracy": x}) for x in (0.80, 0.82, 0.81, 0.79)])
    insert_experiment(
        db,
        "exp_tui_b",
        [({"model": m}, {"accuracy": x}) for m, x in (("b", 0.90), ("b", 0.93), ("c", 0.91), ("c", 0.89))],
    )
    ours = await api(
        v1,
        lambda c: c.run_statistical_test(
            "mann_whitney_u", experiment_id="exp_tui_b", metric="accuracy", group_field="hyperparameters.model"
        ),
    )
    monkeypatch.chdir(tmp_path)
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_statistics(pilot, app)
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, CommentDialog) and isinstance(app.focused, Input))
        await type_text(pilot, "exp_tui_b")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.experiment_id == "exp_tui_b" and screen.loads >= 2)
        await wait_until(pilot, lambda: list(screen.results) == [ours.id])
        assert "experiment exp_tui_b" in screen_text(app)

        # The dialog starts from the experiment shown; the baseline goes first.
        await pilot.press("w")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ReportDialog) and app.screen)
        ids = dialog.query_one("#experiments", Input)
        assert ids.value == "exp_tui_b"
        ids.value = "exp_tui_a exp_tui_b"
        assert dialog.query_one("#path", Input).value == str(tmp_path / "comparison.html")
        await pilot.click("#write")
        await wait_until(pilot, lambda: screen.written)
        written = screen.written[0]
        assert written == tmp_path / "comparison.html"
        html = written.read_text()
        assert html.count("<svg") >= 2 and "exp_tui_a" in html

        await wait_until(pilot, lambda: isinstance(app.screen, StatisticsScreen))
        made = await api(v1, lambda c: c.export_comparison(["exp_tui_a", "exp_tui_b"], "html"))

        def without_time(text: str) -> list[str]:
            return [line for line in text.splitlines() if "Generated" not in line]

        assert without_time(html) == without_time(made.content.decode())
