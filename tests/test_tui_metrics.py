"""The metrics screen against a real `appliance serve`: the last hour and the last day
from /api/metrics/performance, the range switch (key and palette), and the feed's
figures of the last minutes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from appliance.tui.performance_series import DAY, HOUR, series_from_report
from appliance.tui.screens.metrics import LIVE_PLOTS, RANGE_PLOTS, MetricsScreen
from appliance.tui.widgets.metric_sparkline import MetricSparkline
from tests.support import run_eval
from tests.tui_support import screen_text, tui_for, wait_until

SIZES = [(80, 24), (120, 40)]


async def open_metrics(app, pilot) -> MetricsScreen:
    await pilot.press("m")
    await wait_until(pilot, lambda: isinstance(app.screen, MetricsScreen))
    return app.screen


def loaded(screen: MetricsScreen, time_range) -> bool:
    return screen.series is not None and screen.series.time_range is time_range


@pytest.mark.parametrize("size", SIZES)
async def test_metrics_plot_the_last_hour_and_day_from_the_api(server, size):
    # An evaluation that ended just now is in both ranges.
    with server.admin() as http:
        finished = await asyncio.to_thread(run_eval, http, "print('metrics')")
    assert finished["status"] == "completed"

    app = tui_for(server)
    async with app.run_test(size=size) as pilot:
        screen = await open_metrics(app, pilot)
        await wait_until(pilot, lambda: loaded(screen, HOUR))
        hour = screen.series
        assert len(hour.executions) == HOUR.stretches
        # The stretches add up to the whole range, as the API counts it.
        assert sum(hour.executions) == hour.summary["execution_metrics"]["total_executions"] >= 1
        assert hour.executions[-1] >= 1  # it ended in the newest stretch
        assert any(value is not None for value in hour.cpu)  # samples were taken
        assert screen.query_one("#range-cpu", MetricSparkline).values == hour.cpu
        assert screen.query_one("#range-executions", MetricSparkline).values == hour.executions
        text = screen_text(app)
        assert "Last hour · 30 × 2 min" in text
        assert f"Executions {hour.summary['execution_metrics']['total_executions']} (avg" in text

        await pilot.press("w")
        await wait_until(pilot, lambda: loaded(screen, DAY))
        day = screen.series
        assert len(day.executions) == DAY.stretches
        assert sum(day.executions) == day.summary["execution_metrics"]["total_executions"]
        assert sum(day.executions) >= sum(hour.executions)
        assert "Last 24 hours · 48 × 30 min" in screen_text(app)

        await pilot.press("w")
        await wait_until(pilot, lambda: loaded(screen, HOUR))

        # Every plot is on the screen (the body scrolls if a terminal is shorter still).
        for selector in (*(f"#range-{key}" for key in RANGE_PLOTS), *(f"#live-{m}" for m in LIVE_PLOTS)):
            region = screen.query_one(selector).region
            assert region.area > 0 and screen.region.contains_region(region), (selector, region)


async def test_range_switch_and_refresh_from_the_palette_and_keys(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_metrics(app, pilot)
        await wait_until(pilot, lambda: loaded(screen, HOUR))
        titles = [title for title, _, _ in screen.palette_commands()]
        assert titles == ["Metrics: show the last 24 hours", "Metrics: refresh", "Metrics: next telemetry event name"]

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Metrics: show the last 24 hours")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: loaded(screen, DAY))

        before = screen.series
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.series is not before and loaded(screen, DAY))


async def test_live_plots_follow_the_feed(server):
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_metrics(app, pilot)
        cpu = screen.query_one("#live-cpu_usage", MetricSparkline)
        # Waited for, not asserted: a sample may be on its way from the feed to the screen.
        await wait_until(
            pilot,
            lambda: (
                len(cpu.values) >= 2
                and cpu.values == app.live.series("cpu_usage")
                and cpu.latest == app.live.latest["cpu_usage"]
            ),
        )
        assert f"CPU %  now {cpu.latest:.1f}" in screen_text(app)


def test_a_range_series_is_the_apis_stretches_oldest_first():
    stretches = [
        {"cpu_average": None, "memory_average": None, "executions": 0, "avg_execution_time": None},
        {"cpu_average": 30.0, "memory_average": 20.5, "executions": 2, "avg_execution_time": 1.5},
    ]
    report = {"samples": 10, "series": stretches}
    series = series_from_report(HOUR, report)
    assert series.cpu == [None, 30.0] and series.memory == [None, 20.5]
    assert series.executions == [0, 2] and series.run_time == [None, 1.5]
    assert series.summary is report


async def test_a_range_past_the_retention_is_refused_with_the_servers_message(fresh_server):
    server = fresh_server(env={"APPLIANCE_METRICS_RETENTION_HOURS": "12"})
    app = tui_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_metrics(app, pilot)
        await wait_until(pilot, lambda: loaded(screen, HOUR))
        await pilot.press("w")
        await wait_until(pilot, lambda: screen.load_failed)
        messages = [n.message for n in app._notifications]
        assert any("load the metrics of the last 24 hours" in m and "metrics_retention_hours" in m for m in messages), (
            messages
        )
        assert "Last 24 hours · 48 × 30 min · could not load" in screen_text(app)
        # Back to the hour, which the server keeps.
        await pilot.press("w")
        await wait_until(pilot, lambda: loaded(screen, HOUR) and not screen.load_failed)


async def test_a_telemetry_series_per_event_name(server):
    now = datetime.now(UTC)
    events = [
        {
            "event_name": ["tui", "series", "demo"],
            "measurements": {"n": n},
            "timestamp": (now - timedelta(minutes=n % 20)).isoformat(),
        }
        for n in range(37)
    ]
    with server.admin() as http:
        response = http.post("/api/v1/telemetry/events", json={"events": events})
        assert response.status_code == 202 and response.json()["data"]["accepted"] == 37, response.text

    app = tui_for(server)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_metrics(app, pilot)
        await wait_until(pilot, lambda: screen.telemetry is not None)
        assert screen.telemetry.event_name is None and screen.telemetry.total >= 37
        assert "tui.series.demo" in screen.telemetry.names
        for _ in range(len(screen.telemetry.names) + 1):
            if screen.telemetry.event_name == "tui.series.demo":
                break
            before = screen.telemetry
            await pilot.press("e")
            await wait_until(pilot, lambda before=before: screen.telemetry is not before)
        series = screen.telemetry
        assert series.event_name == "tui.series.demo" and series.total == 37
        assert len(series.values) <= HOUR.stretches + 1 and series.interval == "2m"
        plot = screen.query_one("#telemetry-events", MetricSparkline)
        assert plot.values == series.values and "tui.series.demo" in plot.title
        assert "Telemetry · 37 events" in screen_text(app)
