"""Snapshots (sandbox-api.md "Snapshot API") through the Python client: take, sizes,
list, restore into another sandbox, delete, and the honest answer on memory."""

from __future__ import annotations

import os
import tarfile

from appliance.core.sizes import format_size
from tests.sandbox_support import Sandboxes, sandbox_exec, user_client
from tests.support import expect_api_error as expect_error


def take(admin, sandbox_id, name, **kwargs):
    started = admin.create_snapshot(sandbox_id, name, **kwargs)
    return started, admin.wait_for_snapshot(sandbox_id, started.snapshot_id)


def test_snapshot_is_written_in_the_background_with_real_sizes(admin, sandboxes, sandbox_server):
    sandbox_id = sandboxes.create(environment={"STAGE": "setup"}).sandbox_id
    text = b"the same line again and again\n" * 40_000  # 1.2 MB that compresses well
    admin.upload_file(sandbox_id, text, name="log.txt", path="/sandbox/logs/")
    admin.upload_file(sandbox_id, os.urandom(50_000), name="noise.bin")

    response = admin.http.post(
        f"/api/sandboxes/{sandbox_id}/snapshots",
        json={
            "name": "after-setup",
            "description": "Snapshot after initial setup",
            "type": "full",
            "compress": True,
            "include_memory": False,
            "tags": {"version": "1.0", "environment": "production"},
        },
    )
    assert response.status_code == 201, response.text
    started = response.json()
    assert started["snapshot_id"].startswith("snap_") and started["status"] == "creating"
    assert started["name"] == "after-setup" and started["created_at"].endswith("Z")
    assert started["estimated_completion"] > started["created_at"]
    assert started["memory_included"] is False and started["warnings"] == []

    done = admin.wait_for_snapshot(sandbox_id, started["snapshot_id"])
    assert done.status == "completed" and done.completed_at.endswith("Z")
    assert done.tags == {"version": "1.0", "environment": "production"}
    assert done.description == "Snapshot after initial setup" and done.type == "full"
    archive = sandbox_server.data_dir / "snapshots" / done.snapshot_id / "files.tar.gz"
    assert done.size_bytes == archive.stat().st_size and done.size == format_size(done.size_bytes)
    assert done.content_bytes == len(text) + 50_000 and done.file_count == 2
    assert done.size_bytes < len(text) // 4 + 60_000  # compressed
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["logs", "logs/log.txt", "noise.bin"]

    _, plain = take(admin, sandbox_id, "uncompressed", compress=False)
    assert plain.compressed is False and plain.size_bytes > done.content_bytes  # tar headers on top
    assert (sandbox_server.data_dir / "snapshots" / plain.snapshot_id / "files.tar").stat().st_size == plain.size_bytes

    listed = admin.list_snapshots(sandbox_id)
    assert [s.snapshot_id for s in listed] == [done.snapshot_id, plain.snapshot_id]
    assert set(listed[0]) >= {"snapshot_id", "name", "status", "type", "size", "created_at", "tags"}


def test_restore_into_another_sandbox_brings_files_and_environment(admin, sandboxes, docker_client):
    source = sandboxes.create(environment={"STAGE": "setup", "MODEL": "m1"}).sandbox_id
    admin.upload_file(source, b"print('restored')\n", name="main.py", path="/sandbox/app/")
    sandbox_exec(docker_client, source, "echo made-inside > inside.txt && chmod 755 app/main.py")
    _, snapshot = take(admin, source, "base")

    target = sandboxes.create(environment={"OTHER": "x"}).sandbox_id
    admin.upload_file(target, b"to be replaced", name="old.txt")
    outcome = admin.restore_snapshot(
        snapshot.snapshot_id, target, include_files=True, include_memory=False, preserve_network=False
    )
    assert outcome.target_sandbox_id == target and outcome.status == "running"
    assert outcome.files_restored and outcome.file_count == 2 and outcome.environment_restored
    assert outcome.memory_restored is False and outcome.warnings == []

    files = {e.path: e for e in admin.list_files(target, recursive=True)}
    assert set(files) == {"/sandbox/app", "/sandbox/app/main.py", "/sandbox/inside.txt"}
    assert admin.download_file(target, "app/main.py") == b"print('restored')\n"
    assert admin.download_file(target, "inside.txt") == b"made-inside\n"
    assert admin.get_sandbox(target).environment == {"STAGE": "setup", "MODEL": "m1"}
    env = sandbox_exec(docker_client, target, "env; ls -l app/main.py; id -u; echo new > new.txt && echo writable")
    assert "STAGE=setup" in env and "OTHER=" not in env
    assert "-rwxr-xr-x" in env and "nobody" in env and "writable" in env  # modes kept, owned by the sandbox user
    # The source is untouched.
    assert {e.path for e in admin.list_files(source, recursive=True)} == set(files)

    # Files only, or environment only.
    admin.upload_file(target, b"later", name="later.txt")
    kept = admin.restore_snapshot(snapshot.snapshot_id, target, include_files=False)
    assert kept.files_restored is False and admin.download_file(target, "later.txt") == b"later"


def test_memory_is_never_included_and_says_so(admin, sandboxes):
    sandbox_id = sandboxes.create().sandbox_id
    started, done = take(admin, sandbox_id, "with-memory", include_memory=True)
    assert started.memory_included is False and "not supported" in started.warnings[0]
    assert done.status == "completed" and done.memory_included is False
    restored = admin.restore_snapshot(done.snapshot_id, include_memory=True)
    assert restored.target_sandbox_id == sandbox_id and restored.memory_restored is False
    assert "memory" in restored.warnings[0]


def test_links_in_a_sandbox_are_kept_as_links_never_followed(admin, sandboxes, sandbox_server, docker_client):
    source = sandboxes.create().sandbox_id
    sandbox_exec(
        docker_client,
        source,
        f"ln -s /etc/passwd pw && ln -s {sandbox_server.data_dir} host && mkfifo pipe && echo real > real.txt",
    )
    _, snapshot = take(admin, source, "links")
    assert snapshot.status == "completed" and snapshot.content_bytes == len(b"real\n")
    with tarfile.open(sandbox_server.data_dir / "snapshots" / snapshot.snapshot_id / "files.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"host", "pw", "real.txt"}  # the FIFO is left out
    assert members["pw"].issym() and members["pw"].linkname == "/etc/passwd"
    target = sandboxes.create().sandbox_id
    admin.restore_snapshot(snapshot.snapshot_id, target)
    kinds = {e.name: e.type for e in admin.list_files(target)}
    assert kinds == {"host": "symlink", "pw": "symlink", "real.txt": "file"}
    expect_error(lambda: admin.download_file(target, "pw"), 400, "VALIDATION_ERROR", "symbolic link")


def test_delete_snapshot_and_snapshots_go_with_their_sandbox(admin, sandboxes, sandbox_server):
    sandbox_id = sandboxes.create().sandbox_id
    admin.upload_file(sandbox_id, b"x", name="x.txt")
    _, first = take(admin, sandbox_id, "first")
    _, second = take(admin, sandbox_id, "second")
    assert admin.delete_snapshot(first.snapshot_id) == {
        "snapshot_id": first.snapshot_id,
        "status": "deleted",
        "message": "Snapshot deleted successfully",
    }
    assert not (sandbox_server.data_dir / "snapshots" / first.snapshot_id).exists()
    assert [s.snapshot_id for s in admin.list_snapshots(sandbox_id)] == [second.snapshot_id]
    expect_error(lambda: admin.delete_snapshot(first.snapshot_id), 404, "RESOURCE_NOT_FOUND")
    expect_error(lambda: admin.restore_snapshot(first.snapshot_id), 404, "RESOURCE_NOT_FOUND")

    admin.delete_sandbox(sandbox_id, force=True)
    assert not (sandbox_server.data_dir / "snapshots" / second.snapshot_id).exists()
    expect_error(lambda: admin.delete_snapshot(second.snapshot_id), 404, "RESOURCE_NOT_FOUND")


def test_snapshot_errors(admin, sandboxes, sandbox_server):
    sandbox_id = sandboxes.create().sandbox_id
    admin.upload_file(sandbox_id, b"q" * 50_000, name="big.bin")
    expect_error(lambda: admin.create_snapshot(sandbox_id, "inc", type="incremental"), 400, "VALIDATION_ERROR", "full")
    expect_error(lambda: admin.create_snapshot(sandbox_id, ""), 400, "VALIDATION_ERROR", "name")
    response = admin.http.post(f"/api/sandboxes/{sandbox_id}/snapshots", json={"name": "x", "colour": "red"})
    assert response.status_code == 400
    assert admin.list_snapshots(sandbox_id) == []  # nothing stored by the bad requests
    expect_error(lambda: admin.create_snapshot("sb_000000000000", "x"), 404, "RESOURCE_NOT_FOUND")
    expect_error(lambda: admin.list_snapshots("sb_000000000000"), 404, "RESOURCE_NOT_FOUND")

    _, snapshot = take(admin, sandbox_id, "ok")
    small = sandboxes.create(disk_limit="10K").sandbox_id
    error = expect_error(
        lambda: admin.restore_snapshot(snapshot.snapshot_id, small), 413, "RESOURCE_LIMIT_EXCEEDED", "disk_limit"
    )
    assert error.details["limit"] == "disk_limit"
    expect_error(lambda: admin.restore_snapshot(snapshot.snapshot_id, "sb_000000000000"), 404, "RESOURCE_NOT_FOUND")
    with user_client(sandbox_server, admin) as alice, user_client(sandbox_server, admin) as bob:
        alice_box, bob_box = Sandboxes(alice), Sandboxes(bob)
        try:
            hers = alice_box.create().sandbox_id
            _, her_snapshot = take(alice, hers, "hers")
            his = bob_box.create().sandbox_id
            # Another owner can neither see her snapshot nor restore it into his sandbox ...
            expect_error(lambda: bob.restore_snapshot(her_snapshot.snapshot_id, his), 404, "RESOURCE_NOT_FOUND")
            expect_error(lambda: bob.delete_snapshot(her_snapshot.snapshot_id), 404, "RESOURCE_NOT_FOUND")
            expect_error(lambda: bob.list_snapshots(hers), 404, "RESOURCE_NOT_FOUND")
            # ... and she cannot restore into his.
            expect_error(lambda: alice.restore_snapshot(her_snapshot.snapshot_id, his), 404, "RESOURCE_NOT_FOUND", his)
        finally:
            alice_box.cleanup()
            bob_box.cleanup()
