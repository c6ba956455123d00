"""The dashboard against a real `appliance serve`: live gauges from the feed, version,
uptime and warm pool from /api/status, executions and latency from finished
evaluations, open alerts from /api/alerts kept current by the feed."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App, ComposeResult

from appliance import __version__
from appliance.client import ApplianceClient
from appliance.tui.execution_history import ExecutionHistory
from appliance.tui.screens.dashboard import DashboardScreen
from appliance.tui.widgets.gauge import Gauge
from appliance.tui.widgets.metric_sparkline import MetricSparkline
from appliance.tui.widgets.pool_sizes_table import PoolSizesTable, image_label
from tests.tui_support import screen_text, tui_for, wait_until

SIZES = [(80, 24), (120, 40)]
PANELS = (
    "#dashboard-summary",
    "#gauge-cpu_usage",
    "#gauge-memory_usage",
    "#gauge-disk_usage",
    "#dashboard-queue",
    "#spark-executions",
    "#spark-latency",
    "#spark-queue_depth",
    "#spark-running_executions",
    "#dashboard-hour",
    "#pool-sizes",
)
# One rule that always holds (CPU at or above 0%) and no other: exactly one open alert.
ONE_ALERT_ENV = {
    "APPLIANCE_ALERT_CPU_PERCENT": "0",
    "APPLIANCE_ALERT_CPU_FOR_SECONDS": "0",
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "1",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "1",
    "APPLIANCE_ALERT_DISABLED_RULES": "memory_usage,disk_usage,queue_depth,failure_rate,engine_unreachable",
}


def admin_client(server) -> ApplianceClient:
    return ApplianceClient(server.url, api_key=server.admin_key)


@pytest.mark.parametrize("size", SIZES)
async def test_dashboard_shows_version_live_gauges_and_the_warm_pool(server, size):
    app = tui_for(server)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        cpu = screen.query_one("#gauge-cpu_usage", Gauge)
        await wait_until(pilot, lambda: app.live.connected and cpu.value is not None)
        await wait_until(pilot, lambda: screen.status is not None and screen.alerts_loaded)

        text = screen_text(app)
        assert f"appliance v{__version__}" in text
        assert " · up " in text
        assert f"{cpu.value:.1f}%" in text  # the gauge shows the feed's figure
        # (waited for, not asserted: a sample may be in flight between feed and screen)
        await wait_until(pilot, lambda: cpu.value == app.live.latest["cpu_usage"])

        # One row per runtime image, as /api/status lists the pool.
        with admin_client(server) as client:
            pool = (await asyncio.to_thread(client.platform_status))["sandbox_pool"]
        table = screen.query_one(PoolSizesTable)
        assert [key.value for key in table.rows] == list(dict.fromkeys(lane["image"] for lane in pool))
        assert any(image_label(lane["image"]) in text for lane in pool)

        # Everything fits on the screen, 80x24 included.
        for selector in PANELS:
            region = screen.query_one(selector).region
            assert region.area > 0 and screen.region.contains_region(region), (selector, region)


@pytest.mark.parametrize("size", SIZES)
async def test_a_finished_evaluation_shows_in_executions_latency_and_the_hour(server, size):
    app = tui_for(server)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: app.live.connected and screen.hour is not None)
        seen_before = screen.executions.seen
        with admin_client(server) as client:
            submitted = await asyncio.to_thread(client.submit_evaluation, "python", "print('dashboard')")
            await wait_until(pilot, lambda: screen.executions.seen > seen_before)
            status = await asyncio.to_thread(client.evaluation_status, submitted["eval_id"])
        assert status["status"] == "completed"

        latency = screen.query_one("#spark-latency", MetricSparkline)
        assert status["execution_time"] in latency.values
        per_minute = screen.query_one("#spark-executions", MetricSparkline)
        assert per_minute.latest >= 1 and sum(v for v in per_minute.values if v) >= 1
        assert "Executions/min  now " in screen_text(app)

        # The last hour's figures are asked for again after an evaluation ends.
        with admin_client(server) as client:
            hour = await asyncio.to_thread(client.performance, "1h")
        total = hour["execution_metrics"]["total_executions"]
        await wait_until(pilot, lambda: screen.hour["execution_metrics"]["total_executions"] == total)
        assert f"Last hour: {total} execution" in screen_text(app)


async def test_evaluations_that_end_while_another_screen_is_shown_still_count(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.live.connected)
        await pilot.press("a")  # the alerts screen: the dashboard gets no feed items now
        seen_before = app.live.executions.seen
        with admin_client(server) as client:
            submitted = await asyncio.to_thread(client.submit_evaluation, "python", "print('elsewhere')")
            await wait_until(pilot, lambda: app.live.executions.seen > seen_before)
            status = await asyncio.to_thread(client.evaluation_status, submitted["eval_id"])
        await pilot.press("d")
        await pilot.pause(0.2)
        latency = app.screen.query_one("#spark-latency", MetricSparkline)
        assert status["execution_time"] in latency.values


async def test_open_alerts_count_comes_from_the_api_and_follows_the_feed(fresh_server):
    server = fresh_server(env=ONE_ALERT_ENV)
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.open_alerts) == 1)
        assert "1 open alert" in screen_text(app)
        with admin_client(server) as client:
            (alert,) = await asyncio.to_thread(client.list_alerts)
            assert list(screen.open_alerts) == [alert["alert_id"]]
            await asyncio.to_thread(client.acknowledge_alert, alert["alert_id"], "on it")
        # No request from the TUI needed: the feed's alert event changes the count's text.
        await wait_until(pilot, lambda: screen.open_alerts.get(alert["alert_id"]) == "acknowledged")
        assert "1 open alert (1 acknowledged)" in screen_text(app)


async def test_refresh_key_and_palette_command_reload(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.status is not None and screen.hour is not None)
        # The last hour is asked for every 30 s at most unless something ended, so a new
        # load within this test is the refresh's.
        before = screen.hour_at
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.hour_at > before)
        assert [title for title, _, _ in screen.palette_commands()] == ["Dashboard: refresh"]

        before = screen.hour_at
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Dashboard: refresh")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.hour_at > before)


async def test_dashboard_catches_up_after_another_screen(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: app.live.connected and screen.status is not None)
        await pilot.press("m")
        await wait_until(pilot, lambda: app.screen is not screen)
        # Feed items reach only the screen shown; the dashboard reads the app's memory
        # of them when it comes back.
        samples = len(app.live.series("cpu_usage"))
        await wait_until(pilot, lambda: len(app.live.series("cpu_usage")) > samples)
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen is screen)
        cpu = screen.query_one("#gauge-cpu_usage", Gauge)
        await wait_until(pilot, lambda: cpu.value == app.live.latest["cpu_usage"])
        queue = screen.query_one("#spark-queue_depth", MetricSparkline)
        await wait_until(pilot, lambda: queue.values == app.live.series("queue_depth")[-len(queue.values) :])


def test_execution_history_counts_per_clock_minute_since_watching_began():
    now = [600.0]  # 10:00 in seconds of a day; a clock the test moves
    history = ExecutionHistory(clock=lambda: now[0])
    history.record(0.5)
    now[0] = 630.0
    history.record(None)  # killed before it ran: counted, no run time
    now[0] = 665.0
    history.record(1.25)
    assert history.per_minute(minutes=4) == [None, None, 2, 1]  # not watched before minute 10
    assert history.last_minute() == 2  # 630 and 665; 600 is more than 60 s ago
    assert list(history.run_times) == [0.5, 1.25]
    now[0] = 600.0 + 45 * 60
    assert history.per_minute(minutes=30) == [0] * 30
    assert history.last_minute() == 0


class OnePoolTable(App[None]):
    def compose(self) -> ComposeResult:
        yield PoolSizesTable()


async def test_pool_table_has_its_header_with_no_pool_and_follows_the_engines():
    python = {"image": "appliance-runtime-python:bookworm-1", "language": "python", "idle": 1, "target": 2}
    async with OnePoolTable().run_test() as pilot:
        table = pilot.app.query_one(PoolSizesTable)

        def labels() -> list[str]:
            return [column.label.plain for column in table.columns.values()]

        table.show([])  # no engine has a pool (yet): the header still says what would be here
        assert labels() == ["Image", "Languages"] and table.row_count == 0
        table.show([{**python, "engine": "docker"}])
        assert labels() == ["Image", "Languages", "docker"] and table.row_count == 1
        table.show([{**python, "engine": "docker", "idle": 2}])  # same layout: changed in place
        assert table.get_cell("appliance-runtime-python:bookworm-1", "docker").plain == "2/2"
        table.show([])
        assert labels() == ["Image", "Languages"] and table.row_count == 0
