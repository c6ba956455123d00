"""The cluster in /api/status, /api/metrics and the alerts (cluster mode only; no Ray)."""

from __future__ import annotations

from collections.abc import Callable

from appliance.core.cluster import ClusterView
from appliance.core.metrics import render_gauge
from appliance.services.monitoring.metrics import MonitoringService
from appliance.services.monitoring.readings import SystemReadings
from appliance.services.monitoring.status import PlatformStatusService

# The reading the `cluster_node_lost` alert rule watches.
NODES_LOST_READING = "cluster_nodes_lost"


class ClusterStatus:
    def __init__(self, view: Callable[[], ClusterView]) -> None:
        self._view = view

    def attach(
        self,
        status: PlatformStatusService,
        monitoring: MonitoringService,
        readings: SystemReadings,
    ) -> None:
        status.cluster_view = self._view
        monitoring.add_gauges(self.gauges)
        readings.add(NODES_LOST_READING, "cluster nodes lost and not back", lambda: self._view().nodes_lost)

    def gauges(self) -> list[str]:
        view = self._view()
        lines: list[str] = []
        lines += render_gauge(
            "appliance_cluster_nodes",
            "Cluster nodes by state (up, draining, lost).",
            [
                ({"state": state}, sum(1 for n in view.nodes if n.state == state))
                for state in ("up", "draining", "lost")
            ],
        )
        lines += render_gauge(
            "appliance_cluster_slots",
            "Sandbox slots each cluster node offers, per engine.",
            [({"node": n.name, "engine": e}, count) for n in view.nodes for e, count in n.slots.items()],
        )
        lines += render_gauge(
            "appliance_cluster_busy_slots",
            "Sandbox slots in use on each cluster node, per engine.",
            [({"node": n.name, "engine": e}, count) for n in view.nodes for e, count in n.busy.items()],
        )
        lines += render_gauge(
            "appliance_cluster_completed",
            "Runs each cluster node completed since the head started.",
            [({"node": n.name}, n.completed) for n in view.nodes],
        )
        lines += render_gauge(
            "appliance_cluster_requeued",
            "Runs that went back in line after their node was lost.",
            [({}, view.requeued)],
        )
        return lines
