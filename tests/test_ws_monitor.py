"""`/ws/monitor` with real clients: metric updates at the asked interval, alerts as they
change, errors in the sandbox shape without closing, several clients at once."""

from __future__ import annotations

import json
import re
import time

import pytest
import websockets
from websockets.sync.client import connect

from appliance.client import ApplianceClient
from tests.support import HANG_SECONDS, wait_for_status

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ERROR_KEYS = {"code", "message", "details", "request_id"}


def receive_until(stream, accept, timeout: float = HANG_SECONDS) -> list:
    """Messages up to and including the first one `accept` takes."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"nothing accepted within {timeout}s; got {seen[-10:]}")
        message = stream.receive(left)
        seen.append(message)
        if accept(message):
            return seen


def collect_for(stream, seconds: float) -> list:
    seen, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(stream.receive(left))
        except TimeoutError:
            break
    return seen


def assert_error(message, code: str, *words: str) -> dict:
    assert message["type"] == "error" and set(message["error"]) == ERROR_KEYS, message
    error = message["error"]
    assert error["code"] == code and error["request_id"].startswith("req_"), message
    for word in words:
        assert word.lower() in error["message"].lower(), message
    return error


def test_subscribed_metrics_arrive_every_interval(server):
    wanted = [
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "active_containers",
        "queue_depth",
        "running_executions",
        "pool_idle",
        "engine_reachable",
        "open_alerts",
    ]
    with (
        ApplianceClient(server.url, api_key=server.admin_key) as client,
        client.monitor(wanted, interval=0.5) as stream,
    ):
        confirmed = stream.receive(HANG_SECONDS)
        assert confirmed == {"type": "subscription", "metrics": wanted, "interval": 0.5}
        by_metric: dict[str, list] = {}

        def three_rounds(message) -> bool:
            if message.type == "metric_update":
                by_metric.setdefault(message.metric, []).append(message)
            return set(by_metric) == set(wanted) and all(len(v) >= 3 for v in by_metric.values())

        # At once, then round after round (how often, under load, is the server's business).
        receive_until(stream, three_rounds)
    for update in (u for updates in by_metric.values() for u in updates):
        assert set(update) == {"type", "metric", "value", "timestamp"} and ISO_Z.fullmatch(update.timestamp)
    by_metric = {name: [u.value for u in updates] for name, updates in by_metric.items()}
    for name in ("cpu_usage", "memory_usage", "disk_usage"):
        assert all(0 <= v <= 100 for v in by_metric[name]), by_metric[name]
    assert by_metric["engine_reachable"][-1] == 1.0
    assert all(isinstance(v, int) and v >= 0 for v in by_metric["active_containers"])


def test_bad_messages_get_errors_and_change_nothing(server):
    with connect(f"{server.ws_url}/ws/monitor?api_key={server.admin_key}", open_timeout=HANG_SECONDS) as ws:

        def send(message) -> dict:
            ws.send(message if isinstance(message, str) else json.dumps(message))
            return json.loads(ws.recv(HANG_SECONDS))

        assert send({"type": "subscribe", "metrics": ["cpu_usage"], "interval": 300})["type"] == "subscription"
        assert json.loads(ws.recv(HANG_SECONDS))["metric"] == "cpu_usage"  # sent at once
        error = assert_error(
            send({"type": "subscribe", "metrics": ["cpu_usage", "gpu_usage"]}),
            "VALIDATION_ERROR",
            "unknown metric",
            "gpu_usage",
            "memory_usage",
        )
        assert error["details"]["unknown"] == ["gpu_usage"] and "queue_depth" in error["details"]["offered"]
        assert_error(
            send({"type": "subscribe", "metrics": ["memory_usage"], "interval": 0.01}),
            "VALIDATION_ERROR",
            "interval",
            "0.5",
            "300",
        )
        assert_error(send({"type": "subscribe", "metrics": []}), "VALIDATION_ERROR", "name the metrics")
        assert_error(send({"type": "watch"}), "VALIDATION_ERROR", "unknown message type", "subscribe")
        assert_error(send({"type": "subscribe", "metric": "cpu_usage"}), "VALIDATION_ERROR", "unreadable")
        assert_error(send("not json"), "VALIDATION_ERROR", "unreadable message")
        assert send({"type": "ping"}) == {"type": "pong"}
        # Still subscribed to cpu_usage alone, every 300 s: unsubscribing it leaves nothing.
        assert send({"type": "unsubscribe", "metrics": ["cpu_usage"]}) == {
            "type": "subscription",
            "metrics": [],
            "interval": 300.0,
        }


def test_unsubscribe_stops_updates(server):
    with (
        ApplianceClient(server.url, api_key=server.admin_key) as client,
        client.monitor(["cpu_usage", "queue_depth"], interval=0.5) as stream,
    ):
        receive_until(stream, lambda m: m.type == "metric_update" and m.metric == "queue_depth")
        stream.unsubscribe(["cpu_usage"])
        receive_until(stream, lambda m: m.type == "subscription" and m.metrics == ["queue_depth"])
        # Two rounds after the change: a cpu_usage still sent would be among them.
        updates = []

        def second_update(message) -> bool:
            if message.type == "metric_update":
                updates.append(message)
            return len(updates) >= 2

        receive_until(stream, second_update)
        assert {m.metric for m in updates} == {"queue_depth"}, updates
        stream.unsubscribe()
        receive_until(stream, lambda m: m.type == "subscription" and m.metrics == [])
        assert [m for m in collect_for(stream, 1.0) if m.type == "metric_update"] == []


def test_monitor_refuses_callers_without_a_valid_key(server):
    for url in (f"{server.ws_url}/ws/monitor", f"{server.ws_url}/ws/monitor?api_key=ak_000000000000_nope"):
        with connect(url, open_timeout=HANG_SECONDS) as ws:
            assert_error(json.loads(ws.recv(HANG_SECONDS)), "AUTHENTICATION_REQUIRED")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                ws.recv(HANG_SECONDS)
            assert closed.value.rcvd.code == 1008


@pytest.mark.slow
def test_alerts_reach_every_monitor_client_and_not_the_evaluation_socket(fresh_server):
    server = fresh_server(
        env={
            "APPLIANCE_WORKERS": "1",
            "APPLIANCE_ALERT_QUEUE_DEPTH": "1",
            "APPLIANCE_ALERT_QUEUE_FOR_SECONDS": "0",
            "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
        }
    )
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        viewer_key = admin.create_api_key("monitor-viewer", ["sandbox_read"]).api_key
        viewer = ApplianceClient(server.url, api_key=viewer_key)
        with (
            admin.monitor(["queue_depth"], interval=0.5) as first,
            viewer.monitor() as second,
            connect(f"{server.ws_url}/ws?api_key={server.admin_key}", open_timeout=HANG_SECONDS) as evaluation_socket,
        ):
            ids = [
                admin.http.post("/api/eval", json={"code": "import time; time.sleep(1.5)"}).json()["eval_id"]
                for _ in range(3)
            ]
            opened = receive_until(first, lambda m: m.type == "alert")[-1]
            assert opened.event == "opened" and opened.rule_name == "Queue Backlog" and opened.status == "active"
            assert opened.alert_id.startswith("alert_") and opened.value >= 1 and opened.threshold == 1.0
            seen = receive_until(first, lambda m: m.type == "metric_update" and m.value >= 1)
            assert seen[-1].metric == "queue_depth"
            assert receive_until(second, lambda m: m.type == "alert")[-1] == opened  # unsubscribed, still told

            admin.acknowledge_alert(opened.alert_id, "on it")
            for stream in (first, second):
                acked = receive_until(stream, lambda m: m.type == "alert" and m.event == "acknowledged")[-1]
                assert acked.alert_id == opened.alert_id and acked.acknowledged_comment == "on it"

            for eval_id in ids:
                assert wait_for_status(admin.http, eval_id, timeout=60)["status"] == "completed"
            for stream in (first, second):
                done = receive_until(stream, lambda m: m.type == "alert" and m.event == "resolved")[-1]
                assert done.alert_id == opened.alert_id and done.resolved_by == "system"

            kinds = set()
            while True:  # everything /ws sent meanwhile: evaluation events only
                try:
                    kinds.add(json.loads(evaluation_socket.recv(0.5))["type"])
                except TimeoutError:
                    break
            assert kinds and kinds <= {"status_update", "output_chunk", "completed"}, kinds
        viewer.close()
