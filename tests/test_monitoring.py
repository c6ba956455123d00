"""/api/metrics and /api/health through a real server."""

from __future__ import annotations

import re

import httpx

from tests.support import run_eval

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf|-Inf|NaN)$'
)


def parse(text: str) -> dict[str, float]:
    """Every line is a HELP, a TYPE or a well-formed sample; returns the samples."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in typed, f"{name} typed twice"
            typed.add(name)
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        base = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
        assert match.group(1) in typed or base in typed, f"{line!r} has no TYPE"
        samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return samples


def test_metrics_count_executions_and_show_the_appliance(server):
    with server.admin() as client:
        before = parse(client.get("/api/metrics").text)
        result = run_eval(client, "print('metrics')")
        assert result["status"] == "completed"
        response = client.get("/api/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = parse(response.text)
    key = 'appliance_executions_total{status="completed",language="python",engine="docker"}'
    assert after[key] == before.get(key, 0) + 1
    count = 'appliance_execution_seconds_count{language="python"}'
    assert after[count] == before.get(count, 0) + 1
    assert after['appliance_execution_seconds_bucket{language="python",le="+Inf"}'] == after[count]
    for gauge in (
        "appliance_queue_depth",
        "appliance_running_executions",
        "appliance_containers",
        "appliance_process_resident_bytes",
        "appliance_host_memory_used_percent",
        "appliance_data_disk_free_bytes",
        "appliance_uptime_seconds",
    ):
        assert gauge in after, gauge
    assert after['appliance_pool_target_containers{language="python",engine="docker"}'] >= 1


def test_health_reports_each_component(server):
    with httpx.Client(base_url=server.url) as anonymous:  # load balancers have no key
        response = anonymous.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["version"] and body["uptime"] >= 0
    assert [c["name"] for c in body["components"]] == ["database", "container_manager", "scheduler", "disk"]
    for component in body["components"]:
        assert component["status"] == "healthy", component
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", component["last_check"])


def test_health_says_which_component_is_down(fresh_server, tmp_path):
    server = fresh_server(env={"APPLIANCE_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    with server.client() as anonymous:
        body = anonymous.get("/api/health").json()
    engine = next(c for c in body["components"] if c["name"] == "container_manager")
    assert body["status"] == "degraded"
    assert engine["status"] == "unhealthy" and "Docker engine" in engine["message"]


def test_performance_over_a_time_range_from_stored_samples(fresh_server):
    from tests.support import assert_sandbox_error, eventually

    server = fresh_server(env={"APPLIANCE_METRICS_SAMPLE_SECONDS": "0.2"})
    with server.admin() as client:
        assert run_eval(client, "print('sampled')")["status"] == "completed"
        body = eventually(
            lambda: (
                (body := client.get("/api/metrics/performance", params={"duration": "1h"}).json())["samples"] >= 3
                and body
            ),
            message="three samples stored",
        )
        for key in ("cpu_usage", "memory_usage"):
            usage = body[key]
            assert 0 <= usage["current"] <= 100 and usage["average"] <= usage["peak"] <= 100, body
        assert body["execution_metrics"] == {
            "total_executions": 1,
            "avg_execution_time": body["execution_metrics"]["avg_execution_time"],
            "success_rate": 100.0,
        }
        assert body["execution_metrics"]["avg_execution_time"] > 0
        assert body["container_metrics"]["avg_startup_time"] > 0
        only = client.get("/api/metrics/performance", params={"duration": "30m", "component": "cpu"}).json()
        assert set(only) == {"duration", "samples", "cpu_usage"}
        assert_sandbox_error(
            client.get("/api/metrics/performance", params={"duration": "soon"}), 400, "VALIDATION_ERROR", "30m, 1h"
        )
        assert_sandbox_error(
            client.get("/api/metrics/performance", params={"duration": "30d"}),
            400,
            "VALIDATION_ERROR",
            "metrics_retention_hours",
        )
        assert_sandbox_error(
            client.get("/api/metrics/performance", params={"component": "gpu"}),
            400,
            "VALIDATION_ERROR",
            "unknown component",
        )
        assert "series" not in body

        series = client.get("/api/metrics/performance", params={"duration": "10m", "points": 10}).json()
        stretches = series["series"]
        assert len(stretches) == 10 and all(s["seconds"] == 60.0 for s in stretches)
        assert stretches[0]["start"] < stretches[-1]["start"] and stretches[-1]["start"].endswith("Z")
        assert sum(s["samples"] for s in stretches) == series["samples"]  # every sample in one stretch
        assert sum(s["executions"] for s in stretches) == 1
        ran = next(s for s in stretches if s["executions"])
        assert ran["success_rate"] == 100.0 and ran["avg_execution_time"] > 0
        last = stretches[-1]
        assert last["samples"] >= 3 and last["cpu_average"] <= last["cpu_peak"] <= 100
        assert stretches[0]["samples"] == 0 and stretches[0]["cpu_average"] is None
        for bad in ("0", "501"):
            assert_sandbox_error(
                client.get("/api/metrics/performance", params={"points": bad}),
                400,
                "VALIDATION_ERROR",
                "points must be 1 to 500",
            )
        assert_sandbox_error(
            client.get("/api/metrics/performance", params={"points": "many"}), 400, "VALIDATION_ERROR", "points"
        )


def test_promtool_accepts_the_metrics(server):
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh --test installs Debian's prometheus package"
    with server.admin() as client:
        run_eval(client, "print('for promtool')")
        text = client.get("/api/metrics").text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
