"""Alerts through real servers: rules trip, operators acknowledge and resolve, alerts
resolve themselves, survive restarts, and every mistake is a 4xx in the sandbox shape."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from appliance.client import ApiError, ApplianceClient
from appliance.config import ConfigError, load_settings
from appliance.core.alerts import AlertRule, RuleTracker, Severity
from tests.support import assert_sandbox_error, eventually, run_eval, wait_for_status

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FAST = {
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.3",
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
}  # the tests poll
# CPU is always at or above 0%: the rule holds from the first sample on.
CPU_ALWAYS = {**FAST, "APPLIANCE_ALERT_CPU_PERCENT": "0", "APPLIANCE_ALERT_CPU_FOR_SECONDS": "0"}


def wait_for_alert(client: ApplianceClient, rule: str, **filters) -> dict:
    return eventually(
        lambda: [a for a in client.list_alerts(**filters) if a.rule == rule],
        message=lambda: f"a {rule} alert ({filters}); resolved ones: {client.list_alerts(status='resolved')}",
    )[0]


def open_alerts_of(client: ApplianceClient, rule: str) -> list:
    return [a for a in client.list_alerts() if a.rule == rule]


# --- pure rules ---------------------------------------------------------------------------


def test_rule_opens_only_after_holding_for_its_duration():
    rule = AlertRule(
        rule="cpu_usage",
        name="High CPU Usage",
        severity=Severity.WARNING,
        reading="cpu_usage",
        threshold=80,
        for_seconds=10,
    )
    tracker = RuleTracker()
    assert rule.holds({"cpu_usage": 80.0}) is True and rule.holds({"cpu_usage": 79.9}) is False
    assert rule.holds({"cpu_usage": None}) is None and rule.holds({}) is None
    assert not tracker.due(rule, True, 100.0)
    assert not tracker.due(rule, True, 109.9)
    assert tracker.due(rule, True, 110.0)
    assert not tracker.due(rule, False, 111.0)  # a break starts the count again
    assert not tracker.due(rule, True, 112.0) and tracker.due(rule, True, 122.0)
    below = AlertRule(
        rule="engine_unreachable",
        name="Docker Engine Unreachable",
        severity=Severity.EMERGENCY,
        reading="engine_reachable",
        threshold=1,
        above=False,
    )
    assert below.holds({"engine_reachable": 0.0}) is True and below.holds({"engine_reachable": 1.0}) is False
    guarded = AlertRule(
        rule="failure_rate",
        name="High Failure Rate",
        severity=Severity.CRITICAL,
        reading="failure_rate",
        threshold=50,
        requires=("finished_executions", 10),
    )
    assert guarded.holds({"failure_rate": 100.0, "finished_executions": 3}) is False
    assert guarded.holds({"failure_rate": None, "finished_executions": 0}) is False
    assert guarded.holds({"failure_rate": 60.0, "finished_executions": 10}) is True


def test_alert_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="alert_disabled_rules: unknown rule.*cpu"):
        load_settings(environ={"APPLIANCE_DATA_DIR": str(tmp_path), "APPLIANCE_ALERT_DISABLED_RULES": "cpu"})
    with pytest.raises(ConfigError, match="alert_evaluation_seconds"):
        load_settings(environ={"APPLIANCE_DATA_DIR": str(tmp_path), "APPLIANCE_ALERT_EVALUATION_SECONDS": "0"})
    settings = load_settings(
        environ={"APPLIANCE_DATA_DIR": str(tmp_path), "APPLIANCE_ALERT_DISABLED_RULES": "cpu_usage,disk_usage"}
    )
    assert settings.alert_disabled_rules == ["cpu_usage", "disk_usage"]


# --- through a server -----------------------------------------------------------------------


def test_cpu_alert_is_opened_once_acknowledged_and_resolved(fresh_server):
    server = fresh_server(env=CPU_ALWAYS)
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        alert = wait_for_alert(client, "cpu_usage")
        assert alert.alert_id.startswith("alert_") and alert.rule_name == "High CPU Usage"
        assert alert.severity == "warning" and alert.status == "active"
        assert alert.threshold == 0.0 and 0 <= alert.value <= 100 and "CPU usage" in alert.message
        assert ISO_Z.fullmatch(alert.triggered_at)
        assert alert.acknowledged_at is None and alert.resolved_at is None
        time.sleep(1.0)  # several evaluations while the rule holds: still one alert
        assert [a.alert_id for a in open_alerts_of(client, "cpu_usage")] == [alert.alert_id]
        assert client.get_alert(alert.alert_id) == alert
        metrics = client.metrics_text()
        assert 'appliance_alerts_open{severity="warning"} 1' in metrics
        rules = {r.rule: r for r in client.alert_rules()}
        assert rules["cpu_usage"].threshold == 0.0 and rules["queue_depth"].threshold == 100.0

        # A bad body changes nothing.
        bad = client.http.post(f"/api/alerts/{alert.alert_id}/acknowledge", json={"comment": 5})
        assert_sandbox_error(bad, 400, "VALIDATION_ERROR", "comment")
        bad = client.http.post(f"/api/alerts/{alert.alert_id}/acknowledge", json={"coment": "typo"})
        assert_sandbox_error(bad, 400, "VALIDATION_ERROR", "coment")
        assert client.get_alert(alert.alert_id).status == "active"

        acked = client.acknowledge_alert(alert.alert_id, "Investigating the issue")
        assert acked.status == "acknowledged" and acked.acknowledged_by == "admin"
        assert acked.acknowledged_comment == "Investigating the issue" and ISO_Z.fullmatch(acked.acknowledged_at)
        with pytest.raises(ApiError) as again:
            client.acknowledge_alert(alert.alert_id, "twice")
        assert again.value.status_code == 409 and again.value.code == "RESOURCE_CONFLICT"
        assert "acknowledged already" in again.value.message
        assert alert.alert_id in [a.alert_id for a in client.list_alerts(status="acknowledged")]
        assert alert.alert_id not in [a.alert_id for a in client.list_alerts(status="active")]

        resolved = client.resolve_alert(alert.alert_id, "Issue has been fixed")
        assert resolved.status == "resolved" and resolved.resolved_by == "admin"
        assert resolved.resolved_comment == "Issue has been fixed"
        assert resolved.acknowledged_comment == "Investigating the issue"
        with pytest.raises(ApiError) as twice:
            client.resolve_alert(alert.alert_id, "again")
        assert twice.value.status_code == 409 and "resolved already" in twice.value.message
        response = client.http.post(f"/api/alerts/{alert.alert_id}/resolve", json={"comment": "again"})
        assert_sandbox_error(response, 409, "RESOURCE_CONFLICT", alert.alert_id, "resolved already")
        response = client.http.post(f"/api/alerts/{alert.alert_id}/acknowledge", json={})
        assert_sandbox_error(response, 409, "RESOURCE_CONFLICT", "resolved already")
        history = client.list_alerts(status="resolved", severity="warning")
        assert history[0].alert_id == alert.alert_id and history[0].resolved_comment == "Issue has been fixed"
        assert client.list_alerts(status="resolved", severity="critical") == []
        # The condition still holds: a new alert (not the resolved one) opens again.
        reopened = wait_for_alert(client, "cpu_usage")
        assert reopened.alert_id != alert.alert_id and reopened.status == "active"
    log = server.log()
    assert f"alert {alert.alert_id} opened: High CPU Usage" in log and "WARNING" in log


def test_alert_mistakes_are_4xx_in_the_sandbox_shape(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        viewer = admin.create_api_key("alert-viewer", ["sandbox_read"]).api_key
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert_sandbox_error(anonymous.get("/api/alerts"), 401, "AUTHENTICATION_REQUIRED", "X-API-Key")
        assert_sandbox_error(anonymous.post("/api/alerts/alert_x/resolve", json={}), 401, "AUTHENTICATION_REQUIRED")
        paths = anonymous.get("/api/openapi.yaml").text
        assert all(
            f"  {path}:" in paths
            for path in (
                "/api/alerts",
                "/api/alerts/rules",
                "/api/alerts/{alert_id}/acknowledge",
                "/api/alerts/{alert_id}/resolve",
            )
        )
    with server.admin() as client:
        error = assert_sandbox_error(
            client.get("/api/alerts", params={"status": "open"}),
            400,
            "VALIDATION_ERROR",
            "unknown status 'open'",
            "active, acknowledged, resolved",
        )
        assert error["details"]["field"] == "status"
        assert_sandbox_error(
            client.get("/api/alerts", params={"severity": "high"}),
            400,
            "VALIDATION_ERROR",
            "info, warning, critical, emergency",
        )
        assert_sandbox_error(client.get("/api/alerts", params={"limit": "0"}), 400, "VALIDATION_ERROR", "limit")
        assert_sandbox_error(client.get("/api/alerts/alert_000000000000"), 404, "RESOURCE_NOT_FOUND", "no alert")
        assert_sandbox_error(
            client.post("/api/alerts/alert_000000000000/resolve", json={"comment": "x"}),
            404,
            "RESOURCE_NOT_FOUND",
            "alert_000000000000",
        )
        assert_sandbox_error(
            client.post("/api/alerts/alert_000000000000/acknowledge", json={"comment": "x" * 2001}),
            400,
            "VALIDATION_ERROR",
            "comment",
        )
    with ApplianceClient(server.url, api_key=viewer) as client:
        assert isinstance(client.list_alerts(), list)  # any key may read
        assert isinstance(client.list_alerts(status="resolved"), list)
        with pytest.raises(ApiError) as refused:
            client.acknowledge_alert("alert_000000000000", "not mine to do")
        assert refused.value.status_code == 403 and refused.value.code == "INSUFFICIENT_PERMISSIONS"
        with pytest.raises(ApiError) as refused:
            client.resolve_alert("alert_000000000000")
        assert refused.value.status_code == 403 and "admin" in refused.value.message


def test_queue_backlog_alert_resolves_itself_when_the_queue_drains(fresh_server):
    server = fresh_server(
        env={
            **FAST,
            "APPLIANCE_WORKERS": "1",
            "APPLIANCE_ALERT_QUEUE_DEPTH": "1",
            "APPLIANCE_ALERT_QUEUE_FOR_SECONDS": "0",
        }
    )
    with server.admin() as http, ApplianceClient(server.url, api_key=server.admin_key) as client:
        ids = [
            http.post("/api/eval", json={"code": "import time; time.sleep(1.5)"}).json()["eval_id"] for _ in range(3)
        ]
        alert = wait_for_alert(client, "queue_depth")
        assert alert.rule_name == "Queue Backlog" and alert.value >= 1 and alert.threshold == 1.0
        for eval_id in ids:
            assert wait_for_status(http, eval_id)["status"] == "completed"
        done = eventually(
            lambda: (state := client.get_alert(alert.alert_id)).status == "resolved" and state,
            message="the backlog alert resolved",
        )
        assert done.status == "resolved" and done.resolved_by == "system", done
        assert "condition cleared" in done.resolved_comment and ISO_Z.fullmatch(done.resolved_at)
        assert open_alerts_of(client, "queue_depth") == []


def test_failure_rate_alert_opens_and_clears(fresh_server):
    server = fresh_server(
        env={**FAST, "APPLIANCE_ALERT_FAILURE_RATE_MIN_EXECUTIONS": "1", "APPLIANCE_ALERT_FAILURE_RATE_PERCENT": "60"}
    )
    with server.admin() as http, ApplianceClient(server.url, api_key=server.admin_key) as client:
        assert run_eval(http, "while True: pass", timeout=1)["status"] == "timeout"
        alert = wait_for_alert(client, "failure_rate")
        assert alert.severity == "critical" and alert.value == 100.0 and alert.threshold == 60.0
        assert "failed or timed out" in alert.message
        assert run_eval(http, "print('fine')")["status"] == "completed"  # 1 of 2: 50% < 60%
        resolved = wait_for_alert(client, "failure_rate", status="resolved")
        assert resolved.alert_id == alert.alert_id and resolved.resolved_by == "system"


def test_engine_unreachable_alert(fresh_server, tmp_path):
    server = fresh_server(
        env={
            **FAST,
            "APPLIANCE_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
            "APPLIANCE_ALERT_ENGINE_FOR_SECONDS": "0",
        }
    )
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        alert = wait_for_alert(client, "engine_unreachable")
        assert alert.rule_name == "Docker Engine Unreachable" and alert.severity == "emergency"
        assert alert.value == 0.0 and alert.threshold == 1.0 and "Docker engine does not answer" in alert.message
        assert client.list_alerts(severity="emergency")[0].alert_id == alert.alert_id
        assert 'appliance_alerts_open{severity="emergency"} 1' in client.metrics_text()


@pytest.mark.slow
def test_open_alerts_survive_a_restart_and_resolve_after_it(fresh_server, tmp_path):
    data_dir = tmp_path / "kept"
    first = fresh_server(env=CPU_ALWAYS, data_dir=data_dir)
    with ApplianceClient(first.url, api_key=first.admin_key) as client:
        alert = wait_for_alert(client, "cpu_usage")
        client.acknowledge_alert(alert.alert_id, "watching it")
    first.stop()

    second = fresh_server(env=CPU_ALWAYS, data_dir=data_dir)
    with ApplianceClient(second.url, api_key=second.admin_key) as client:
        time.sleep(1.0)  # evaluations run while the rule still holds
        [kept] = open_alerts_of(client, "cpu_usage")
        assert kept.alert_id == alert.alert_id and kept.status == "acknowledged"
        assert kept.acknowledged_comment == "watching it"
    second.stop()

    # Past 100% nothing holds: the alert left open by the last run resolves itself.
    third = fresh_server(env={**CPU_ALWAYS, "APPLIANCE_ALERT_CPU_PERCENT": "101"}, data_dir=data_dir)
    with ApplianceClient(third.url, api_key=third.admin_key) as client:
        resolved = wait_for_alert(client, "cpu_usage", status="resolved")
        assert resolved.alert_id == alert.alert_id and resolved.resolved_by == "system"
        assert resolved.acknowledged_comment == "watching it"
        assert open_alerts_of(client, "cpu_usage") == []
