"""Persistent sandboxes (sandbox-api.md "Sandbox Management API") through the Python
client: lifecycle, listing, live usage, updates, deletion, restarts, isolation, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.client import ApplianceClient
from tests.sandbox_support import Sandboxes, container_of, remove_sandbox_containers, sandbox_exec, user_client
from tests.support import HANG_SECONDS, eventually
from tests.support import expect_api_error as expect_error


@pytest.fixture
def own_server(fresh_server, docker_client):
    """fresh_server whose sandbox containers are removed afterwards (they outlive it)."""
    started = []

    def start(env=None, data_dir=None):
        proc = fresh_server(env=env, data_dir=data_dir)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        remove_sandbox_containers(docker_client, proc.data_dir)


def test_create_answers_creating_then_runs_locked_down(admin, sandboxes, sandbox_server, docker_client):
    response = admin.http.post(
        "/api/sandboxes",
        json={
            "name": "my-sandbox",
            "runtime": "python",
            "template": "basic",
            "resources": {"memory_limit": "256M", "cpu_limit": 0.5, "disk_limit": "64M"},
            "network": {"enabled": False, "allowed_hosts": []},
            "environment": {"PYTHON_PATH": "/custom/path"},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    sandboxes.created.append(created["sandbox_id"])
    assert created["sandbox_id"].startswith("sb_") and created["status"] == "creating"
    assert response.headers["location"] == f"/api/sandboxes/{created['sandbox_id']}"
    assert created["created_at"].endswith("Z")
    assert created["resources"] == {
        "memory_limit": "256M",
        "cpu_limit": 0.5,
        "disk_limit": "64M",
        "memory_limit_bytes": 256 << 20,
        "disk_limit_bytes": 64 << 20,
    }
    assert created["network"] == {"enabled": False, "allowed_hosts": []}

    running = admin.wait_for_sandbox(created["sandbox_id"])
    assert running.status == "running" and running.template == "basic" and running.runtime == "python"
    info = docker_client.api.inspect_container(container_of(docker_client, created["sandbox_id"]))
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] == 256 << 20 and host["NanoCpus"] == 500_000_000
    assert host["NetworkMode"] == "none" and host["Init"] is True and host["PidsLimit"] > 0
    assert info["Config"]["User"] == "65534:65534"
    assert "PYTHON_PATH=/custom/path" in info["Config"]["Env"]
    files_dir = sandbox_server.data_dir / "sandboxes" / created["sandbox_id"] / "files"
    assert host["Binds"] == [f"{files_dir}:/sandbox:rw"]
    labels = info["Config"]["Labels"]
    # Not the warm pool's instance label: the start-up cleanup must leave it alone.
    assert "appliance.instance" not in labels and labels["appliance.sandbox"] == created["sandbox_id"]
    # PID 1 is the init; the sandbox user can write its files.
    assert (
        sandbox_exec(docker_client, created["sandbox_id"], "id -u; echo hi > made-inside.txt; cat made-inside.txt")
        == "65534\nhi\n"
    )


def test_list_filters_and_pagination_headers(admin, sandbox_server):
    with user_client(sandbox_server, admin) as user:
        tracker = Sandboxes(user)
        try:
            for runtime in ("python", "python", "bash"):
                tracker.create(runtime, wait=False)
            for sandbox_id in tracker.created:
                user.wait_for_sandbox(sandbox_id)
            page = user.list_sandboxes_response(limit=2)
            body = page.json()
            assert body["total"] == 3 and body["limit"] == 2 and body["offset"] == 0
            assert [s["sandbox_id"] for s in body["sandboxes"]] == tracker.created[:2]
            assert set(body["sandboxes"][0]) >= {
                "sandbox_id",
                "name",
                "status",
                "runtime",
                "created_at",
                "last_activity",
            }
            assert page.headers["x-pagination-total"] == "3"
            assert page.headers["x-pagination-limit"] == "2" and page.headers["x-pagination-offset"] == "0"
            assert page.headers["x-pagination-next"] == "/api/sandboxes?offset=2&limit=2"
            last = user.list_sandboxes_response(limit=2, offset=2)
            assert [s["sandbox_id"] for s in last.json()["sandboxes"]] == tracker.created[2:]
            assert "x-pagination-next" not in last.headers

            by_runtime = user.list_sandboxes_response(runtime="python", limit=1)
            assert by_runtime.json()["total"] == 2
            assert by_runtime.headers["x-pagination-next"] == "/api/sandboxes?runtime=python&offset=1&limit=1"
            assert user.list_sandboxes(runtime="bash").total == 1
            assert user.list_sandboxes(status="running").total == 3
            assert user.list_sandboxes(status="error").total == 0
            assert user.list_sandboxes().limit == 50
            expect_error(lambda: user.list_sandboxes(status="sleeping"), 400, "VALIDATION_ERROR", "status")
            expect_error(lambda: user.list_sandboxes(runtime="cobol"), 400, "VALIDATION_ERROR", "cobol")
            expect_error(lambda: user.list_sandboxes(limit=1001), 400, "VALIDATION_ERROR", "1000")
            expect_error(lambda: user.list_sandboxes(limit=0), 400, "VALIDATION_ERROR", "limit")
            expect_error(lambda: user.list_sandboxes(offset=-1), 400, "VALIDATION_ERROR", "offset")
        finally:
            tracker.cleanup()


def test_get_reports_live_memory_cpu_and_disk(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(memory_limit="256M").sandbox_id
    admin.upload_file(sandbox_id, b"x" * 5000, name="data.bin")
    idle = admin.get_sandbox(sandbox_id)
    assert idle.resources.disk_used_bytes == 5000 and idle.file_count == 1
    assert [f.name for f in idle.files] == ["data.bin"] and idle.files[0].size == 5000
    assert idle.resources.memory_used_bytes is not None and idle.resources.memory_used_bytes < 64 << 20
    # A program in the sandbox holding 96 MiB and spinning a core shows up in the numbers.
    sandbox_exec(docker_client, sandbox_id, ["python3", "-c", "x = bytearray(96 << 20)\nwhile True: pass"], detach=True)
    busy = eventually(
        lambda: (
            (d := admin.get_sandbox(sandbox_id)).resources.memory_used_bytes > 90 << 20
            and d.resources.cpu_used > 0.1
            and d
        ),
        message="memory and CPU use",
    )
    assert busy.resources.memory_used.endswith("M") and busy.resources.cpu_used <= 1.2
    assert busy.resources.memory_limit == "256M" and busy.resources.disk_used == "4.9K"


def test_update_limits_live_in_the_containers_cgroup(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(memory_limit="256M", cpu_limit=1.0).sandbox_id
    before = container_of(docker_client, sandbox_id)
    updated = admin.update_sandbox(sandbox_id, memory_limit="300M", cpu_limit=0.5, disk_limit="2G")
    assert updated.resources.memory_limit == "300M" and updated.resources.cpu_limit == 0.5
    assert updated.resources.disk_limit == "2G" and updated.status == "running"
    assert container_of(docker_client, sandbox_id) == before  # changed in place, not recreated
    host = docker_client.api.inspect_container(before)["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 300 << 20 and host["NanoCpus"] == 500_000_000
    for cgroup in (
        Path("/sys/fs/cgroup/memory/docker") / before,
        Path("/sys/fs/cgroup/system.slice") / f"docker-{before}.scope",
        Path("/sys/fs/cgroup/docker") / before,
    ):
        if (cgroup / "memory.limit_in_bytes").exists():
            assert int((cgroup / "memory.limit_in_bytes").read_text()) == 300 << 20
            quota = int((Path("/sys/fs/cgroup/cpu/docker") / before / "cpu.cfs_quota_us").read_text())
            period = int((Path("/sys/fs/cgroup/cpu/docker") / before / "cpu.cfs_period_us").read_text())
            assert quota / period == 0.5
            break
        if (cgroup / "memory.max").exists():
            assert int((cgroup / "memory.max").read_text()) == 300 << 20
            break
    else:
        pytest.fail("the container's cgroup was not found")
    # Only what is given changes.
    assert admin.update_sandbox(sandbox_id, cpu_limit=0.25).resources.memory_limit == "300M"


def test_environment_update_recreates_the_container_keeping_files(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(environment={"OLD_VAR": "old"}).sandbox_id
    admin.upload_file(sandbox_id, b"kept\n", name="keep.txt")
    before = container_of(docker_client, sandbox_id)
    updated = admin.update_sandbox(sandbox_id, environment={"NEW_VAR": "new_value"})
    assert updated.environment == {"NEW_VAR": "new_value"} and updated.status == "running"
    assert container_of(docker_client, sandbox_id) != before
    env = sandbox_exec(docker_client, sandbox_id, "env")
    assert "NEW_VAR=new_value" in env and "OLD_VAR" not in env and "HOME=/sandbox" in env
    assert admin.download_file(sandbox_id, "/sandbox/keep.txt") == b"kept\n"


def test_delete_needs_force_while_running(admin, sandboxes, sandbox_server, docker_client):
    sandbox_id = sandboxes.create().sandbox_id
    admin.upload_file(sandbox_id, b"bye", name="a.txt")
    container = container_of(docker_client, sandbox_id)
    error = expect_error(lambda: admin.delete_sandbox(sandbox_id), 409, "RESOURCE_CONFLICT", "force=true")
    assert error.details["status"] == "running"
    assert admin.get_sandbox(sandbox_id).status == "running"  # nothing changed
    deleted = admin.delete_sandbox(sandbox_id, force=True)
    assert deleted == {"sandbox_id": sandbox_id, "status": "deleted", "message": "Sandbox deleted successfully"}
    assert docker_client.api.containers(all=True, filters={"id": container}) == []
    assert not (sandbox_server.data_dir / "sandboxes" / sandbox_id).exists()
    expect_error(lambda: admin.get_sandbox(sandbox_id), 404, "RESOURCE_NOT_FOUND", sandbox_id)
    expect_error(lambda: admin.delete_sandbox(sandbox_id, force=True), 404, "RESOURCE_NOT_FOUND")


def test_a_stopped_sandbox_shows_stopped_and_deletes_without_force(own_server, docker_client):
    # The reconciler would restart it: run it only at start here, to see "stopped".
    server = own_server(env={"APPLIANCE_SANDBOX_RECONCILE_SECONDS": "3600", "APPLIANCE_WARM_POOL_MIN_IDLE": "0"})
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        tracker = Sandboxes(admin)
        first, second = tracker.create().sandbox_id, tracker.create().sandbox_id
        for sandbox_id in (first, second):
            docker_client.api.stop(container_of(docker_client, sandbox_id), timeout=0)
        stopped = admin.get_sandbox(first)
        assert stopped.status == "stopped" and "exited" in stopped.status_reason
        assert stopped.resources.memory_used is None
        # Lists show the status as last seen (by a GET or the reconciler).
        assert admin.get_sandbox(second).status == "stopped"
        assert admin.list_sandboxes(status="stopped").total == 2
        assert admin.delete_sandbox(first).status == "deleted"  # not running: no force needed
        # PUT brings a stopped sandbox back (a new container, the same files).
        assert admin.update_sandbox(second).status == "running"
        admin.delete_sandbox(second, force=True)


def test_the_reconciler_remakes_a_lost_container(own_server, docker_client):
    server = own_server(env={"APPLIANCE_SANDBOX_RECONCILE_SECONDS": "1", "APPLIANCE_WARM_POOL_MIN_IDLE": "0"})
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        sandbox_id = Sandboxes(admin).create().sandbox_id
        admin.upload_file(sandbox_id, b"still here", name="f.txt")
        lost = container_of(docker_client, sandbox_id)
        docker_client.api.remove_container(lost, force=True)
        eventually(
            lambda: docker_client.api.containers(filters={"label": f"appliance.sandbox={sandbox_id}"}),
            message="a new container",
        )
        assert admin.wait_for_sandbox(sandbox_id, timeout=HANG_SECONDS).status == "running"
        assert container_of(docker_client, sandbox_id) != lost
        assert sandbox_exec(docker_client, sandbox_id, "cat f.txt") == "still here"
        admin.delete_sandbox(sandbox_id, force=True)


@pytest.mark.slow
def test_sandboxes_survive_an_appliance_restart(own_server, docker_client, tmp_path):
    data_dir = tmp_path / "restart"
    env = {"APPLIANCE_WARM_POOL_MIN_IDLE": "0"}
    server = own_server(env=env, data_dir=data_dir)
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        tracker = Sandboxes(admin)
        kept, removed, stopped = (
            tracker.create(environment={"WHO": name}, name=name).sandbox_id for name in ("kept", "removed", "stopped")
        )
        for sandbox_id in (kept, removed, stopped):
            admin.upload_file(sandbox_id, sandbox_id.encode(), name="id.txt", path="/sandbox/sub/")
        containers = {s: container_of(docker_client, s) for s in (kept, removed, stopped)}
    server.stop()
    # Stopping the appliance leaves the sandboxes running.
    assert docker_client.api.inspect_container(containers[kept])["State"]["Running"]
    docker_client.api.remove_container(containers[removed], force=True)
    docker_client.api.stop(containers[stopped], timeout=0)

    again = own_server(env=env, data_dir=data_dir)
    with ApplianceClient(again.url, api_key=again.admin_key) as admin:
        for sandbox_id in (kept, removed, stopped):
            sandbox = admin.wait_for_sandbox(sandbox_id, timeout=60)
            assert admin.download_file(sandbox_id, "sub/id.txt") == sandbox_id.encode()
            assert sandbox.environment["WHO"] in ("kept", "removed", "stopped")
        assert container_of(docker_client, kept) == containers[kept]  # untouched by the start-up cleanup
        assert container_of(docker_client, stopped) == containers[stopped]  # started again as it was
        assert container_of(docker_client, removed) != containers[removed]  # remade from the kept files
        assert "WHO=removed" in sandbox_exec(docker_client, removed, "env")
        assert admin.list_sandboxes().total == 3


def test_another_owner_sees_nothing(admin, sandboxes, sandbox_server):
    sandbox_id = sandboxes.create().sandbox_id
    with user_client(sandbox_server, admin) as other:
        assert other.list_sandboxes().total == 0
        for call in (
            lambda: other.get_sandbox(sandbox_id),
            lambda: other.update_sandbox(sandbox_id, cpu_limit=0.5),
            lambda: other.delete_sandbox(sandbox_id, force=True),
            lambda: other.list_files(sandbox_id),
            lambda: other.upload_file(sandbox_id, b"x", name="x.txt"),
            lambda: other.download_file(sandbox_id, "x.txt"),
            lambda: other.create_snapshot(sandbox_id),
        ):
            expect_error(call, 404, "RESOURCE_NOT_FOUND")
    assert admin.get_sandbox(sandbox_id).status == "running"


def test_permissions(admin, sandboxes, sandbox_server):
    sandbox_id = sandboxes.create().sandbox_id
    with user_client(sandbox_server, admin, permissions=["sandbox_read"], owner="admin") as reader:
        assert reader.get_sandbox(sandbox_id).sandbox_id == sandbox_id
        expect_error(lambda: reader.create_sandbox("python"), 403, "INSUFFICIENT_PERMISSIONS", "sandbox_write")
        expect_error(lambda: reader.delete_sandbox(sandbox_id, force=True), 403, "INSUFFICIENT_PERMISSIONS")
    with user_client(sandbox_server, admin, permissions=["execute"], owner="admin") as executor:
        expect_error(lambda: executor.list_sandboxes(), 403, "INSUFFICIENT_PERMISSIONS", "sandbox_read")
    with ApplianceClient(sandbox_server.url) as anonymous:
        expect_error(lambda: anonymous.list_sandboxes(), 401, "AUTHENTICATION_REQUIRED")


@pytest.mark.parametrize(
    "body,field,words",
    [
        ({"runtime": "cobol"}, "runtime", ["cobol"]),
        ({}, "runtime", ["runtime"]),
        ({"runtime": "python", "template": "nope"}, "template", ["nope"]),
        (
            {"runtime": "python", "network": {"enabled": True, "allowed_hosts": ["api.example.com/v1"]}},
            "network.allowed_hosts",
            ["not a host name"],
        ),
        ({"runtime": "python", "engine": "gvisor", "network": {"enabled": True}}, "network.enabled", ["gvisor"]),
        ({"runtime": "python", "engine": "lxc"}, "engine", ["lxc"]),
        ({"runtime": "python", "resources": {"memory_limit": "lots"}}, "resources.memory_limit", ["512M"]),
        ({"runtime": "python", "resources": {"memory_limit": "1M"}}, "resources.memory_limit", ["minimum"]),
        (
            {"runtime": "python", "resources": {"memory_limit": "64G"}},
            "resources.memory_limit",
            ["sandbox_max_memory_mb"],
        ),
        ({"runtime": "python", "resources": {"cpu_limit": 0}}, "resources.cpu_limit", ["cores"]),
        ({"runtime": "python", "resources": {"cpu_limit": 999}}, "resources.cpu_limit", ["cores"]),
        ({"runtime": "python", "resources": {"disk_limit": "100T"}}, "resources.disk_limit", ["sandbox_max_disk_mb"]),
        ({"runtime": "python", "environment": {"1BAD": "x"}}, "environment", ["not valid"]),
        ({"runtime": "python", "environment": {"OK": "a\u0000b"}}, "environment", ["NUL"]),
        ({"runtime": "python", "name": "x" * 101}, "name", ["100"]),
        ({"runtime": "python", "colour": "blue"}, "colour", ["colour"]),
    ],
)
def test_bad_create_requests_are_400_and_store_nothing(admin, body, field, words):
    before = admin.list_sandboxes(limit=1000).total
    response = admin.http.post("/api/sandboxes", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["details"].get("field") == field, error
    for word in words:
        assert word.lower() in error["message"].lower(), error
    assert admin.list_sandboxes(limit=1000).total == before


def test_bad_updates_and_unknown_ids(admin, sandboxes):
    sandbox_id = sandboxes.create(disk_limit="1M").sandbox_id
    admin.upload_file(sandbox_id, b"y" * 100_000, name="big.bin")
    expect_error(
        lambda: admin.update_sandbox(sandbox_id, disk_limit="10K"),
        400,
        "VALIDATION_ERROR",
        "disk_limit",
        "delete files",
    )
    expect_error(lambda: admin.update_sandbox(sandbox_id, memory_limit="nope"), 400, "VALIDATION_ERROR")
    expect_error(lambda: admin.update_sandbox(sandbox_id, environment={"A-B": "1"}), 400, "VALIDATION_ERROR")
    response = admin.http.put(f"/api/sandboxes/{sandbox_id}", json={"network": {"enabled": True}})
    assert response.status_code == 400
    sandbox = admin.get_sandbox(sandbox_id)
    assert sandbox.resources.disk_limit == "1M" and sandbox.environment == {}  # nothing changed
    for call in (
        lambda: admin.get_sandbox("sb_000000000000"),
        lambda: admin.update_sandbox("sb_000000000000", cpu_limit=1),
        lambda: admin.delete_sandbox("sb_000000000000"),
    ):
        expect_error(call, 404, "RESOURCE_NOT_FOUND", "sb_000000000000")


def test_network_enabled_is_the_bridge(admin, sandboxes, docker_client):
    sandbox = sandboxes.create(network_enabled=True)
    assert sandbox.network == {"enabled": True, "allowed_hosts": []}
    host = docker_client.api.inspect_container(container_of(docker_client, sandbox.sandbox_id))["HostConfig"]
    assert host["NetworkMode"] == "bridge"
    assert admin.get_sandbox(sandbox.sandbox_id).network.enabled is True


def test_sandbox_count_limit_and_network_setting(own_server):
    server = own_server(
        env={
            "APPLIANCE_SANDBOX_MAX_COUNT": "1",
            "APPLIANCE_WARM_POOL_MIN_IDLE": "0",
            "APPLIANCE_SANDBOX_ALLOW_NETWORK": "false",
        }
    )
    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        expect_error(
            lambda: admin.create_sandbox("python", network_enabled=True),
            400,
            "VALIDATION_ERROR",
            "sandbox_allow_network",
        )
        first = Sandboxes(admin).create(wait=False).sandbox_id
        expect_error(lambda: admin.create_sandbox("python"), 409, "RESOURCE_CONFLICT", "sandbox_max_count")
        admin.wait_for_sandbox(first)
        admin.delete_sandbox(first, force=True)


@pytest.mark.slow
def test_gvisor_sandbox_is_recreated_for_new_limits(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(engine="gvisor", memory_limit="256M").sandbox_id
    container = container_of(docker_client, sandbox_id)
    assert docker_client.api.inspect_container(container)["HostConfig"]["Runtime"] == "runsc"
    admin.upload_file(sandbox_id, b"under gvisor", name="g.txt")
    assert sandbox_exec(docker_client, sandbox_id, "cat g.txt") == "under gvisor"
    updated = admin.update_sandbox(sandbox_id, memory_limit="300M")
    assert updated.status == "running" and updated.engine == "gvisor"
    after = container_of(docker_client, sandbox_id)
    assert after != container  # runsc has no `update`: a new container with the same files
    assert docker_client.api.inspect_container(after)["HostConfig"]["Memory"] == 300 << 20
    assert admin.download_file(sandbox_id, "g.txt") == b"under gvisor"
