"""Upgrades, `appliance backup` and `appliance restore`, on real files and real servers.

A database from an older appliance is made the way that appliance made it: by running
only the migration files it had (make_old_database). Archives are checked by reading
them with tarfile, as an operator would with `tar -tzvf`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import appliance.store
from appliance.client import ApplianceClient
from appliance.store import db_files
from appliance.store.database import Database, schema_version
from tests.support import ROOT, eventually, free_port, remove_sandboxes_of, run_eval

MIGRATIONS = Path(appliance.store.__file__).parent / "migrations"
LATEST = schema_version()
OLD = LATEST - 1
ISO_Z_STAMP = r"\d{8}T\d{6}Z"


# --- helpers --------------------------------------------------------------------------------


def make_old_database(path: Path, version: int) -> None:
    """A database as the appliance of schema `version` left it: its migrations only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        for script in sorted(MIGRATIONS.glob("*.sql")):
            if int(script.name.split("_", 1)[0]) <= version:
                conn.executescript(script.read_text())
        conn.execute(
            "INSERT INTO evaluations (eval_id, owner, language, engine, code, timeout, status, "
            "created_at, completed_at, output, exit_code) VALUES ('eval_20250101_000000_0ld0ld', "
            "'admin', 'python', 'docker', 'print(5)', 5, 'completed', '2025-01-01T00:00:00.000Z', "
            "'2025-01-01T00:00:01.000Z', 'made by v5\n', 0)"
        )
        conn.execute(f"PRAGMA user_version={version}")


def schema_of(path: Path) -> set[str]:
    """Every table, column set and index, as SQLite keeps them: a migration changes it."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")}


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def appliance_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """A refusal: exit 1 and exactly one line on stderr, `appliance: ...`, holding `words`."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("appliance: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def state_of(folder: Path) -> dict[str, tuple]:
    """Everything under `folder`: type, mode and content hash of each entry."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        found[str(path.relative_to(folder))] = (st.st_mode, st.st_size if digest else 0, digest)
    return found


async def make_data_dir(data: Path) -> None:
    """A small data dir with no server: a database, the secrets, a config, a sandbox's
    files (a file, a link, a FIFO), a snapshot archive, and things a backup leaves out."""
    db = Database(data / "appliance.db")
    await db.open()
    async with db.write() as conn:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('instance_id', 'feedfacefeedface')")
    await db.close()
    for name in ("jwt.secret", "admin.key"):
        (data / name).write_text(f"{name}-value\n")
        os.chmod(data / name, 0o600)
    (data / "config.toml").write_text("workers = 2\n")
    files = data / "sandboxes" / "sb_0123456789ab" / "files"
    (files / "sub").mkdir(parents=True)
    (files / "sub" / "data.txt").write_text("sandbox content\n")
    os.symlink("/etc/passwd", files / "passwd-link")
    os.mkfifo(files / "fifo")
    snap = data / "snapshots" / "snap_0123456789ab"
    snap.mkdir(parents=True)
    (snap / "files.tar.gz").write_bytes(b"\x1f\x8b not really an archive")
    for left_out in ("logs/appliance.log", "cache/debootstrap/x.deb", "backups/appliance-before-v6-x.db"):
        (data / left_out).parent.mkdir(parents=True, exist_ok=True)
        (data / left_out).write_text("left out")


def rewrite_archive(source: Path, dest: Path, change) -> None:
    """Copy a backup member by member; `change(info, data)` returns new bytes or None."""
    with tarfile.open(source, "r:gz") as tar_in, tarfile.open(dest, "w:gz", format=tarfile.PAX_FORMAT) as tar_out:
        for member in tar_in:
            data = tar_in.extractfile(member).read() if member.isfile() else None
            if data is not None:
                new = change(member, data)
                data = data if new is None else new
                member.size = len(data)
            tar_out.addfile(member, io.BytesIO(data) if data is not None else None)


# --- upgrades -------------------------------------------------------------------------------


async def test_an_older_database_is_copied_before_it_is_migrated(tmp_path, caplog):
    path = tmp_path / "appliance.db"
    make_old_database(path, OLD)
    old_schema = schema_of(path)
    with caplog.at_level(logging.WARNING, logger="appliance.store.database"):
        db = Database(path)
        await db.open()
        await db.close()
    assert version_of(path) == LATEST and schema_of(path) != old_schema
    copies = list((tmp_path / "backups").iterdir())
    assert len(copies) == 1, copies
    copy = copies[0]
    assert copy.name.startswith(f"appliance-before-v{LATEST}-") and copy.name.endswith("Z.db")
    assert copy.stat().st_mode & 0o777 == 0o600
    # the old schema and its rows, as they were; a single file (no -wal beside it)
    assert version_of(copy) == OLD and schema_of(copy) == old_schema
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT output FROM evaluations").fetchall() == [("made by v5\n",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert str(copy) in caplog.text and f"from schema v{OLD} to v{LATEST}" in caplog.text
    # up to date now: opening again copies nothing
    db = Database(path)
    await db.open()
    await db.close()
    assert len(list((tmp_path / "backups").iterdir())) == 1


async def test_a_new_database_is_not_copied_and_only_the_newest_copies_are_kept(tmp_path):
    db = Database(tmp_path / "appliance.db")
    await db.open()
    await db.close()
    assert not (tmp_path / "backups").exists()  # nothing to keep from an empty file
    made = []
    for _ in range(db_files.PRE_MIGRATION_KEEP + 2):
        made.append(db_files.write_pre_migration_copy(tmp_path / "appliance.db", LATEST))
        time.sleep(0.01)
    kept = db_files.pre_migration_copies(tmp_path / "backups")
    assert kept == made[-db_files.PRE_MIGRATION_KEEP :]


def test_a_newer_database_is_refused_by_serve_and_run_in_one_line(tmp_path):
    path = tmp_path / "appliance.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={LATEST + 3}")
    for command in ("serve", "run"):
        result = appliance_cli(command, "--data-dir", str(tmp_path), "--port", str(free_port()), timeout=60)
        one_line_error(
            result, str(path), f"schema version {LATEST + 3}", f"up to {LATEST}", "newer", "appliance restore"
        )
    assert version_of(path) == LATEST + 3 and not (tmp_path / "backups").exists()


# --- backup and restore without a server ------------------------------------------------------


async def test_backup_holds_what_matters_and_restore_puts_it_back(tmp_path):
    data = tmp_path / "data"
    await make_data_dir(data)
    archive = tmp_path / "b.tar.gz"
    started = time.monotonic()
    result = appliance_cli("backup", "--data-dir", str(data), str(archive))
    assert result.returncode == 0, result.stderr
    assert f"wrote {archive}" in result.stderr and f"schema v{LATEST}" in result.stderr
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the secrets
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = list(members)
        header = json.loads(tar.extractfile("backup.json").read())
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "backup.json" and names[-1] == "manifest.json"
    assert {
        "appliance.db",
        "jwt.secret",
        "admin.key",
        "config.toml",
        "sandboxes/sb_0123456789ab/files/sub/data.txt",
        "snapshots/snap_0123456789ab/files.tar.gz",
    } <= set(names)
    assert not [
        n
        for n in names
        if n.startswith(("logs", "cache", "backups")) or "-wal" in n or "-shm" in n or n.endswith(("fifo", ".lock"))
    ], names
    link = members["sandboxes/sb_0123456789ab/files/passwd-link"]
    assert link.issym() and link.linkname == "/etc/passwd"  # kept as a link, never followed
    assert members["jwt.secret"].mode == members["admin.key"].mode == 0o600
    assert header["format"] == 1 and header["schema_version"] == LATEST and header["created_at"].endswith("Z")
    assert {k: v for k, v in manifest.items() if k != "files"} == header
    listed = {e["path"]: e for e in manifest["files"]}
    data_txt = listed["sandboxes/sb_0123456789ab/files/sub/data.txt"]
    assert data_txt["size"] == 16 and data_txt["sha256"] == hashlib.sha256(b"sandbox content\n").hexdigest()
    assert set(listed) == set(names) - {"backup.json", "manifest.json"}

    target = tmp_path / "restored"
    result = appliance_cli("restore", "--data-dir", str(target), str(archive))
    assert result.returncode == 0, result.stderr
    assert f"into {target}" in result.stderr and "its own instance id" in result.stderr
    print(f"backup + restore of a small data dir: {time.monotonic() - started:.2f}s")
    for name in ("jwt.secret", "admin.key"):
        assert (target / name).read_text() == f"{name}-value\n"
        assert (target / name).stat().st_mode & 0o777 == 0o600
    assert (target / "config.toml").read_text() == "workers = 2\n"
    files = target / "sandboxes" / "sb_0123456789ab" / "files"
    assert (files / "sub" / "data.txt").read_text() == "sandbox content\n"
    assert os.readlink(files / "passwd-link") == "/etc/passwd"
    assert (target / "snapshots/snap_0123456789ab/files.tar.gz").read_bytes() == b"\x1f\x8b not really an archive"
    assert version_of(target / "appliance.db") == LATEST
    with sqlite3.connect(target / "appliance.db") as conn:  # restored elsewhere: a copy, with an identity of its own
        assert conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone() is None
    assert not (target / "logs").exists() and not list(target.glob(".restore-*"))


async def test_restore_refuses_damaged_archives_and_changes_nothing(tmp_path):
    data = tmp_path / "data"
    await make_data_dir(data)
    archive = tmp_path / "b.tar.gz"
    assert appliance_cli("backup", "--data-dir", str(data), str(archive)).returncode == 0
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("not appliance data")
    before = state_of(target)

    def flip(member, data):
        return b"tampered content" if member.name.endswith("data.txt") else None

    tampered = tmp_path / "tampered.tar.gz"
    rewrite_archive(archive, tampered, flip)
    result = appliance_cli("restore", "--data-dir", str(target), str(tampered))
    one_line_error(result, "damaged", "sandboxes/sb_0123456789ab/files/sub/data.txt", "sha256", "nothing was changed")
    assert state_of(target) == before

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    one_line_error(appliance_cli("restore", "--data-dir", str(target), str(truncated)), "damaged")
    assert state_of(target) == before

    not_a_backup = tmp_path / "other.tar.gz"
    with tarfile.open(not_a_backup, "w:gz") as tar:
        tar.add(data / "config.toml", arcname="config.toml")
    one_line_error(appliance_cli("restore", "--data-dir", str(target), str(not_a_backup)), "not an appliance backup")
    one_line_error(
        appliance_cli("restore", "--data-dir", str(target), str(tmp_path / "missing.tar.gz")), "no such file"
    )
    assert state_of(target) == before

    def newer(member, data):
        if member.name in ("backup.json", "manifest.json"):
            return json.dumps({**json.loads(data), "schema_version": LATEST + 1}).encode()
        return None

    from_newer = tmp_path / "newer.tar.gz"
    rewrite_archive(archive, from_newer, newer)
    fresh = tmp_path / "fresh"
    result = appliance_cli("restore", "--data-dir", str(fresh), str(from_newer))
    one_line_error(result, f"schema version {LATEST + 1}", f"up to {LATEST}", "newer")
    assert not fresh.exists()  # not even the directory is left behind


async def test_restore_refuses_a_data_dir_with_data_unless_forced(tmp_path):
    data = tmp_path / "data"
    await make_data_dir(data)
    archive = tmp_path / "b.tar.gz"
    assert appliance_cli("backup", "--data-dir", str(data), str(archive)).returncode == 0
    target = tmp_path / "target"
    db = Database(target / "appliance.db")
    await db.open()
    await db.close()
    (target / "jwt.secret").write_text("the old secret\n")
    before = state_of(target)
    one_line_error(
        appliance_cli("restore", "--data-dir", str(target), str(archive)),
        "already holds appliance data",
        "appliance.db",
        "--force",
    )
    assert state_of(target) == before

    # open (as a running appliance has it): refused even with --force
    db = Database(target / "appliance.db")
    await db.open()
    try:
        one_line_error(
            appliance_cli("restore", "--force", "--data-dir", str(target), str(archive)),
            "in use by a running appliance",
            "stop it first",
        )
    finally:
        await db.close()
    assert state_of(target) == before

    result = appliance_cli("restore", "--force", "--data-dir", str(target), str(archive))
    assert result.returncode == 0, result.stderr
    aside = [p for p in target.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and aside[0].name[len("replaced-") :].endswith("Z") and str(aside[0]) in result.stderr
    assert (aside[0] / "jwt.secret").read_text() == "the old secret\n" and (aside[0] / "appliance.db").is_file()
    assert (target / "jwt.secret").read_text() == "jwt.secret-value\n"

    # back into the data dir it was taken from: the same installation, same instance id
    result = appliance_cli("restore", "--force", "--data-dir", str(data), str(archive))
    assert result.returncode == 0 and "instance id" not in result.stderr, result.stderr
    with sqlite3.connect(data / "appliance.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone() == ("feedfacefeedface",)
    assert (data / "logs" / "appliance.log").exists()  # what a backup does not hold stays where it is


def test_backup_refuses_a_missing_data_dir_an_empty_one_and_an_existing_file(tmp_path):
    missing = tmp_path / "nowhere"
    one_line_error(
        appliance_cli("backup", "--data-dir", str(missing), str(tmp_path / "b.tar.gz")),
        f"no data dir at {missing}",
        "--data-dir",
    )
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(
        appliance_cli("backup", "--data-dir", str(empty), str(tmp_path / "b.tar.gz")), "holds no appliance database"
    )
    exists = tmp_path / "exists.tar.gz"
    exists.write_text("keep me")
    one_line_error(appliance_cli("backup", "--data-dir", str(empty), str(exists)), "holds no appliance database")
    assert exists.read_text() == "keep me" and not list(tmp_path.glob("b.tar.gz"))


@pytest.mark.slow
async def test_a_big_backup_shows_progress(tmp_path):
    data = tmp_path / "data"
    await make_data_dir(data)
    big = data / "snapshots" / "snap_big000000000" / "files.tar"
    big.parent.mkdir()
    with open(big, "wb") as handle:
        for _ in range(96):
            handle.write(os.urandom(1024 * 1024))
    archive = tmp_path / "big.tar.gz"
    started = time.monotonic()
    result = appliance_cli("backup", "--data-dir", str(data), str(archive))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "[backup]" in result.stderr and "100%" in result.stderr, result.stderr
    started = time.monotonic()
    result = appliance_cli("restore", "--data-dir", str(tmp_path / "restored"), str(archive))
    assert result.returncode == 0, result.stderr
    assert "[restore]" in result.stderr and "100%" in result.stderr, result.stderr
    print(f"96 MB of incompressible data: backup {took:.1f}s, restore {time.monotonic() - started:.1f}s")
    assert (tmp_path / "restored" / big.relative_to(data)).read_bytes() == big.read_bytes()


# --- with real servers ---------------------------------------------------------------------


@pytest.mark.slow
def test_an_older_backup_restored_is_migrated_by_the_next_start(fresh_server, tmp_path):
    data = tmp_path / "old"
    make_old_database(data / "appliance.db", OLD)
    archive = tmp_path / "old.tar.gz"
    assert appliance_cli("backup", "--data-dir", str(data), str(archive)).returncode == 0
    assert version_of(data / "appliance.db") == OLD  # a backup never migrates
    target = tmp_path / "restored"
    result = appliance_cli("restore", "--data-dir", str(target), str(archive))
    assert result.returncode == 0 and f"upgrades the database from schema v{OLD} to v{LATEST}" in result.stderr
    server = fresh_server(data_dir=target)
    copies = list((target / "backups").glob(f"appliance-before-v{LATEST}-*Z.db"))
    assert len(copies) == 1 and version_of(copies[0]) == OLD
    assert str(copies[0]) in server.log()
    assert version_of(target / "appliance.db") == LATEST
    with server.admin() as client:
        body = client.get("/api/eval-status/eval_20250101_000000_0ld0ld").json()
    assert body["status"] == "completed" and body["output"] == "made by v5\n"


FAST_ALERTS = {
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.3",
    "APPLIANCE_ALERT_CPU_PERCENT": "0",
    "APPLIANCE_ALERT_CPU_FOR_SECONDS": "0",
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
}


@pytest.mark.slow
def test_backup_while_serving_and_restore_into_a_fresh_data_dir_finds_everything(fresh_server, tmp_path, docker_client):
    original = fresh_server(env=FAST_ALERTS)
    client = ApplianceClient(original.url, api_key=original.admin_key)
    try:
        evaluation = run_eval(original.admin(), "print('kept across a restore')")
        assert evaluation["status"] == "completed"
        kept_key = client.create_api_key("kept", ["execute", "read"], owner="kept")
        revoked_key = client.create_api_key("revoked", ["read"], owner="revoked")
        client.revoke_api_key(revoked_key.key_id)
        alert = eventually(lambda: [a for a in client.list_alerts() if a.rule == "cpu_usage"], message="cpu alert")[0]
        client.resolve_alert(alert.alert_id, comment="before the backup")
        sandbox = client.create_sandbox("python", name="kept-sandbox")
        client.wait_for_sandbox(sandbox.sandbox_id, timeout=90)
        client.upload_file(sandbox.sandbox_id, b"files survive a restore\n", name="notes.txt")
        snapshot = client.create_snapshot(sandbox.sandbox_id, "kept-snapshot")
        client.wait_for_snapshot(sandbox.sandbox_id, snapshot.snapshot_id, timeout=60)

        archive = tmp_path / "appliance-backup.tar.gz"
        started = time.monotonic()
        result = appliance_cli("backup", "--data-dir", str(original.data_dir), str(archive))
        print(f"backup of a serving appliance: {time.monotonic() - started:.2f}s, {archive.stat().st_size} bytes")
        assert result.returncode == 0, result.stderr
        assert original.proc.poll() is None and client.health()  # it served on, undisturbed
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
        assert f"sandboxes/{sandbox.sandbox_id}/files/notes.txt" in names
        assert any(n.startswith(f"snapshots/{snapshot.snapshot_id}/files.tar") for n in names), names
        assert not [n for n in names if n.endswith(".log") or n.endswith(("-wal", "-shm"))], names

        # the serving data dir is not restored over, --force or not
        before = state_of(original.data_dir / "sandboxes")
        one_line_error(
            appliance_cli("restore", "--force", "--data-dir", str(original.data_dir), str(archive)),
            "in use by a running appliance",
        )
        assert state_of(original.data_dir / "sandboxes") == before
    finally:
        client.close()
    original.stop()  # its sandbox's container stays (sandboxes outlive their server)
    old_container = docker_client.api.containers(
        all=True, filters={"label": f"appliance.sandbox={sandbox.sandbox_id}"}
    )[0]["Id"]

    target = tmp_path / "restored"
    result = appliance_cli("restore", "--data-dir", str(target), str(archive))
    assert result.returncode == 0, result.stderr
    for name in ("jwt.secret", "admin.key"):
        assert (target / name).stat().st_mode & 0o777 == 0o600
    restored = fresh_server(data_dir=target, env={"APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000"})
    assert restored.admin_key == original.admin_key
    with ApplianceClient(restored.url, api_key=restored.admin_key) as admin:
        with restored.admin() as http:
            body = http.get(f"/api/eval-status/{evaluation['eval_id']}").json()
            assert body["status"] == "completed" and body["output"] == "kept across a restore\n"
        with restored.client(kept_key.api_key) as kept:
            assert kept.get("/api/evaluations").status_code == 200
        with restored.client(revoked_key.api_key) as revoked:
            assert revoked.get("/api/evaluations").status_code == 401
        resolved = [a for a in admin.list_alerts(status="resolved") if a.alert_id == alert.alert_id]
        assert resolved and resolved[0].resolved_comment == "before the backup"
        record = admin.get_sandbox(sandbox.sandbox_id)
        assert record.name == "kept-sandbox"
        admin.wait_for_sandbox(sandbox.sandbox_id, timeout=90)
        assert admin.download_file(sandbox.sandbox_id, "notes.txt") == b"files survive a restore\n"
        snapshots = admin.list_snapshots(sandbox.sandbox_id)
        assert [(s.snapshot_id, s.status) for s in snapshots] == [(snapshot.snapshot_id, "completed")]
        # the sandbox runs in a new container over the restored files, not in the old one
        # over the original data dir's (container names are per sandbox id: the new one
        # took the name over)
        items = docker_client.api.containers(all=True, filters={"label": f"appliance.sandbox={sandbox.sandbox_id}"})
        assert len(items) == 1 and items[0]["Id"] != old_container, items
        mounts = [m["Source"] for m in docker_client.api.inspect_container(items[0]["Id"])["Mounts"]]
        assert mounts and all(Path(m).is_relative_to(target.resolve()) for m in mounts), mounts
        admin.delete_sandbox(sandbox.sandbox_id, force=True)
    remove_sandboxes_of(original.data_dir)
