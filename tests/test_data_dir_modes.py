"""The data dir is the owner's alone: 0700 directories and 0600 files, however it was
made, tightened on every start, and `appliance doctor` agrees; the sandboxes' own trees
keep the modes their container user needs."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from appliance.client import ApplianceClient
from tests.sandbox_support import SERVER_ENV, remove_sandbox_containers, sandbox_exec
from tests.support import eventually, start_server
from tests.test_doctor import doctor

OWN_FILES = ("appliance.db", "appliance.db-wal", "appliance.db-shm", "admin.key", "jwt.secret", "telemetry.db")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_of_own_paths(data: Path) -> dict[str, int]:
    """Every path the appliance owns in the data dir (the sandboxes' files trees aside)."""
    found = {".": mode(data)}
    for root, dirs, files in os.walk(data):
        rel = Path(root).relative_to(data)
        if rel.parts[:1] == ("sandboxes",) and len(rel.parts) >= 2:
            dirs[:] = []  # below sandboxes/<id>: the container user's tree
            found[str(rel)] = mode(Path(root))
            continue
        for name in dirs + files:
            found[str(rel / name)] = mode(Path(root) / name)
    return found


def assert_private(data: Path) -> None:
    loose = {rel: oct(bits) for rel, bits in modes_of_own_paths(data).items() if bits & 0o077}
    assert not loose, loose
    for name in OWN_FILES:
        assert mode(data / name) == 0o600, (name, oct(mode(data / name)))


def test_a_data_dir_made_loose_is_private_after_start_and_stays_so(runtime_images, docker_client, tmp_path):
    # As scripts/run.sh left it under a 022 umask: the dir 0755, and the start itself
    # under the same umask.
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    old_umask = os.umask(0o022)
    try:
        server = start_server(data, env=SERVER_ENV)
    finally:
        os.umask(old_umask)
    try:
        with ApplianceClient(server.url, api_key=server.admin_key) as admin:
            sandbox_id = admin.create_sandbox("python").sandbox_id
            admin.wait_for_sandbox(sandbox_id, timeout=90)
            eventually(lambda: (data / "appliance.db-wal").exists(), message="the WAL file exists")
            assert_private(data)
            files_dir = data / "sandboxes" / sandbox_id / "files"
            files_mode = mode(files_dir)

            # The sandbox's user still writes its tree.
            sandbox_exec(docker_client, sandbox_id, "echo hi > /sandbox/made-inside")
            assert (files_dir / "made-inside").read_text() == "hi\n"
        server.stop()

        # Loosened while stopped (a copy made with cp -r, an operator's chmod): the
        # doctor warns with a fix, and the next start tightens it all again.
        for path in (data, data / "sandboxes", data / "sandboxes" / sandbox_id):
            path.chmod(0o755)
        for name in OWN_FILES:
            if (data / name).exists():
                (data / name).chmod(0o644)
        _code, checks = doctor(data)
        assert checks["data dir"]["status"] == "WARN", checks["data dir"]
        assert "open to other users" in checks["data dir"]["found"]

        server = start_server(data, env=SERVER_ENV)
        with ApplianceClient(server.url, api_key=server.admin_key) as admin:
            admin.wait_for_sandbox(sandbox_id, timeout=90)
            assert_private(data)
            assert mode(files_dir) == files_mode  # the container user's tree is left as it was
            sandbox_exec(docker_client, sandbox_id, "echo again >> /sandbox/made-inside")
            assert (files_dir / "made-inside").read_text() == "hi\nagain\n"
        _code, checks = doctor(data, port=int(server.url.rsplit(":", 1)[1]))
        assert checks["data dir"]["status"] == "OK", checks["data dir"]
        assert checks["secrets"]["status"] == "OK", checks["secrets"]
    finally:
        server.stop()
        remove_sandbox_containers(docker_client, data)


def test_a_fresh_data_dir_is_created_private_under_a_loose_umask(runtime_images, tmp_path):
    data = tmp_path / "made-by-serve"
    old_umask = os.umask(0o000)
    try:
        server = start_server(data, env=SERVER_ENV)
    finally:
        os.umask(old_umask)
    try:
        deadline = time.monotonic() + 60
        while not (data / "appliance.db-wal").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert_private(data)
    finally:
        server.stop()
