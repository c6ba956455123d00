"""POST /api/execute, GET and DELETE /api/execute/{id} (sandbox-api.md "Code Execution
API"), through the Python client a team script would use, against real containers."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading

import pytest

from appliance.client import ApplianceClient
from tests.support import HANG_SECONDS, assert_sandbox_error, eventually, expect_api_error, start_server

RESULT_KEYS = {
    "execution_id",
    "status",
    "output",
    "error",
    "exit_code",
    "execution_time",
    "memory_used",
    "files_created",
}


@pytest.fixture
def admin(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def stored_executions(server) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'appliance.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM evaluations WHERE kind = 'execute'").fetchone()[0]


def execution_id_of(server, marker: str) -> str:
    """The id of the running execution whose code holds `marker` (its POST is waiting)."""

    def running() -> str | None:
        with sqlite3.connect(f"file:{server.data_dir / 'appliance.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT eval_id FROM evaluations WHERE kind = 'execute' AND status = 'running' AND instr(code, ?) > 0",
                (marker,),
            ).fetchone()
        return row[0] if row else None

    return eventually(running, interval=0.05, message=f"a running execution with {marker!r}")


def in_background(call):
    box: dict = {}

    def run():
        try:
            box["result"] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


# --- results ------------------------------------------------------------------------------


def test_hello_world_as_documented(admin):
    result = admin.execute(language="python", code="print('Hello, World!')")
    assert set(result) == RESULT_KEYS
    assert re.fullmatch(r"exec_\d{8}_\d{6}_[0-9a-f]{6}", result.execution_id)
    assert result.status == "completed" and result.output == "Hello, World!\n"
    assert result.error is None and result.exit_code == 0
    assert 0 < result.execution_time < HANG_SECONDS and result.memory_used > 1024 * 1024
    assert result.files_created == []


@pytest.mark.parametrize(
    "language, code",
    [
        ("nodejs", "console.log('Hello, World!')"),
        ("bash", "echo 'Hello, World!'"),
        ("c", '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }'),
    ],
)
def test_other_languages_and_their_build_output_is_not_a_created_file(admin, language, code):
    result = admin.execute(language=language, code=code)
    assert (result.status, result.output, result.files_created) == ("completed", "Hello, World!\n", [])


def test_a_failing_program_is_200_with_status_failed_and_stderr_as_error(admin):
    result = admin.execute(language="python", code="import sys\nprint('out')\nsys.exit('went wrong')")
    assert (result.status, result.exit_code, result.output) == ("failed", 1, "out\n")
    assert result.error == "went wrong\n"


def test_files_in_and_files_created_out(admin):
    code = (
        "import os\ntext = open('input.txt').read()\nopen('input.txt', 'a').write('changed')\n"
        "open('out.txt', 'w').write(text.upper())\nos.makedirs('sub/deeper')\n"
        "open('sub/deeper/data.bin', 'wb').write(bytes(3000))\nprint(open('data/extra.csv').read())"
    )
    result = admin.execute(
        language="python",
        code=code,
        files=[{"name": "input.txt", "content": "Sample input data"}, {"name": "data/extra.csv", "content": "a,b"}],
    )
    assert result.status == "completed" and result.output == "a,b\n", result
    # Inputs (even changed) and the source file are not created files.
    assert sorted(result.files_created, key=lambda f: f.name) == [
        {"name": "out.txt", "size": len("SAMPLE INPUT DATA")},
        {"name": "sub/deeper/data.bin", "size": 3000},
    ]


def test_files_created_by_a_shell_program(admin):
    code = "cat in.txt > 'with space.txt'\nmkdir -p d\nprintf 12345 > d/five\n"
    result = admin.execute(language="bash", code=code, files={"in.txt": "hello"})
    assert result.status == "completed", result
    assert sorted((f.name, f.size) for f in result.files_created) == [("d/five", 5), ("with space.txt", 5)]


SECRET = "s3cr3t-value-that-must-not-be-stored"
SECRET_SHA256 = hashlib.sha256(SECRET.encode()).hexdigest()


@pytest.mark.parametrize(
    "language, code",
    [
        (
            "python",
            "import hashlib, os\nprint(repr(os.environ['CUSTOM_VAR']))\nprint(repr(os.environ['QUOTED']))\n"
            "print(hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest())",
        ),
        ("bash", 'printf \'%s|\' "$CUSTOM_VAR" "$QUOTED"\nprintf \'%s\' "$API_TOKEN" | sha256sum'),
    ],
)
def test_environment_reaches_the_program_and_is_never_stored(admin, server, language, code):
    environment = {"CUSTOM_VAR": "value", "QUOTED": 'it\'s "two"\nlines $HOME', "API_TOKEN": SECRET}
    result = admin.execute(language=language, code=code, environment=environment)
    assert result.status == "completed", result
    if language == "python":
        assert result.output.splitlines() == ["'value'", repr(environment["QUOTED"]), SECRET_SHA256]
    else:
        assert result.output == f"value|{environment['QUOTED']}|{SECRET_SHA256}  -\n"
    # The program never printed the secret: it must be nowhere in the database files.
    for path in server.data_dir.glob("appliance.db*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_pythonpath_applies_to_the_program(admin):
    result = admin.execute(
        language="python",
        code="import helper\nprint(helper.X)",
        files={"lib/helper.py": "X = 42"},
        environment={"PYTHONPATH": "/work/lib"},
    )
    assert result.output == "42\n", result


# --- limits ---------------------------------------------------------------------------------


def test_memory_limit_is_enforced(admin):
    allocate = "data = bytearray({mb} * 1024 * 1024)\nprint('allocated')"
    small = admin.execute(language="python", code=allocate.format(mb=200), memory_limit="64M")
    assert small.status == "failed" and small.exit_code == 137, small
    assert "memory" in small.error
    # Above the default of 256M: the limit was raised, not just kept.
    large = admin.execute(
        language="python",
        code=allocate.format(mb=300) + "\nprint(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())",
        memory_limit="512M",
    )
    assert large.status == "completed" and large.output == f"allocated\n{512 * 1024 * 1024}\n", large
    assert admin.get_execution(large.execution_id).memory_limit == "512M"


def test_cpu_limit_is_the_containers_cpu_quota(admin):
    code = (
        "quota = int(open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read())\n"
        "period = int(open('/sys/fs/cgroup/cpu/cpu.cfs_period_us').read())\nprint(quota / period)"
    )
    assert admin.execute(language="python", code=code, cpu_limit=0.5).output == "0.5\n"
    assert admin.execute(language="python", code=code).output == "1.0\n"


def test_cpu_limit_throttles_a_busy_loop(admin):
    """CPU time over wall time of a busy loop stays near the quota (an upper bound only:
    the 2 cores of a test machine may be shared, which lowers it but never raises it)."""
    code = (
        "import os, time\nstart = time.monotonic()\nwhile time.monotonic() - start < 1.5:\n    pass\n"
        "t = os.times()\nprint((t.user + t.system) / (time.monotonic() - start))"
    )
    ratio = float(admin.execute(language="python", code=code, cpu_limit=0.25).output)
    assert 0 < ratio < 0.45, ratio


def test_timeout_kills_the_program(admin):
    result = admin.execute(language="python", code="import time\nprint('start', flush=True)\ntime.sleep(30)", timeout=1)
    assert result.status == "timeout" and result.output == "start\n", result
    assert "timeout" in result.error and 0.9 < result.execution_time < HANG_SECONDS


def test_network_access_gives_an_interface_and_none_is_loopback_only(admin):
    code = "import os\nprint(sorted(os.listdir('/sys/class/net')))\nprint('eth0:' in open('/proc/net/dev').read())"
    assert admin.execute(language="python", code=code).output == "['lo']\nFalse\n"
    assert admin.execute(language="python", code=code, network_access=True).output == "['eth0', 'lo']\nTrue\n"


def test_gvisor_runs_with_its_own_limits(admin):
    allocate = "data = bytearray({mb} * 1024 * 1024)\nprint('allocated')"
    big = admin.execute(language="python", code=allocate.format(mb=300), memory_limit="512M", engine="gvisor")
    assert big.status == "completed" and big.output == "allocated\n", big
    small = admin.execute(language="python", code=allocate.format(mb=200), memory_limit="64M", engine="gvisor")
    assert small.status == "failed" and "memory" in (small.error or "").lower(), small
    expect_api_error(
        lambda: admin.execute(language="python", code="print(1)", engine="gvisor", network_access=True),
        400,
        "VALIDATION_ERROR",
        "gvisor",
        "network",
    )


# --- invalid requests ----------------------------------------------------------------------

BAD_REQUESTS = [
    ({"language": "cobol", "code": "x"}, "language", "unknown language"),
    ({"code": "print(1)"}, "language", "language is required"),
    ({"language": "python"}, "code", "code"),
    ({"language": "python", "code": "x", "memory_limit": "lots"}, "memory_limit", "not a size"),
    ({"language": "python", "code": "x", "memory_limit": "1K"}, "memory_limit", "below"),
    ({"language": "python", "code": "x", "memory_limit": "64G"}, "memory_limit", "execute_max_memory_mb"),
    ({"language": "python", "code": "x", "timeout": -1}, "timeout", "timeout must be"),
    ({"language": "python", "code": "x", "timeout": 100000}, "timeout", "timeout must be"),
    ({"language": "python", "code": "x", "timeout": "soon"}, "timeout", "timeout"),
    ({"language": "python", "code": "x", "cpu_limit": 0}, "cpu_limit", "cpu_limit"),
    ({"language": "python", "code": "x", "cpu_limit": 1000}, "cpu_limit", "host's cores"),
    ({"language": "python", "code": "x", "environment": {"1BAD": "x"}}, "environment", "not valid"),
    ({"language": "python", "code": "x", "environment": {"A-B": "x"}}, "environment", "not valid"),
    ({"language": "python", "code": "x", "environment": {"PATH": "/x"}}, "environment", "cannot be overridden"),
    ({"language": "python", "code": "x", "environment": {"LD_PRELOAD": "x"}}, "environment", "cannot be overridden"),
    ({"language": "python", "code": "x", "environment": {"A": "x\u0000y"}}, "environment", "NUL"),
    ({"language": "python", "code": "x", "environment": {f"V{i}": "x" for i in range(101)}}, "environment", "at most"),
    ({"language": "python", "code": "x", "environment": {"A": 1}}, "environment", "environment"),
    (
        {"language": "python", "code": "x", "files": [{"name": f"f{i}", "content": ""} for i in range(101)]},
        "files",
        "at most",
    ),
    (
        {"language": "python", "code": "x", "files": [{"name": "../escape", "content": ""}]},
        "files",
        "inside the work dir",
    ),
    ({"language": "python", "code": "x", "files": [{"name": "/etc/passwd", "content": ""}]}, "files", "absolute"),
    (
        {"language": "python", "code": "x", "files": [{"name": "a", "content": ""}, {"name": "a", "content": ""}]},
        "files",
        "twice",
    ),
    (
        {"language": "python", "code": "x", "files": [{"name": "main.py", "content": ""}]},
        "files",
        "where the code goes",
    ),
    ({"language": "python", "code": "x", "files": [{"name": "a"}]}, None, "content"),
    ({"language": "python", "code": "x", "engine": "qemu"}, "engine", "unknown engine"),
    ({"language": "python", "code": "x", "memory": "1G"}, "memory", "unknown field"),
]


def test_every_invalid_request_is_a_400_in_the_sandbox_shape_and_stores_nothing(server):
    before = stored_executions(server)
    with server.admin() as client:
        for body, field, words in BAD_REQUESTS:
            response = client.post("/api/execute", json=body)
            error = assert_sandbox_error(response, 400, "VALIDATION_ERROR", words)
            if field is not None:
                assert str(error["details"].get("field")).startswith(field), (body, error)
        assert_sandbox_error(
            client.post("/api/execute", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "VALIDATION_ERROR",
            "json",
        )
    assert stored_executions(server) == before


def test_network_access_can_be_turned_off(fresh_server):
    proc = fresh_server(env={"APPLIANCE_EXECUTE_ALLOW_NETWORK": "false", "APPLIANCE_ENGINES": "docker"})
    with ApplianceClient(proc.url, api_key=proc.admin_key) as client:
        expect_api_error(
            lambda: client.execute(language="python", code="print(1)", network_access=True),
            400,
            "VALIDATION_ERROR",
            "execute_allow_network",
        )


# --- authentication, permissions, ownership --------------------------------------------------


def test_401_without_a_key_and_403_without_execute(admin, server):
    with server.client() as anonymous:
        assert_sandbox_error(
            anonymous.post("/api/execute", json={"language": "python", "code": "print(1)"}),
            401,
            "AUTHENTICATION_REQUIRED",
        )
        assert_sandbox_error(anonymous.get("/api/execute/exec_x"), 401, "AUTHENTICATION_REQUIRED")
    done = admin.execute(language="python", code="print(1)")
    reader = admin.create_api_key("exec-reader", ["sandbox_read"])
    with ApplianceClient(server.url, api_key=reader.api_key) as client:
        for call in (
            lambda: client.execute(language="python", code="print(1)"),
            lambda: client.get_execution(done.execution_id),
            lambda: client.cancel_execution(done.execution_id),
        ):
            error = expect_api_error(call, 403, "INSUFFICIENT_PERMISSIONS", "execute")
            assert error.details == {"required_permission": "execute"}


def test_someone_elses_execution_is_404(admin, server):
    mine = admin.execute(language="python", code="print('mine')")
    other = admin.create_api_key("exec-other", ["execute"], owner="someone-else")
    with ApplianceClient(server.url, api_key=other.api_key) as client:
        expect_api_error(lambda: client.get_execution(mine.execution_id), 404, "RESOURCE_NOT_FOUND")
        expect_api_error(lambda: client.cancel_execution(mine.execution_id), 404, "RESOURCE_NOT_FOUND")
        theirs = client.execute(language="python", code="print('theirs')")
        assert client.get_execution(theirs.execution_id).status == "completed"
    assert admin.get_execution(theirs.execution_id).output == "theirs\n"  # admins see every owner's
    expect_api_error(lambda: admin.get_execution("exec_20000101_000000_000000"), 404, "RESOURCE_NOT_FOUND")


def test_executions_are_not_platform_evaluations(admin, server):
    result = admin.execute(language="python", code="print(1)")
    with server.admin() as client:
        assert client.get(f"/api/eval-status/{result.execution_id}").status_code == 404
        listed = client.get("/api/evaluations", params={"limit": 1000}).json()["evaluations"]
    assert all(not e["eval_id"].startswith("exec_") for e in listed)


def test_executions_are_counted_in_metrics(admin):
    pattern = re.compile(
        r'^appliance_executions_total\{status="completed",language="bash",engine="docker"\} (\d+)', re.M
    )

    def count() -> int:
        match = pattern.search(admin.metrics_text())
        return int(match.group(1)) if match else 0

    before = count()
    admin.execute(language="bash", code="echo counted")
    assert count() >= before + 1


# --- state, progress, cancel ------------------------------------------------------------------


def test_get_while_running_and_after_and_delete_cancels_the_waiting_post(admin, server, docker_client):
    marker = "cancel-me-7f3a"
    code = f"import socket, time\n# {marker}\nprint(socket.gethostname(), flush=True)\ntime.sleep(600)"
    thread, box = in_background(lambda: admin.execute(language="python", code=code, timeout=300))
    execution_id = execution_id_of(server, marker)
    # Progress is the share of the timeout used, to three places: above 0 a moment after the start.
    running = eventually(
        lambda: (state := admin.get_execution(execution_id)).progress > 0 and state, message="progress above 0"
    )
    assert running.status == "running" and running.started_at.endswith("Z") and running.completed_at is None
    assert 0 < running.progress < 1
    assert "output" not in running and "exit_code" not in running  # result fields come at the end

    cancelled = admin.cancel_execution(execution_id)
    assert cancelled == {
        "execution_id": execution_id,
        "status": "cancelled",
        "message": "Execution cancelled successfully",
    }
    thread.join(HANG_SECONDS)
    posted = box["result"]
    assert posted.status == "cancelled" and posted.execution_id == execution_id
    assert "cancelled" in posted.error
    hostname = posted.output.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", hostname), posted

    after = admin.get_execution(execution_id)
    assert after.status == "cancelled" and after.progress == 1.0 and after.completed_at.endswith("Z")
    assert set(RESULT_KEYS) <= set(after) and after.output == posted.output
    error = expect_api_error(
        lambda: admin.cancel_execution(execution_id), 409, "RESOURCE_CONFLICT", "already ended", "cancelled"
    )
    assert error.details["status"] == "cancelled"
    eventually(
        lambda: not docker_client.containers.list(all=True, ignore_removed=True, filters={"id": hostname}),
        message="the cancelled execution's container gone",
    )


def test_a_finished_execution_cannot_be_cancelled(admin):
    done = admin.execute(language="python", code="print('done')")
    state = admin.get_execution(done.execution_id)
    assert state.status == "completed" and state.progress == 1.0 and state.output == "done\n"
    expect_api_error(lambda: admin.cancel_execution(done.execution_id), 409, "RESOURCE_CONFLICT", "completed")


@pytest.mark.slow
def test_a_restart_fails_running_and_queued_executions_with_a_reason(runtime_images, tmp_path):
    env = {"APPLIANCE_WORKERS": "1", "APPLIANCE_ENGINES": "docker", "APPLIANCE_RATE_LIMIT_EXECUTE": "1000"}
    data = tmp_path / "data"
    proc = start_server(data, env=env)
    try:
        client = ApplianceClient(proc.url, api_key=proc.admin_key)
        in_background(lambda: client.execute(language="python", code="import time  # first-4c1d\ntime.sleep(60)"))
        first = execution_id_of(proc, "first-4c1d")
        in_background(
            lambda: client.execute(
                language="python", code="print('second')  # second-9e2b", environment={"TOKEN": SECRET}
            )
        )
        eventually(lambda: stored_executions(proc) >= 2, interval=0.05, message="both executions stored")
        proc.kill_hard()
    finally:
        proc.stop()
    with sqlite3.connect(data / "appliance.db") as db:
        second = db.execute("SELECT eval_id FROM evaluations WHERE instr(code, 'second-9e2b') > 0").fetchone()[0]
    proc = start_server(data, env=env)
    try:
        with ApplianceClient(proc.url, api_key=proc.admin_key) as client:
            running, queued = client.get_execution(first), client.get_execution(second)
    finally:
        proc.stop()
    assert running.status == "failed" and "restarted" in running.error, running
    assert queued.status == "failed" and "restarted before this execution started" in queued.error, queued
    assert queued.started_at is None and queued.progress == 1.0
