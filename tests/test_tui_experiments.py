"""The Experiments screen (key E) on a real server: each action (start, pause, resume,
cancel, clone) from the TUI, checked through the API, and what the screen shows of a
finished code experiment (runs, the metric plot, checkpoints, the log); and that an
attached screen follows an experiment started elsewhere by the daemon's pushes alone."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from appliance.core.events import ExperimentProgress, ExperimentStatusChanged
from appliance.tui.experiment_channels import ExperimentPushes
from appliance.tui.feeds import RemoteFeed
from appliance.tui.screens import experiments as experiments_screen
from appliance.tui.screens.experiments import ExperimentsScreen
from appliance.tui.widgets.checkpoint_list import CheckpointList
from appliance.tui.widgets.confirm_dialog import ConfirmDialog
from appliance.tui.widgets.experiment_table import ExperimentTable
from appliance.tui.widgets.metric_plot import MetricPlot
from appliance.tui.widgets.run_log import RunLog
from appliance.tui.widgets.run_table import RunTable
from tests.experiments_support import start_v1_server
from tests.support import eventually_async
from tests.tui_support import api, screen_text, tui_for, wait_until

pytestmark = pytest.mark.slow

TRAINING = r"""
import json, os
hp = json.load(open("hyperparameters.json"))
os.makedirs("checkpoints", exist_ok=True)
for step in range(3):
    open(f"checkpoints/step_{step}.txt", "w").write(str(step))
    print(json.dumps({"metrics": {"loss": hp["lr"] / (step + 1)}, "step": step, "checkpoint": f"step_{step}.txt"}))
print("training done")
"""
SLOW = "import time\ntime.sleep(30)\n"


@pytest.fixture(scope="module")
def v1(runtime_images, tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("tui-experiments"))
    yield server
    server.stop()


async def make(server, name: str, code: str, grid: dict) -> str:
    config = {"type": "code", "language": "python", "code": code, "grid": grid}
    return (await api(server, lambda c: c.create_experiment(name, config)))["id"]


async def status_of(server, experiment_id: str) -> str:
    return (await api(server, lambda c: c.get_experiment(experiment_id)))["status"]


async def open_on(pilot, app, experiment_id: str) -> ExperimentsScreen:
    await pilot.press("E")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, ExperimentsScreen) and app.screen)
    table = screen.query_one(ExperimentTable)
    await wait_until(pilot, lambda: experiment_id in screen.experiments)
    table.move_cursor(row=table.get_row_index(experiment_id))
    await wait_until(pilot, lambda: (screen.detail or {}).get("id") == experiment_id)
    return screen


async def test_start_from_the_tui_and_see_runs_metrics_checkpoints_and_logs(v1):
    experiment_id = await make(v1, "tui-grid", TRAINING, {"lr": [0.1, 0.2]})
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_on(pilot, app, experiment_id)
        assert "g start" in screen_text(app)
        await pilot.press("g")
        await wait_until(pilot, lambda: (screen.detail or {}).get("status") == "completed", timeout=120)
        runs = screen.query_one(RunTable)
        await wait_until(pilot, lambda: runs.row_count == 2)
        await wait_until(pilot, lambda: screen.run is not None and screen.run.get("status") == "completed")
        plot = screen.query_one(MetricPlot)
        assert plot.metric == "loss" and [p["step"] for p in plot.history["loss"]] == [0, 1, 2]
        assert "step_2.txt" in str(screen.query_one(CheckpointList).render())
        assert any("training done" in message for _, message in screen.query_one(RunLog).shown)
        text = screen_text(app)
        assert "completed" in text and "100%" in text


async def test_pause_resume_and_cancel_from_the_tui(v1):
    experiment_id = await make(v1, "tui-slow", SLOW, {"x": [1, 2, 3]})
    await api(v1, lambda c: c.start_experiment(experiment_id))
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_on(pilot, app, experiment_id)
        await pilot.press("p")
        await wait_until(pilot, lambda: app.screen.detail and app.screen.detail["status"] == "paused")
        assert await status_of(v1, experiment_id) == "paused"
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen.detail and app.screen.detail["status"] == "running")
        assert await status_of(v1, experiment_id) == "running"
        screen = app.screen
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.detail and screen.detail["status"] == "cancelled", timeout=60)
        assert await status_of(v1, experiment_id) == "cancelled"


async def test_clone_from_the_tui(v1):
    experiment_id = await make(v1, "tui-original", TRAINING, {"lr": [0.5]})
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_on(pilot, app, experiment_id)
        before = set(screen.experiments)
        await pilot.press("o")
        new = await wait_until(pilot, lambda: set(screen.experiments) - before)
        (clone_id,) = new
        clone = await api(v1, lambda c: c.get_experiment(clone_id))
        assert clone["status"] == "pending" and clone["config"]["grid"] == {"lr": [0.5]}


async def test_an_attached_screen_follows_a_run_by_the_channels_not_by_polling(v1, monkeypatch):
    # An hour between polls: whatever the screen shows after the start came pushed.
    monkeypatch.setattr(experiments_screen, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(experiments_screen, "RESYNC_SECONDS", 3600.0)
    experiment_id = await make(v1, "tui-pushed", TRAINING, {"lr": [0.3]})
    app = tui_for(v1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_on(pilot, app, experiment_id)
        channels = app.backend.feed.experiments
        await wait_until(pilot, lambda: experiment_id in channels.joined and app.live.experiment_pushes)
        loads = screen.loads
        await api(v1, lambda c: c.start_experiment(experiment_id))  # not from the TUI: no reload of its own
        await wait_until(pilot, lambda: (screen.detail or {}).get("status") == "completed", timeout=120)
        assert screen.loads > loads
        assert screen.progress[experiment_id] == 1.0
        runs = screen.query_one(RunTable)
        await wait_until(pilot, lambda: screen.run is not None and screen.run.get("status") == "completed")
        assert runs.row_count == 1
        # Ended, the experiment is no longer followed: its channel is left.
        await wait_until(pilot, lambda: experiment_id not in channels.joined)


async def test_the_feed_joins_what_is_followed_and_rides_out_a_refused_join(v1):
    experiment_id = await make(v1, "feed-followed", SLOW, {"x": [1]})
    feed = RemoteFeed(v1.ws_url, v1.admin_key, open_timeout=2.0, backoff=(0.2,))
    channels = feed.experiments
    items: list = []
    task = asyncio.create_task(feed.run(items.append))
    try:
        # An experiment that does not exist: its join is refused, the others' go on.
        feed.follow_experiments([experiment_id, "exp_000000000000"])
        await eventually_async(lambda: ExperimentPushes(True) in items, message="pushes on")
        assert channels.joined == {experiment_id}
        await api(v1, lambda c: c.start_experiment(experiment_id))
        await eventually_async(
            lambda: any(isinstance(i, ExperimentStatusChanged) and i.status == "running" for i in items),
            message="status_changed running",
        )
        assert any(isinstance(i, ExperimentProgress) and i.experiment_id == experiment_id for i in items)
        feed.follow_experiments([])
        await eventually_async(lambda: not channels.joined, message="left")
        assert ExperimentPushes(False) not in items
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api(v1, lambda c: c.cancel_experiment(experiment_id))
