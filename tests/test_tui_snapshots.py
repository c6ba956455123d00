"""SVG snapshots of every TUI screen at 80x24 and 120x40 (pytest-textual-snapshot).

The app is the real one, attached through the real `ApplianceClient` to a replay of the
REST API (tests/tui_replay.py: responses a real server gave, with times, ids and noisy
figures made constant) and fed by `StaticFeed` (two fixed minutes of figures), so the
pictures are the same on every run. After a deliberate change of the screens:

    .venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update

and look at the SVGs that changed (tests/__snapshots__/test_tui_snapshots/) before
committing them. When a screen starts making a request that was not captured, the test
names it: add it to REQUESTS in tests/tui_capture.py and run that module again.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.worker import WorkerState

from appliance.client import ApplianceClient
from appliance.core.cluster import ClusterView
from appliance.tui.app import ApplianceTui, create_tui
from appliance.tui.backend import Backend
from appliance.tui.execution_history import ExecutionHistory
from appliance.tui.feeds import Sink
from appliance.tui.live import FEED_METRICS, Connected, MetricSample
from appliance.tui.performance_series import HOUR
from appliance.tui.screens import alerts, evaluations, experiments, llm_eval, sandboxes, statistics
from appliance.tui.widgets.cluster_nodes_table import ClusterNodesTable
from appliance.tui.widgets.pool_sizes_table import PoolSizesTable
from appliance.tui.widgets.secret_dialog import SecretDialog
from tests.support import eventually_async
from tests.tui_replay import ReplayServer, load_ids
from tests.tui_support import wait_until

LABEL = "http://appliance.test:8080"  # what the header says the TUI is attached to
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
FIXED_CLOCK = 1_736_933_430.0  # 2025-01-15T09:30:30Z, inside the fixtures' minute
HISTORY = 60  # samples per figure: two minutes at the feed's 2 s
IDS = load_ids()
SECRET = f"ak_{IDS['key_ci'].removeprefix('key_')}_Xq3vN8rT2mLw9pKs4bZe7yHc1dGf6jUa"  # the form of a real one


# --- the feed ------------------------------------------------------------------------------


def figure(metric: str, i: int) -> float:
    """Sample `i` (0 = oldest) of a smooth, fixed curve per figure; the last ones agree
    with the captured /api/metrics/performance and /api/status."""
    back = HISTORY - 1 - i  # samples before the latest
    curves = {
        "cpu_usage": 23.4 + 9 * math.sin(back / 6) + 4 * math.sin(back / 2.3),
        "memory_usage": 41.3 - 1.5 * math.sin(back / 9),
        "disk_usage": 26.3 - 0.01 * back,
        "active_containers": 14 + (back // 12) % 3,
        "pool_idle": 12 - (back % 9 == 4),
        "queue_depth": max(0, round(3 * math.sin(back / 5))),
        "running_executions": 1 + (back // 7) % 3,
        "finished_executions": 7,
        "failure_rate": 28.6,
        "engine_reachable": 1,
    }
    return round(float(curves[metric]), 1)


def sample_time(i: int) -> str:
    """UTC times 2 s apart, the latest at 09:30:58 on the captured day."""
    second = 9 * 3600 + 30 * 60 + 58 - 2 * (HISTORY - 1 - i)
    return f"2025-01-15T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z"


class StaticFeed:
    """A feed (appliance/tui/feeds.py `Feed`) that connects, delivers a fixed history of
    every figure and then stays connected and silent."""

    async def run(self, sink: Sink) -> None:
        sink(Connected())
        for i in range(HISTORY):
            for metric in FEED_METRICS:
                sink(MetricSample(metric, figure(metric, i), sample_time(i)))
        await asyncio.Event().wait()  # until the app cancels the feed

    def follow_experiments(self, experiment_ids) -> None:
        """Nothing to follow: the screens show the captured answers."""


# --- the app and waiting for it --------------------------------------------------------------


@pytest.fixture
def replay():
    with ReplayServer() as server:
        yield server
    assert not server.missing, f"requests with no captured response: {sorted(set(server.missing))}"


def snapshot_app(replay: ReplayServer, *, dark: bool = True) -> ApplianceTui:
    # The admin's key in its real form, so the keys screen marks the admin key as its own.
    api_key = f"ak_{IDS['key_admin'].removeprefix('key_')}_replay"
    backend = Backend(ApplianceClient(replay.url, api_key=api_key), StaticFeed(), label=LABEL)
    app = create_tui(backend, dark=dark)
    # The dashboard's executions/min counts the minutes of the TUI's own clock: a fixed
    # one, or a picture taken across a minute's turn would have one bar more.
    app.live.executions = ExecutionHistory(clock=lambda: FIXED_CLOCK)
    return app


async def settle(pilot: Pilot, replay: ReplayServer) -> None:
    """Wait until the screen on top has no busy worker and no request came in for a few
    pauses in a row. (The feed's worker runs for ever, and so does a screen's worker that
    waits for the answer of a dialog on top of it.)"""
    quiet, seen = 0, -1

    def quiet_for_a_while() -> bool:
        nonlocal quiet, seen
        busy = any(
            w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in pilot.app.workers
            if w.node is pilot.app.screen
        )
        answered = len(replay.served) + len(replay.missing)
        quiet = quiet + 1 if not busy and answered == seen else 0
        seen = answered
        return quiet >= 3

    await pilot.pause(0.05)
    await eventually_async(quiet_for_a_while, interval=0.05, sleep=pilot.pause, message="the screen done loading")
    await pilot.wait_for_scheduled_animations()


def show(
    replay: ReplayServer, mode: str, *wanted: str, then: Callable[[Pilot], Awaitable[None]] | None = None
) -> Callable[[Pilot], Awaitable[None]]:
    """run_before for snap_compare: switch to `mode`, wait until each `wanted` request
    (e.g. "GET /api/alerts") was answered and the screen is quiet, then `then`."""

    async def run_before(pilot: Pilot) -> None:
        if mode == "dashboard":  # shown first
            await wait_until(pilot, lambda: all(replay.count(k) for k in wanted))
        else:
            await settle(pilot, replay)  # the dashboard, shown first, is done loading
            before = {key: replay.count(key) for key in wanted}
            await pilot.app.switch_mode(mode)
            await wait_until(pilot, lambda: all(replay.count(k) > before[k] for k in wanted))
        await settle(pilot, replay)
        if then is not None:
            await then(pilot)
            await settle(pilot, replay)
        for widget in pilot.app.screen.query("*"):
            if hasattr(widget, "cursor_blink"):  # an Input's cursor blinks every 0.5 s: still it
                widget.cursor_blink = False
        await pilot.pause()

    return run_before


# --- the screens -----------------------------------------------------------------------------

# mode -> the requests whose answers the screen shows (with the screens' own parameters)
SCREEN_REQUESTS = {
    "dashboard": ("GET /api/status", "GET /api/alerts", "GET /api/metrics/performance?duration=1h"),
    "evaluations": (f"GET /api/evaluations?limit={evaluations.LIST_LIMIT}&offset=0",),
    "alerts": (f"GET /api/alerts?limit={alerts.LIST_LIMIT}",),
    "metrics": (f"GET /api/metrics/performance?duration={HOUR.duration}&points={HOUR.stretches}",),
    "sandboxes": (
        f"GET /api/sandboxes?limit={sandboxes.LIST_LIMIT}",
        f"GET /api/sandboxes/{IDS['sandbox']}",
        f"GET /api/sandboxes/{IDS['sandbox']}/snapshots",
    ),
    "keys": ("GET /auth/api-keys",),
    # The newest (a finished 2x2 grid) selected, and its first run (tests/tui_capture_experiments.py).
    "experiments": (
        f"GET /api/v1/experiments?per_page={experiments.LIST_SIZE}&sort=-created_at",
        f"GET /api/v1/experiments/{IDS['experiment_grid']}",
        f"GET /api/v1/runs/{IDS['run_first']}/logs?tail={experiments.LOG_TAIL}",
    ),
    "statistics": (f"GET /api/v1/statistical-results?per_page={statistics.PAGE}&sort=-created_at",),
    "llm": (
        f"GET /api/v1/benchmark?limit={llm_eval.RESULTS_LIMIT}&offset=0",
        f"GET /api/v1/leaderboard?dataset=demo_multiple_choice&top={llm_eval.LEADERBOARD_TOP}",
    ),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", SCREEN_REQUESTS)
def test_screen(mode, size, replay, snap_compare):
    app = snapshot_app(replay)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=show(replay, mode, *SCREEN_REQUESTS[mode]))


@pytest.mark.parametrize("size", SIZES)
def test_evaluation_detail(size, replay, snap_compare):
    """A finished evaluation: its facts, limits and accounting, and its output."""
    primes = IDS["eval_primes"]

    async def open_detail(pilot: Pilot) -> None:
        await pilot.press("down", "enter")  # the newest is still running; the one below it finished
        await wait_until(pilot, lambda: replay.count(f"GET /api/eval/{primes}/logs"))

    app = snapshot_app(replay)
    assert snap_compare(
        app,
        terminal_size=SIZES[size],
        run_before=show(replay, "evaluations", *SCREEN_REQUESTS["evaluations"], then=open_detail),
    )


@pytest.mark.parametrize("size", SIZES)
def test_light_theme(size, replay, snap_compare):
    app = snapshot_app(replay, dark=False)
    assert snap_compare(
        app, terminal_size=SIZES[size], run_before=show(replay, "dashboard", *SCREEN_REQUESTS["dashboard"])
    )


# --- the dialogs -------------------------------------------------------------------------------


def press_for_dialog(*keys: str) -> Callable[[Pilot], Awaitable[None]]:
    async def open_dialog(pilot: Pilot) -> None:
        await pilot.press(*keys)
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ModalScreen))

    return open_dialog


# name -> (mode, keys that open it): each dialog over the screen it belongs to
DIALOGS = {
    "acknowledge-alert": ("alerts", ("c",)),  # the selected (newest) alert is active
    "create-key": ("keys", ("n",)),
    "revoke-key": ("keys", ("down", "x")),  # ci-runner
    "create-sandbox": ("sandboxes", ("n",)),  # loads the templates first
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dialog", DIALOGS)
def test_dialog(dialog, size, replay, snap_compare):
    mode, keys = DIALOGS[dialog]
    app = snapshot_app(replay)
    assert snap_compare(
        app,
        terminal_size=SIZES[size],
        run_before=show(replay, mode, *SCREEN_REQUESTS[mode], then=press_for_dialog(*keys)),
    )


@pytest.mark.parametrize("size", SIZES)
def test_secret_dialog(size, replay, snap_compare):
    """What creating a key shows once (pushed as the keys screen pushes it: a create is a
    POST, which the replay does not answer)."""

    async def show_secret(pilot: Pilot) -> None:
        pilot.app.push_screen(SecretDialog(f"New API key {IDS['key_ci']} (ci-runner)", SECRET))
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, SecretDialog))

    app = snapshot_app(replay)
    assert snap_compare(
        app, terminal_size=SIZES[size], run_before=show(replay, "keys", *SCREEN_REQUESTS["keys"], then=show_secret)
    )


# --- cluster mode ---------------------------------------------------------------------------

# The `cluster` object of /api/status in cluster mode, two nodes (docs/cluster.md): laid
# over the captured status, as the captured appliance ran on one machine.
CLUSTER_STATUS = Path(__file__).with_name("tui_cluster_status.json")


def in_cluster_mode(replay: ReplayServer) -> None:
    cluster = json.loads(CLUSTER_STATUS.read_text())
    # The server's own type of it: the fixture holds exactly what a head sends.
    assert msgspec.to_builtins(msgspec.convert(cluster, ClusterView)) == cluster
    status, body = replay.responses["GET /api/status"]
    replay.responses["GET /api/status"] = (status, json.dumps({**json.loads(body), "cluster": cluster}).encode())


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_in_cluster_mode(size, replay, snap_compare):
    """The nodes in the warm pool's place: state, slots busy/total per engine, runs done."""
    in_cluster_mode(replay)
    app = snapshot_app(replay)
    assert snap_compare(
        app, terminal_size=SIZES[size], run_before=show(replay, "dashboard", *SCREEN_REQUESTS["dashboard"])
    )


async def test_dashboard_lists_the_nodes_in_cluster_mode(replay):
    in_cluster_mode(replay)
    app = snapshot_app(replay)
    async with app.run_test(size=(120, 40)) as pilot:
        await show(replay, "dashboard", *SCREEN_REQUESTS["dashboard"])(pilot)
        table = app.screen.query_one(ClusterNodesTable)
        assert table.display and not app.screen.query_one(PoolSizesTable).display
        assert [k.value for k in table.columns] == ["Node", "State", "docker", "gvisor", "Done"]
        rows = [[str(cell) for cell in table.get_row(k)] for k in table.rows]
        assert rows == [["gpu-01", "up", "5/8", "—", "1423"], ["gpu-02", "draining", "8/8", "1/2", "1387"]]
        assert "1/2 nodes up" in str(app.screen.query_one("#dashboard-summary").render())
