"""Metrics: the last hour or day from the API, and the feed's figures of the last
minutes.

The range plots come from one GET /api/metrics/performance?points=N (its `series`: the
range in N stretches). They are loaded on showing, on a range switch, on `r` and every
minute while the screen is shown; the live plots follow the feed, no requests.

A telemetry series is loaded with them (GET /api/v1/telemetry/aggregate, points=N): the
events per stretch, of every name or of one; `e` steps through the names the range
holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from appliance.tui.live import FEED_INTERVAL_SECONDS, MetricSample
from appliance.tui.performance_series import DAY, HOUR, RangeSeries, TimeRange, load_range
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.telemetry_series import ALL_EVENTS, TelemetrySeries, load_telemetry
from appliance.tui.widgets.metric_sparkline import MetricSparkline, format_number, format_percent, format_seconds

RANGE_REFRESH_SECONDS = 60.0
# How a plot's figures read, and the top of its scale (None: the series' highest).
PERCENT = (format_percent, 100.0)
COUNT = (format_number, None)
RUN_TIME = (format_seconds, None)
# The range's plots: RangeSeries field -> (title, how it reads).
RANGE_PLOTS = {
    "cpu": ("CPU avg %", PERCENT),
    "memory": ("Memory avg %", PERCENT),
    "executions": ("Executions", COUNT),
    "run_time": ("Avg run time", RUN_TIME),
}
# The feed's figures plotted live: metric -> (title, how it reads).
LIVE_PLOTS = {
    "cpu_usage": ("CPU %", PERCENT),
    "memory_usage": ("Memory %", PERCENT),
    "disk_usage": ("Disk %", PERCENT),
    "queue_depth": ("Queue depth", COUNT),
    "running_executions": ("Running", COUNT),
    "active_containers": ("Containers", COUNT),
    "pool_idle": ("Warm, idle", COUNT),
    "failure_rate": ("Failed %", PERCENT),
}


class MetricsScreen(ApplianceScreen[None]):
    TITLE = "Metrics"
    BINDINGS = [
        Binding("w", "toggle_range", "1h/24h"),
        Binding("e", "next_event_name", "Event name"),
        Binding("r", "refresh", "Refresh"),
    ]
    DEFAULT_CSS = """
    MetricsScreen #metrics-body { height: 1fr; padding: 0 1; }
    MetricsScreen .metrics-heading { height: 1; text-style: bold; color: $accent; text-wrap: nowrap; }
    MetricsScreen #range-summary { height: auto; color: $text-muted; }
    MetricsScreen .metrics-grid {
        grid-size: 2;
        grid-rows: 2;
        grid-gutter: 0 2;
        height: auto;
        margin-bottom: 1;
    }
    MetricsScreen.-roomy .metrics-grid { grid-rows: 4; }
    MetricsScreen.-roomy MetricSparkline { height: 4; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.time_range: TimeRange = HOUR
        self.series: RangeSeries | None = None
        self.load_failed = False  # the last load of this range failed
        self.loaded: asyncio.Event | None = None  # set when the load under way ends
        self.loading_range: TimeRange | None = None
        self.event_name: str | None = ALL_EVENTS  # the telemetry series shown
        self.telemetry: TelemetrySeries | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="metrics-body"):
            yield Static(id="range-heading", classes="metrics-heading")
            yield Static(id="range-summary")
            with Grid(classes="metrics-grid"):
                for key, (title, (formatter, ceiling)) in RANGE_PLOTS.items():
                    yield MetricSparkline(title, formatter=formatter, ceiling=ceiling, id=f"range-{key}")
            yield Static("Telemetry", id="telemetry-heading", classes="metrics-heading")
            yield MetricSparkline("Events", formatter=format_number, id="telemetry-events")
            yield Static(
                f"Live · from the feed every {FEED_INTERVAL_SECONDS:g} s, up to the last hour",
                id="live-heading",
                classes="metrics-heading",
            )
            with Grid(classes="metrics-grid"):
                for metric, (title, (formatter, ceiling)) in LIVE_PLOTS.items():
                    yield MetricSparkline(title, formatter=formatter, ceiling=ceiling, id=f"live-{metric}")

    def on_mount(self) -> None:
        self.range_timer = self.set_interval(RANGE_REFRESH_SECONDS, self.tick)
        self.show_heading()
        self.show_live()

    def on_screen_suspend(self) -> None:
        self.range_timer.pause()

    def on_screen_resume(self) -> None:
        self.range_timer.resume()
        self.show_live()

    def on_resize(self) -> None:
        self.set_class(self.size.height >= 34, "-roomy")

    # --- the range ----------------------------------------------------------------------

    async def refresh_data(self) -> None:
        """Showing the screen both mounts and resumes it, and each asks for a refresh:
        a load of the same range already under way is joined, not repeated. The load
        is its own worker, so it finishes even when this call is cancelled."""
        time_range = self.time_range
        if self.loaded is None or self.loaded.is_set() or self.loading_range is not time_range:
            self.loading_range, self.loaded = time_range, asyncio.Event()
            self.run_worker(self.load(time_range, self.loaded), group="range-load")
        await self.loaded.wait()

    async def load(self, time_range: TimeRange, loaded: asyncio.Event) -> None:
        try:
            series = await self.app.api(
                lambda c: load_range(c, time_range), action=f"load the metrics of the {time_range.title.lower()}"
            )
        finally:
            loaded.set()
        if time_range is not self.time_range:
            return  # the range changed meanwhile; its own load is under way
        if series is None:  # the notification says why
            self.load_failed = True
            self.show_heading()
            return
        self.load_failed = False
        self.series = series
        self.show_range()
        await self.load_telemetry(time_range)

    async def load_telemetry(self, time_range: TimeRange) -> None:
        event_name = self.event_name
        found = await self.app.api(
            lambda c: load_telemetry(c, time_range, event_name), action="load the telemetry series"
        )
        if found is None or time_range is not self.time_range or event_name != self.event_name:
            return
        self.telemetry = found
        self.show_telemetry()

    def show_telemetry(self) -> None:
        series = self.telemetry
        if series is None:
            return
        heading = Text(f"Telemetry · {series.total} events", no_wrap=True)
        heading.append(f"   (e: {len(series.names)} event names)", style="dim")
        self.query_one("#telemetry-heading", Static).update(heading)
        plot = self.query_one("#telemetry-events", MetricSparkline)
        plot.title = series.title
        plot.show(list(series.values), series.values[-1] if series.values else None)

    def tick(self) -> None:
        if self.app.live.connected:
            self.action_refresh()

    def show_heading(self) -> None:
        other = DAY if self.time_range is HOUR else HOUR
        text = Text(f"{self.time_range.title} · {self.time_range.stretch_text}", no_wrap=True)
        if self.series is not None and self.series.time_range is self.time_range:
            text.append(f" · {self.series.summary.get('samples', 0)} samples")
        else:
            text.append(" · could not load" if self.load_failed else " · loading…")
        text.append(f"   (w: {other.duration})", style="dim")
        self.query_one("#range-heading", Static).update(text)

    def show_range(self) -> None:
        self.show_heading()
        series = self.series
        if series is None:
            return
        for key in RANGE_PLOTS:
            values = getattr(series, key)
            latest = next((v for v in reversed(values) if v is not None), None)
            self.query_one(f"#range-{key}", MetricSparkline).show(values, latest)
        self.query_one("#range-summary", Static).update(summary_text(series.summary))

    # --- live ---------------------------------------------------------------------------

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, MetricSample) and item.metric in LIVE_PLOTS:
            self.show_live(item.metric)

    def show_live(self, metric: str | None = None) -> None:
        live = self.app.live
        for name in LIVE_PLOTS:
            if metric in (None, name):
                self.query_one(f"#live-{name}", MetricSparkline).show(live.series(name), live.latest.get(name))

    # --- actions ------------------------------------------------------------------------

    def action_toggle_range(self) -> None:
        self.time_range = DAY if self.time_range is HOUR else HOUR
        self.load_failed = False
        self.show_heading()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def action_next_event_name(self) -> None:
        """All names, then each name of the range in turn, then all again."""
        names = [ALL_EVENTS, *(self.telemetry.names if self.telemetry is not None else [])]
        at = names.index(self.event_name) if self.event_name in names else 0
        self.event_name = names[(at + 1) % len(names)]
        time_range = self.time_range
        self.run_worker(self.load_telemetry(time_range), group="telemetry-load", exclusive=True)

    def palette_commands(self) -> Iterable[PaletteCommand]:
        other = DAY if self.time_range is HOUR else HOUR
        yield (
            f"Metrics: show the {other.title.lower()}",
            "Switch the range plots between the last hour and the last 24 hours (key w)",
            self.action_toggle_range,
        )
        yield ("Metrics: refresh", "Reload the range plots from the API (key r)", self.action_refresh)
        yield (
            "Metrics: next telemetry event name",
            "Plot the events of the next event name of the range, or all of them (key e)",
            self.action_next_event_name,
        )


def summary_text(report: dict[str, Any]) -> Text:
    """The whole range in two lines: CPU and memory now/average/peak; containers and
    evaluations."""

    def figure(value: Any, unit: str = "") -> str:
        if value is None:
            return "—"
        return f"{value:.1f}%" if unit == "%" else f"{value:g}{unit}"

    cpu, memory = report.get("cpu_usage") or {}, report.get("memory_usage") or {}
    containers, runs = report.get("container_metrics") or {}, report.get("execution_metrics") or {}
    text = Text()
    for label, part in (("CPU", cpu), ("Memory", memory)):
        text.append(f"{label} " if label == "CPU" else f"   {label} ", style="bold")
        text.append(
            f"now {figure(part.get('current'), '%')} avg {figure(part.get('average'), '%')} "
            f"peak {figure(part.get('peak'), '%')}"
        )
    text.append("\nContainers ", style="bold")
    startup = containers.get("avg_startup_time")
    text.append(
        f"{figure(containers.get('total_containers'))} ({figure(containers.get('running_containers'))} "
        f"running, start {'—' if startup is None else format_seconds(startup)})   "
    )
    text.append("Executions ", style="bold")
    run_time = runs.get("avg_execution_time")
    average = "—" if run_time is None else format_seconds(run_time)
    text.append(f"{figure(runs.get('total_executions'))} (avg {average}, {figure(runs.get('success_rate'), '%')} ok)")
    return text
