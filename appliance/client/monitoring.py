"""Health, metrics and performance summaries."""

from __future__ import annotations

from typing import Any

from appliance.client.transport import Transport


class MonitoringApi(Transport):
    def health(self) -> Any:
        return self.call("GET", "/api/health")

    def metrics_text(self) -> str:
        return self.request("GET", "/api/metrics").text

    def performance(self, duration: str = "1h", component: str | None = None, *, points: int | None = None) -> Any:
        """The summary of the range; with `points`, also `series`: the range cut into that
        many stretches, oldest first."""
        params: dict[str, Any] = {"duration": duration}
        if component:
            params["component"] = component
        if points is not None:
            params["points"] = points
        return self.call("GET", "/api/metrics/performance", params=params)
