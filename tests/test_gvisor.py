"""Engine "gvisor": code really runs under gVisor's `runsc`, with the same limits as runc.

Nothing here is skipped when gVisor is missing: `scripts/setup.sh` (which CI runs through
`scripts/test.sh`) installs Debian's runsc and registers it with dockerd, so a missing
runtime is a broken set-up and fails the suite, mandatory or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import HANG_SECONDS, ROOT, eventually, free_port, wait_for_status

GVISOR_RUNTIME = "runsc"

# Reads the kernel log the way `dmesg` does. gVisor's own kernel (the Sentry) answers it
# for any user and always starts with "Starting gVisor..."; the host kernel refuses it to
# an unprivileged process (EPERM), so under runc nothing is printed but the refusal.
KERNEL_PROBE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1 << 16)
n = libc.klogctl(3, buf, len(buf))
log = buf.raw[:n].decode(errors="replace") if n > 0 else ""
print("gvisor" if "Starting gVisor" in log else "not gvisor", "errno", 0 if n >= 0 else ctypes.get_errno())
"""


def submit(client: httpx.Client, code: str, engine: str | None, language: str = "python", timeout: float = 30) -> str:
    body = {"code": code, "language": language, "timeout": timeout}
    if engine is not None:
        body["engine"] = engine
    response = client.post("/api/eval", json=body)
    assert response.status_code == 200, response.text
    return response.json()["eval_id"]


def run_on(
    client: httpx.Client, code: str, engine: str | None, language: str = "python", timeout: float = 30, wait: float = 90
) -> dict:
    return wait_for_status(client, submit(client, code, engine, language, timeout), wait)


def assert_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "status_code"} and body["status_code"] == status, body
    for word in words:
        assert word.lower() in body["detail"].lower(), body
    return body


def stored_count(client: httpx.Client) -> int:
    return client.get("/api/evaluations", params={"limit": 1}).json()["count"]


# --- the runtime is there ---------------------------------------------------------------


def test_gvisor_runtime_is_registered(docker_client):
    """Fails, never skips: without runsc the gVisor tests would prove nothing."""
    from appliance.config import load_settings

    settings = load_settings({"data_dir": "/nonexistent-appliance-test"}, environ=dict(os.environ))
    runtimes = docker_client.info().get("Runtimes") or {}
    mandatory = " gVisor is mandatory here (require_gvisor)." if settings.require_gvisor else ""
    if settings.gvisor_runtime not in runtimes:
        pytest.fail(
            f"dockerd has no runtime {settings.gvisor_runtime!r} (it has {sorted(runtimes)}).{mandatory} "
            "Run scripts/setup.sh as root on Debian: it installs runsc and registers it.",
            pytrace=False,
        )
    if settings.gvisor_runtime == GVISOR_RUNTIME:
        assert "--network=none" in (runtimes[GVISOR_RUNTIME].get("runtimeArgs") or []), runtimes


# --- it really is gVisor ----------------------------------------------------------------


def test_engine_gvisor_runs_under_gvisor(server):
    with server.admin() as client:
        gvisor = run_on(client, KERNEL_PROBE, "gvisor")
        docker = run_on(client, KERNEL_PROBE, "docker")
        default = run_on(client, KERNEL_PROBE, None)
    assert gvisor["status"] == "completed" and gvisor["engine"] == "gvisor", gvisor
    assert gvisor["output"] == "gvisor errno 0\n", gvisor
    assert docker["engine"] == "docker" and docker["output"].startswith("not gvisor"), docker
    assert default["engine"] == "docker" and default["output"].startswith("not gvisor"), default


def test_engine_name_is_case_insensitive(server):
    with server.admin() as client:
        result = run_on(client, KERNEL_PROBE, "gVisor")
    assert result["engine"] == "gvisor" and result["output"].startswith("gvisor "), result


@pytest.mark.parametrize(
    "language,code",
    [
        ("bash", "cat /proc/version"),
        (
            "c",
            '#include <stdio.h>\nint main(void) { FILE *f = fopen("/proc/version", "r"); char b[256];'
            " fputs(fgets(b, sizeof b, f), stdout); return 0; }",
        ),
    ],
)
def test_other_languages_run_under_gvisor(server, language, code):
    """gVisor reports its own fixed kernel version, never the host's."""
    host = Path("/proc/version").read_text().strip()
    with server.admin() as client:
        result = run_on(client, code, "gvisor", language)
    assert result["status"] == "completed" and result["success"], result
    assert result["output"].startswith("Linux version") and result["output"].strip() != host, result


def test_each_gvisor_run_gets_a_fresh_sandbox_and_mixed_batches_keep_their_engine(server):
    code = (
        "import os\nfresh = not os.path.exists('/work/left-behind')\n"
        "open('/work/left-behind', 'w').write('x')\n" + KERNEL_PROBE + "print('fresh', fresh)\n"
    )
    engines = ["gvisor", "docker"] * 4
    with server.admin() as client:
        response = client.post(
            "/api/eval-batch", json={"evaluations": [{"code": code, "engine": engine} for engine in engines]}
        )
        assert response.status_code == 200, response.text
        ids = [item["eval_id"] for item in response.json()["evaluations"]]
        results = [wait_for_status(client, eval_id, 120) for eval_id in ids]
    for engine, result in zip(engines, results, strict=True):
        assert result["status"] == "completed" and result["engine"] == engine, result
        kernel, fresh = result["output"].splitlines()
        assert kernel.startswith("gvisor " if engine == "gvisor" else "not gvisor"), result
        assert fresh == "fresh True", result


# --- the same limits as runc ------------------------------------------------------------


def test_gvisor_sandbox_profile(server):
    code = (
        "import os, resource\n"
        "print('uid', os.getuid())\n"
        "try:\n    open('/etc/evil', 'w')\n    print('root writable')\nexcept OSError:\n    print('root read-only')\n"
        "open('/work/ok', 'w').write('x'); print('work writable')\n"
        "print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "print('fsize', resource.getrlimit(resource.RLIMIT_FSIZE)[0])\n"
        "print('nproc', resource.getrlimit(resource.RLIMIT_NPROC)[0])\n"
    )
    with server.admin() as client:
        result = run_on(client, code, "gvisor")
    assert result["output"].splitlines() == [
        "uid 65534",
        "root read-only",
        "work writable",
        "nofile 256",
        f"fsize {16 * 1024 * 1024}",
        "nproc 64",
    ], result


def test_gvisor_has_no_network(server):
    code = (
        "import socket\n"
        "print([name for _, name in socket.if_nameindex()])\n"
        "try:\n    socket.getaddrinfo('deb.debian.org', 80)\n    print('dns ok')\n"
        "except OSError:\n    print('dns failed')\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect(('127.0.0.1', 9))\n    print('connected')\n"
        "except OSError:\n    print('connect failed')\n"
        # A UDP connect only looks up a route and sends nothing: no route, no network.
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    u.connect(('10.255.255.1', 53))\n    print('route found')\n"
        "except OSError:\n    print('no route')\n"
    )
    with server.admin() as client:
        result = run_on(client, code, "gvisor")
    assert result["output"].splitlines() == ["['lo']", "dns failed", "connect failed", "no route"], result


def test_gvisor_timeout_is_enforced_from_outside(server):
    with server.admin() as client:
        result = run_on(client, "import time\nprint('start', flush=True)\ntime.sleep(600)", "gvisor", timeout=2)
    assert result["status"] == "timeout" and result["reason"] == "timeout", result
    assert result["output"] == "start\n"
    assert 2 <= result["execution_time"] < HANG_SECONDS, result  # ended by the timeout, not by the program


def test_gvisor_kill_a_running_evaluation(server):
    with server.admin() as client:
        eval_id = submit(client, "import time\nprint('go', flush=True)\ntime.sleep(600)", "gvisor", timeout=300)
        eventually(
            lambda: "go" in client.get(f"/api/eval/{eval_id}/logs").json()["output"],
            message="'go' in the running evaluation's output",
        )
        assert client.post(f"/api/eval/{eval_id}/kill").json()["killed"] is True
        result = wait_for_status(client, eval_id)
    assert result["status"] == "failed" and result["reason"] == "killed", result


def test_gvisor_memory_bomb_is_killed(server):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    with server.admin() as client:
        result = run_on(client, code, "gvisor", timeout=30)
        assert client.get("/api/status").status_code == 200
    assert result["status"] == "failed" and result["reason"] == "memory_limit", result
    # Killed by the host's OOM killer (137), or, when gVisor refused the allocation
    # itself, ended by the MemoryError (1).
    assert result["exit_code"] in (137, 1), result


def test_gvisor_fork_bomb_is_contained(server):
    """runsc cannot take a pids limit, so processes are capped by RLIMIT_NPROC instead.

    The children exec a small program: 63 sleeping copies of Python use more than the
    256 MB memory limit under gVisor (about 280 MB here), so a pure-Python fork bomb is
    stopped by the memory limit first; that is covered by the second half."""
    small = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            try:\n                os.execv('/bin/sleep', ['sleep', '30'])\n"
        "            finally:\n                os._exit(1)\n        n += 1\nexcept OSError as e:\n"
        "    print('stopped after', n, type(e).__name__, flush=True)\n"
    )
    python = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n"
        "    print('stopped after', n, type(e).__name__, flush=True)\n"
    )
    with server.admin() as client:
        eval_id = submit(client, small, "gvisor", timeout=10)
        wait_for_status(client, eval_id, until=("running", "completed", "failed", "timeout"))
        # The server answers while the bomb goes off (how fast: bench/status_under_load.py).
        assert client.get("/api/status").status_code == 200
        result = wait_for_status(client, eval_id)
        assert "stopped after" in result["output"], result
        assert int(result["output"].split()[2]) < 64
        result = run_on(client, python, "gvisor", timeout=10)
        assert client.get("/api/status").status_code == 200
    if "stopped after" in result["output"]:
        assert int(result["output"].split()[2]) < 64, result
    else:
        assert result["status"] == "failed" and result["reason"] == "memory_limit", result


def test_gvisor_shell_fork_bomb_is_contained(server):
    with server.admin() as client:
        result = run_on(client, ":(){ :|:& };:", "gvisor", "bash", timeout=5)
        assert client.get("/api/status").status_code == 200
    assert result["status"] in ("timeout", "completed", "failed"), result


def test_status_lists_both_engines(server):
    with server.admin() as client:
        status = client.get("/api/status").json()
    assert status["engines"] == {"docker": "available", "gvisor": "available"}, status
    assert status["platform"] == "healthy"


# --- settings: enabled, missing, mandatory ----------------------------------------------


def test_gvisor_not_enabled_is_400(fresh_server):
    server = fresh_server(env={"APPLIANCE_ENGINES": "docker"})
    with server.admin() as client:
        before = stored_count(client)
        assert_error(client.post("/api/eval", json={"code": "print(1)", "engine": "gvisor"}), 400, "not enabled")
        assert stored_count(client) == before
        assert client.get("/api/status").json()["engines"] == {"docker": "available"}


def test_gvisor_enabled_but_runtime_missing_is_503(fresh_server):
    server = fresh_server(env={"APPLIANCE_GVISOR_RUNTIME": "does-not-exist"})
    with server.admin() as client:
        before = stored_count(client)
        body = assert_error(
            client.post("/api/eval", json={"code": "print(1)", "engine": "gvisor"}),
            503,
            "does-not-exist",
            "runsc",
            "scripts/setup.sh",
        )
        assert body["error"] == "Service unavailable"
        batch = client.post(
            "/api/eval-batch", json={"evaluations": [{"code": "print(1)"}, {"code": "print(2)", "engine": "gvisor"}]}
        )
        assert_error(batch, 503, "runsc")
        assert stored_count(client) == before
        assert run_on(client, "print('still fine')", "docker")["output"] == "still fine\n"
        status = client.get("/api/status").json()
    assert status["engines"] == {"docker": "available", "gvisor": "unavailable"}, status
    assert status["platform"] == "healthy" and status["services"]["executor"] == "healthy"


def test_require_gvisor_refuses_docker_and_defaults_to_gvisor(fresh_server):
    server = fresh_server(env={"APPLIANCE_REQUIRE_GVISOR": "1"})
    with server.admin() as client:
        before = stored_count(client)
        assert_error(
            client.post("/api/eval", json={"code": "print(1)", "engine": "docker"}), 400, "gvisor is mandatory"
        )
        batch = client.post(
            "/api/eval-batch",
            json={"evaluations": [{"code": "print(1)", "engine": "gvisor"}, {"code": "print(2)", "engine": "docker"}]},
        )
        assert_error(batch, 400, "evaluations[1]", "gvisor is mandatory")
        assert stored_count(client) == before
        default = run_on(client, KERNEL_PROBE, None)
        named = run_on(client, KERNEL_PROBE, "gvisor")
        status = client.get("/api/status").json()
    assert default["engine"] == "gvisor" and default["output"] == "gvisor errno 0\n", default
    assert named["engine"] == "gvisor" and named["output"] == "gvisor errno 0\n", named
    assert status["engines"] == {"gvisor": "available"} and status["platform"] == "healthy", status


def test_require_gvisor_without_the_runtime_refuses_to_start(docker_client, tmp_path):
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "APPLIANCE_REQUIRE_GVISOR": "1",
        "APPLIANCE_GVISOR_RUNTIME": "does-not-exist",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode != 0, proc
    lines = [line for line in proc.stderr.splitlines() if line.startswith("appliance:")]
    assert len(lines) == 1, proc.stderr
    for words in ("gvisor is mandatory", "require_gvisor", "does-not-exist", "runsc", "scripts/setup.sh"):
        assert words in lines[0].lower(), lines[0]
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stderr, proc.stderr


def test_require_gvisor_needs_gvisor_enabled(tmp_path):
    env = {**os.environ, "APPLIANCE_REQUIRE_GVISOR": "1", "APPLIANCE_ENGINES": "docker"}
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and "require_gvisor" in proc.stderr, proc.stderr


def test_container_options_use_the_configured_runtime():
    from appliance.runtime.limits import SandboxLimits, container_options

    gvisor = container_options(SandboxLimits(), engine="gvisor")
    assert gvisor["runtime"] == "runsc" and "pids_limit" not in gvisor
    assert any(u["Name"] == "nproc" and u["Hard"] == 64 for u in gvisor["ulimits"])
    assert container_options(SandboxLimits(gvisor_runtime="gvisor-kvm"), engine="gvisor")["runtime"] == "gvisor-kvm"
    assert container_options(SandboxLimits(), engine="gvisor", gvisor_runtime="other")["runtime"] == "other"
    docker = container_options(SandboxLimits(), engine="docker")
    assert "runtime" not in docker and docker["pids_limit"] == 64
