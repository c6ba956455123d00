"""`appliance doctor` on the real machine: the real CLI, the real engine, real files,
sockets and servers; each broken setup made for real and found with its fix."""

from __future__ import annotations

import json
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.store.database import schema_version
from tests.support import ROOT, free_port, start_server

CHECK_NAMES = [
    "docker engine",
    "runtime runc",
    "runtime gvisor",
    "runtime images",
    "disk data dir",
    "disk docker",
    "data dir",
    "secrets",
    "database",
    "port",
    "clock sync",
    "clock engine",
]


def doctor(
    data_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None, as_json: bool = True
) -> tuple[int, dict | str]:
    """Run the CLI as a user would; with --json, the checks by name."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_") or k == "APPLIANCE_TEST"}
    # A port of its own: another appliance on this machine may hold the default 8080.
    full_env = {**clean, "APPLIANCE_PORT": str(port or free_port()), **(env or {})}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "doctor",
            "--data-dir",
            str(data_dir),
            *args,
            *(["--json"] if as_json else []),
        ],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if not as_json:
        return done.returncode, done.stdout
    report = json.loads(done.stdout)
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    assert report["checked_at"].endswith("Z")
    assert report["status"] == ("FAIL" if done.returncode else report["status"])
    return done.returncode, {c["name"]: c for c in report["checks"]}


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)  # whatever the umask
    return path


def test_all_good_on_this_machine(runtime_images, tmp_path):
    code, checks = doctor(tmp_path / "not-made-yet")
    assert code == 0, checks
    assert all(c["status"] in ("OK", "WARN") for c in checks.values()), checks
    for name in (
        "docker engine",
        "runtime runc",
        "runtime images",
        "disk data dir",
        "data dir",
        "secrets",
        "database",
        "port",
    ):
        assert checks[name]["status"] == "OK", checks[name]
    assert "cgroup v" in checks["docker engine"]["found"]
    assert "ran `true`" in checks["runtime runc"]["found"]
    assert "does not exist yet" in checks["data dir"]["found"]
    # Not made by looking: no data dir, database or secret appeared.
    assert not (tmp_path / "not-made-yet").exists()

    code, text = doctor(tmp_path / "not-made-yet", as_json=False)
    assert code == 0
    for name in CHECK_NAMES:
        assert name in text
    assert text.splitlines()[-1].endswith("nothing blocks the appliance")


def test_world_readable_admin_key_warns_with_the_chmod_that_fixes_it(tmp_path):
    data = private_dir(tmp_path / "data")
    key = data / "admin.key"
    key.write_text("key\n")
    key.chmod(0o644)
    (data / "jwt.secret").write_text("secret\n")
    (data / "jwt.secret").chmod(0o600)

    code, checks = doctor(data)
    secrets = checks["secrets"]
    assert code == 0  # a warning, not a failure
    assert secrets["status"] == "WARN" and "admin.key is mode 0644" in secrets["found"], secrets
    assert secrets["fix"] == f"chmod 600 {key}"

    subprocess.run(shlex.split(secrets["fix"]), check=True)  # the fix, as printed, works
    assert doctor(data)[1]["secrets"]["status"] == "OK"


def test_data_dir_open_to_others_warns(tmp_path):
    data = private_dir(tmp_path / "data")
    data.chmod(0o755)
    check = doctor(data)[1]["data dir"]
    assert check["status"] == "WARN" and "mode 0755" in check["found"], check
    assert check["fix"] == f"chmod go-rwx {data}"
    subprocess.run(shlex.split(check["fix"]), check=True)  # the fix, as printed, works
    assert doctor(data)[1]["data dir"]["status"] == "OK"


def test_port_held_by_another_process_fails_naming_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, checks = doctor(private_dir(tmp_path / "data"), port=port)
    check = checks["port"]
    assert code == 1
    assert check["status"] == "FAIL", check
    assert f"127.0.0.1:{port}" in check["found"] and f"pid {os.getpid()}" in check["found"], check
    assert "appliance serve --port" in check["fix"], check


@pytest.mark.slow
def test_port_held_by_a_running_appliance_is_serving(runtime_images, tmp_path):
    server = start_server(tmp_path / "data")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        code, checks = doctor(server.data_dir, port=port)
    finally:
        server.stop()
    assert checks["port"]["status"] == "OK", checks["port"]
    assert checks["port"]["found"].startswith("serving: appliance ") and str(port) in checks["port"]["found"]
    # What the server wrote passes: its secrets are 0600, its database is current.
    assert checks["secrets"]["status"] == "OK", checks["secrets"]
    assert checks["database"]["status"] == "OK" and "(current)" in checks["database"]["found"]
    assert code == 0


def test_database_from_a_newer_appliance_fails_as_the_server_would(tmp_path):
    data = private_dir(tmp_path / "data")
    newer = schema_version() + 5
    with sqlite3.connect(data / "appliance.db") as conn:
        conn.execute(f"PRAGMA user_version = {newer}")

    code, checks = doctor(data)
    check = checks["database"]
    assert code == 1
    assert check["status"] == "FAIL", check
    assert f"schema version {newer}" in check["found"] and str(schema_version()) in check["found"]
    assert "newer appliance binary" in check["fix"]

    # The same words the server refuses to start with.
    port = free_port()
    served = subprocess.run(
        [sys.executable, "-m", "appliance", "serve", "--data-dir", str(data), "--port", str(port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert check["found"] in served.stdout + served.stderr


def test_unreachable_docker_host_fails_with_how_to_start_it(tmp_path):
    code, checks = doctor(private_dir(tmp_path / "data"), env={"APPLIANCE_DOCKER_HOST": "unix:///nonexistent.sock"})
    engine = checks["docker engine"]
    assert code == 1
    assert engine["status"] == "FAIL", engine
    assert "unix:///nonexistent.sock" in engine["found"] and "does not exist" in engine["found"]
    assert "dockerd" in engine["fix"] and (
        "systemctl start docker" in engine["fix"] or "apt-get install -y docker.io" in engine["fix"]
    )
    assert "APPLIANCE_DOCKER_HOST" in engine["fix"]
    for name in ("runtime runc", "runtime gvisor", "runtime images", "disk docker", "clock engine"):
        assert checks[name]["status"] == "WARN" and "not checked" in checks[name]["found"]

    code, text = doctor(tmp_path / "data", env={"APPLIANCE_DOCKER_HOST": "unix:///nonexistent.sock"}, as_json=False)
    assert code == 1
    assert "FAIL  docker engine" in text and "fix: " in text


@pytest.mark.parametrize("required", [True, False])
def test_gvisor_runtime_not_registered(tmp_path, required):
    env = {"APPLIANCE_GVISOR_RUNTIME": "doctor-no-such-runtime", "APPLIANCE_REQUIRE_GVISOR": str(required).lower()}
    code, checks = doctor(private_dir(tmp_path / "data"), env=env)
    check = checks["runtime gvisor"]
    assert check["status"] == ("FAIL" if required else "WARN"), check
    assert code == (1 if required else 0)
    assert "'doctor-no-such-runtime'" in check["found"]
    assert '"doctor-no-such-runtime": {"path": ' in check["fix"] and '"runtimeArgs": ["--network=none"]' in check["fix"]
    assert "daemon.json" in check["fix"]
