"""The dashboard: the appliance at a glance.

Live figures (CPU, memory and disk gauges, queue depth, running executions, containers)
come from the feed every 2 s, and so do finished evaluations and alert changes. The
API is asked only for what the feed does not carry, and only while the screen is shown:
version, uptime, health and the warm pool, or in cluster mode the nodes in its place
(GET /api/status, every 10 s), the last hour's executions (GET /api/metrics/performance,
every 30 s or sooner after one ends) and the open alerts (GET /api/alerts, on showing
and after a reconnect; the feed keeps them).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from appliance import __version__
from appliance.core.events import AlertEvent, Completed
from appliance.tui.execution_history import ExecutionHistory
from appliance.tui.live import MetricSample
from appliance.tui.screens.base import ApplianceScreen, LiveUpdate, PaletteCommand
from appliance.tui.widgets.cluster_nodes_table import ClusterNodesTable
from appliance.tui.widgets.gauge import Gauge
from appliance.tui.widgets.metric_sparkline import MetricSparkline, format_seconds
from appliance.tui.widgets.pool_sizes_table import PoolSizesTable

STATUS_REFRESH_SECONDS = 10.0
PERFORMANCE_REFRESH_SECONDS = 30.0
LIVE_SPARKLINE_POINTS = 900  # the last 30 minutes of 2-second samples
EXECUTION_MINUTES = 30
LATENCY_POINTS = 60  # run times of the last executions seen
GAUGES = {"cpu_usage": "CPU", "memory_usage": "Memory", "disk_usage": "Disk"}
OPEN_ALERT_STATUSES = ("active", "acknowledged")
QUEUE_FIGURES = (
    ("queue_depth", "Queue depth"),
    ("running_executions", "Running"),
    ("active_containers", "Containers"),
    ("pool_idle", "Warm, idle"),
)


def format_uptime(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class DashboardScreen(ApplianceScreen[None]):
    TITLE = "Dashboard"
    BINDINGS = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    DashboardScreen #dashboard-body { height: 1fr; padding: 0 1; }
    DashboardScreen #dashboard-summary { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    DashboardScreen #dashboard-figures { height: 4; margin-top: 1; }
    DashboardScreen #dashboard-gauges { width: 1fr; height: 4; padding-right: 2; }
    DashboardScreen #dashboard-queue { width: 1fr; height: 4; }
    DashboardScreen .sparkline-row { height: auto; margin-top: 1; }
    DashboardScreen #dashboard-hour { height: 1; margin-top: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    DashboardScreen PoolSizesTable, DashboardScreen ClusterNodesTable { margin-top: 1; }
    DashboardScreen ClusterNodesTable { display: none; }
    DashboardScreen.-cluster ClusterNodesTable { display: block; }
    DashboardScreen.-cluster PoolSizesTable { display: none; }
    DashboardScreen.-roomy MetricSparkline { height: 4; }
    DashboardScreen.-roomy PoolSizesTable, DashboardScreen.-roomy ClusterNodesTable {
        height: auto;
        max-height: 100%;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.open_alerts: dict[str, str] = {}  # alert_id -> status, for active and acknowledged
        self.alert_changes_meanwhile: dict[str, str] | None = None  # while the list loads
        self.alerts_loaded = False
        self.status: dict[str, Any] | None = None
        self.status_at = 0.0  # time.monotonic() when `status` arrived, to run uptime on
        self.hour: dict[str, Any] | None = None
        self.hour_at = 0.0
        self.hour_stale = True

    def compose_body(self) -> ComposeResult:
        with Vertical(id="dashboard-body"):
            yield Static(id="dashboard-summary")
            with Horizontal(id="dashboard-figures"):
                with Vertical(id="dashboard-gauges"):
                    for metric, label in GAUGES.items():
                        yield Gauge(label, id=f"gauge-{metric}")
                yield Static(id="dashboard-queue")
            with Horizontal(classes="sparkline-row"):
                yield MetricSparkline("Executions/min", id="spark-executions")
                yield MetricSparkline("Latency", formatter=format_seconds, id="spark-latency")
            with Horizontal(classes="sparkline-row"):
                yield MetricSparkline("Queue depth", id="spark-queue_depth")
                yield MetricSparkline("Running", id="spark-running_executions")
            yield Static(id="dashboard-hour")
            yield PoolSizesTable(id="pool-sizes")
            # Cluster mode: in the warm pool's place, as the nodes keep the pools.
            yield ClusterNodesTable(id="cluster-nodes")

    @property
    def executions(self) -> ExecutionHistory:
        return self.app.live.executions

    def on_mount(self) -> None:
        # The base class loads from the API on mount; the timers only run while shown.
        self.query_one(PoolSizesTable).border_title = "Warm pool: idle/target per engine"
        self.query_one(ClusterNodesTable).border_title = "Cluster nodes: slots busy/total per engine"
        self.status_timer = self.set_interval(STATUS_REFRESH_SECONDS, self.tick)
        self.show_live_figures()
        self.show_executions()
        self.show_summary()
        self.show_hour()

    def on_screen_suspend(self) -> None:
        self.status_timer.pause()

    def on_screen_resume(self) -> None:
        # Feed items reach only the screen on show; catch up with what came meanwhile.
        self.status_timer.resume()
        self.show_live_figures()
        self.show_executions()

    def on_resize(self) -> None:
        self.set_class(self.size.height >= 34, "-roomy")

    # --- loading ------------------------------------------------------------------------

    async def refresh_data(self) -> None:
        await self.load_status()
        await self.load_alerts()
        await self.load_hour()

    async def load_alerts(self) -> None:
        # Alert events that arrive while the list is on its way may be newer than it:
        # they are noted and laid over the list, so an answer cannot undo them.
        self.alert_changes_meanwhile = {}
        alerts = await self.app.api(lambda c: c.list_alerts(), action="load open alerts")
        changes, self.alert_changes_meanwhile = self.alert_changes_meanwhile, None
        if alerts is None:
            return
        self.open_alerts = {a["alert_id"]: a["status"] for a in alerts if a["status"] in OPEN_ALERT_STATUSES}
        for alert_id, status in (changes or {}).items():
            self.note_alert(alert_id, status)
        self.alerts_loaded = True
        self.show_summary()

    def note_alert(self, alert_id: str, status: str) -> None:
        if status in OPEN_ALERT_STATUSES:
            self.open_alerts[alert_id] = status
        else:
            self.open_alerts.pop(alert_id, None)

    async def load_status(self) -> None:
        status = await self.app.api(lambda c: c.platform_status(), action="load the platform status")
        if status is not None:
            self.status, self.status_at = status, time.monotonic()
            self.query_one(PoolSizesTable).show(status.get("sandbox_pool") or [])
            cluster = status.get("cluster")
            self.set_class(cluster is not None, "-cluster")
            if cluster is not None:
                self.query_one(ClusterNodesTable).show(cluster.get("nodes") or [])
            self.show_summary()

    async def load_hour(self) -> None:
        # Before the request: an evaluation that ends while it is under way marks it stale.
        self.hour_at, self.hour_stale = time.monotonic(), False
        hour = await self.app.api(lambda c: c.performance("1h"), action="load the last hour's figures")
        if hour is not None:
            self.hour = hour
            self.show_hour()

    async def tick(self) -> None:
        """Every STATUS_REFRESH_SECONDS while shown (and connected: while the feed is
        down the banner says so and a reconnect reloads everything)."""
        self.show_executions()  # the minutes roll on even when nothing happens
        if not self.app.live.connected:
            return
        self.run_exclusive(self.load_status, group="status")
        if self.hour_stale or time.monotonic() - self.hour_at >= PERFORMANCE_REFRESH_SECONDS:
            self.run_exclusive(self.load_hour, group="hour")

    # --- live ---------------------------------------------------------------------------

    def on_live_update(self, message: LiveUpdate) -> None:
        item = message.item
        if isinstance(item, MetricSample):
            self.show_live_figures(item.metric)
        elif isinstance(item, Completed):
            self.hour_stale = True  # the next tick asks for the last hour again
            self.show_executions()
        elif isinstance(item, AlertEvent):
            alert_id, status = item.alert_id, item.status
            self.note_alert(alert_id, status)
            if self.alert_changes_meanwhile is not None:
                self.alert_changes_meanwhile[alert_id] = status
            self.show_summary()

    def show_live_figures(self, metric: str | None = None) -> None:
        live = self.app.live
        for name in GAUGES:
            if metric in (None, name):
                self.query_one(f"#gauge-{name}", Gauge).value = live.latest.get(name)
        for name in ("queue_depth", "running_executions"):
            if metric in (None, name):
                self.query_one(f"#spark-{name}", MetricSparkline).show(
                    live.series(name)[-LIVE_SPARKLINE_POINTS:], live.latest.get(name)
                )
        if metric is None or metric in dict(QUEUE_FIGURES):
            lines = []
            for name, label in QUEUE_FIGURES:
                value = live.latest.get(name)
                lines.append(f"{label:<12}{'—' if value is None else f'{value:g}':>6}")
            self.query_one("#dashboard-queue", Static).update("\n".join(lines))
        if metric in (None, "engine_reachable"):
            self.show_summary()

    def show_executions(self) -> None:
        history = self.executions
        self.query_one("#spark-executions", MetricSparkline).show(
            history.per_minute(EXECUTION_MINUTES), history.last_minute()
        )
        # A fixed width of recent executions, the newest on the right, as the minutes are.
        run_times = list(history.run_times)[-LATENCY_POINTS:]
        padded = [None] * (LATENCY_POINTS - len(run_times)) + run_times
        self.query_one("#spark-latency", MetricSparkline).show(padded)

    # --- text lines ---------------------------------------------------------------------

    def show_summary(self) -> None:
        """`appliance v0.1.0 · up 2h 03m · healthy · 1 open alert`"""
        status = self.status or {}
        version = status.get("version") or __version__
        text = Text(f"appliance v{version}", style="bold", no_wrap=True, overflow="ellipsis")
        if status:
            uptime = float(status.get("uptime_seconds") or 0) + time.monotonic() - self.status_at
            text.append(f" · up {format_uptime(uptime)}")
            platform = status.get("platform", "?")
            unhealthy = [name for name, state in (status.get("services") or {}).items() if state != "healthy"]
            text.append(" · ")
            text.append(
                platform + (f" ({', '.join(unhealthy)})" if unhealthy else ""),
                style="green" if platform == "healthy" else "bold red",
            )
        if status.get("cluster") is not None:
            text.append(" · ")
            text.append_text(self.nodes_text(status["cluster"].get("nodes") or []))
        if self.app.live.latest.get("engine_reachable") == 0:
            text.append(" · Docker engine unreachable", style="bold red")
        text.append(" · ")
        text.append_text(self.alerts_text())
        self.query_one("#dashboard-summary", Static).update(text)

    def nodes_text(self, nodes: list[dict[str, Any]]) -> Text:
        """`2/3 nodes up`: red while one is lost, yellow while one drains."""
        up = sum(1 for n in nodes if n.get("state") == "up")
        states = {n.get("state") for n in nodes}
        style = "bold red" if "lost" in states or not nodes else "yellow" if "draining" in states else "green"
        return Text(f"{up}/{len(nodes)} node{'' if len(nodes) == 1 else 's'} up", style=style)

    def alerts_text(self) -> Text:
        if not self.alerts_loaded:
            return Text("alerts: —", style="dim")
        count = len(self.open_alerts)
        acknowledged = sum(1 for s in self.open_alerts.values() if s == "acknowledged")
        text = f"{count} open alert{'' if count == 1 else 's'}"
        if acknowledged:
            text += f" ({acknowledged} acknowledged)"
        style = "bold red" if count > acknowledged else ("yellow" if count else "green")
        return Text(text, style=style)

    def show_hour(self) -> None:
        """`Last hour: 42 executions · avg 120 ms · 98% ok · container start 150 ms`"""
        hour = self.hour
        if hour is None:
            self.query_one("#dashboard-hour", Static).update(Text("Last hour: —", style="dim"))
            return
        runs = hour.get("execution_metrics") or {}
        containers = hour.get("container_metrics") or {}
        total = runs.get("total_executions") or 0
        parts = [f"{total} execution{'' if total == 1 else 's'}"]
        if runs.get("avg_execution_time") is not None:
            parts.append(f"avg {format_seconds(runs['avg_execution_time'])}")
        if runs.get("success_rate") is not None:
            parts.append(f"{runs['success_rate']:g}% ok")
        if containers.get("avg_startup_time") is not None:
            parts.append(f"container start {format_seconds(containers['avg_startup_time'])}")
        text = Text("Last hour: ", style="bold")
        text.append(" · ".join(parts))
        self.query_one("#dashboard-hour", Static).update(text)

    # --- actions ------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.run_exclusive(self.refresh_data, group="refresh")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield (
            "Dashboard: refresh",
            "Reload status, warm pool, open alerts and the last hour (key r)",
            self.action_refresh,
        )
