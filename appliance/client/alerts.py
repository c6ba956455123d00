"""Alerts (list, acknowledge, resolve) and the `/ws/monitor` stream.

with client.monitor(["cpu_usage", "queue_depth"], interval=2) as stream:
    for message in stream:          # Records: metric_update, alert, error, ...
        print(message.type, message.get("metric"), message.get("value"))
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from websockets.sync.client import ClientConnection, connect

from appliance.client.transport import Record, Transport, to_records


class MonitorStream:
    """One `/ws/monitor` connection. Iterate it, or call `receive(timeout)`."""

    def __init__(self, opening: Any) -> None:
        # websockets >= 17 wants connect() used as a context manager (older versions
        # return the connection itself, which is one too): enter it here, exit on close.
        self._opening = opening
        self._connection: ClientConnection = opening.__enter__()

    def __enter__(self) -> MonitorStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Record]:
        while True:
            yield self.receive()

    def receive(self, timeout: float | None = None) -> Record:
        """The next message; TimeoutError after `timeout` seconds without one."""
        return to_records(json.loads(self._connection.recv(timeout)))

    def send(self, message: dict) -> None:
        self._connection.send(json.dumps(message))

    def subscribe(self, metrics: list[str], interval: float | None = None) -> None:
        message: dict[str, Any] = {"type": "subscribe", "metrics": list(metrics)}
        if interval is not None:
            message["interval"] = interval
        self.send(message)

    def unsubscribe(self, metrics: list[str] | None = None) -> None:
        """Without `metrics`, every metric (alerts keep coming)."""
        message: dict[str, Any] = {"type": "unsubscribe"}
        if metrics is not None:
            message["metrics"] = list(metrics)
        self.send(message)

    def close(self) -> None:
        self._opening.__exit__(None, None, None)


class AlertsApi(Transport):
    def list_alerts(self, status: str | None = None, severity: str | None = None, limit: int | None = None) -> list:
        """Newest first; without `status` the open ones (active and acknowledged)."""
        params: dict[str, Any] = {}
        if status is not None:
            params["status"] = status
        if severity is not None:
            params["severity"] = severity
        if limit is not None:
            params["limit"] = limit
        return self.call("GET", "/api/alerts", params=params)["alerts"]

    def get_alert(self, alert_id: str) -> Any:
        return self.call("GET", f"/api/alerts/{alert_id}")

    def alert_rules(self) -> list:
        return self.call("GET", "/api/alerts/rules")["rules"]

    def acknowledge_alert(self, alert_id: str, comment: str | None = None) -> Any:
        body = {} if comment is None else {"comment": comment}
        return self.call("POST", f"/api/alerts/{alert_id}/acknowledge", json=body)

    def resolve_alert(self, alert_id: str, comment: str | None = None) -> Any:
        body = {} if comment is None else {"comment": comment}
        return self.call("POST", f"/api/alerts/{alert_id}/resolve", json=body)

    def monitor(
        self, metrics: list[str] | None = None, interval: float | None = None, *, open_timeout: float = 10.0
    ) -> MonitorStream:
        """Open `/ws/monitor` with this client's key or token, subscribed to `metrics`
        if given. Use it as a context manager so the socket closes."""
        auth = {k: v for k, v in self.http.headers.items() if k.lower() in ("x-api-key", "authorization")}
        stream = MonitorStream(
            connect(self.ws_base + "/ws/monitor", additional_headers=auth, open_timeout=open_timeout)
        )
        if metrics:
            stream.subscribe(metrics, interval)
        return stream
