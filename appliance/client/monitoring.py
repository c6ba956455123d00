"""Health, metrics and performance summaries."""

from __future__ import annotations

from typing import Any

from appliance.client.transport import Transport


class MonitoringApi(Transport):
    def health(self) -> Any:
        return self.call("GET", "/api/health")

    def metrics_text(self) -> str:
        return self.request("GET", "/api/metrics").text

    def performance(self, duration: str = "1h", component: str | None = None) -> Any:
        params = {"duration": duration}
        if component:
            params["component"] = component
        return self.call("GET", "/api/metrics/performance", params=params)
