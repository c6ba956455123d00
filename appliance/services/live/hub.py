"""Which topics exist and who may join them; builds each socket's channels.

- `experiment:<id>` and `telemetry:<id>`: whoever may read that experiment (its owner,
  an admin); anyone else is told `not_found`, as the REST API tells them.
- `telemetry:all`: any key with `read`; it carries only the events the key may see
  (its own, or all for an admin).
- `dashboard:<user>`: the user whose experiments it summarises (the key's owner), or
  an admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appliance.core.errors import AppError
from appliance.core.events import EventBus
from appliance.core.identity import READ, Identity
from appliance.core.phoenix import UNMATCHED_TOPIC
from appliance.services.access.auth import require_permission
from appliance.services.experiments.experiments import ExperimentService
from appliance.services.live.channels import Channel, DashboardChannel, ExperimentChannel, TelemetryChannel
from appliance.services.live.socket import ChannelSocket, JoinRefused
from appliance.services.monitoring.readings import SystemReadings
from appliance.store.experiments import ExperimentStore

REASONS = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


class LiveSettings:
    def __init__(self, queue_size: int, heartbeat_timeout: float, dashboard_interval: float) -> None:
        self.queue_size = queue_size
        self.heartbeat_timeout = heartbeat_timeout
        self.dashboard_interval = dashboard_interval


class LiveChannels:
    def __init__(
        self,
        bus: EventBus,
        experiments: ExperimentService,
        readings: SystemReadings,
        experiment_store: ExperimentStore,
        settings: LiveSettings,
    ) -> None:
        self._bus = bus
        self._experiments = experiments
        self._readings = readings
        self._experiment_store = experiment_store
        self.settings = settings

    async def system_stats(self) -> dict[str, Any]:
        """The document's `{cpu, memory, gpu}` in percent (gpu None: the appliance runs
        no GPU work), with the queue's figures beside them."""
        names = ("cpu_usage", "memory_usage", "disk_usage", "queue_depth", "running_executions")
        read = await self._readings.read(names)
        value = {name: (read[name].value if name in read else None) for name in names}
        return {
            "cpu": value["cpu_usage"],
            "memory": value["memory_usage"],
            "gpu": None,
            "disk": value["disk_usage"],
            "queue_depth": value["queue_depth"],
            "running_executions": value["running_executions"],
        }

    async def experiment_summary(self, owner: str, since: datetime) -> tuple[int, int]:
        return await self._experiment_store.summary(owner, since)

    def authorize(self, identity: Identity) -> None:
        """Who may open a socket at all: a key with `read` (AppError otherwise)."""
        require_permission(identity, READ)

    def open(self, identity: Identity) -> ChannelSocket:
        return ChannelSocket(identity, self.join, self.settings.queue_size)

    async def join(self, identity: Identity, topic: str, join_ref: str | None) -> Channel:
        kind, _, name = topic.partition(":")
        queue = self.settings.queue_size
        if kind == "telemetry" and name == "all":
            return TelemetryChannel(topic, join_ref, self._bus, identity, None, queue)
        if kind in ("experiment", "telemetry") and name:
            await self._readable(identity, name)
            if kind == "experiment":
                return ExperimentChannel(topic, join_ref, self._bus, identity, name, queue)
            return TelemetryChannel(topic, join_ref, self._bus, identity, name, queue)
        if kind == "dashboard" and name:
            if not (identity.is_admin or identity.owner == name):
                raise JoinRefused("forbidden", f"{topic} is another user's dashboard")
            return DashboardChannel(
                topic, join_ref, name, self.system_stats, self.experiment_summary, self.settings.dashboard_interval
            )
        raise JoinRefused(
            UNMATCHED_TOPIC,
            f"no topic {topic!r}: join experiment:<id>, telemetry:<experiment id>, telemetry:all or dashboard:<user>",
        )

    async def _readable(self, identity: Identity, experiment_id: str) -> None:
        try:
            await self._experiments.get(identity, experiment_id)
        except AppError as exc:
            raise JoinRefused(REASONS.get(exc.status_code, "refused"), exc.detail) from None
