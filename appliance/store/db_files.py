"""The database as a file: consistent copies, pre-upgrade copies, and the data dir lock.

Copies use SQLite's online backup API in one step: the copy is one consistent
snapshot even while the server writes (WAL readers never block the writer), and it is
written as a single self-contained file (journal_mode DELETE, no -wal or -shm beside it).

The lock says who has a data dir open. Every `Database.open` holds a shared `flock` on
DATA_DIR/appliance.db.lock for as long as the database is open (the server for its whole
life, a `keys` command for a moment); `appliance restore` takes it exclusively. An flock
goes away with its process, even after a SIGKILL or an OOM kill, so a crash never leaves
a stale "running" mark behind, as a pid file would.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
from pathlib import Path

from appliance.core.clock import utc_now
from appliance.core.errors import AppError

PRE_MIGRATION_DIR = "backups"
PRE_MIGRATION_KEEP = 5  # pre-upgrade copies kept; older ones are removed
BUSY_TIMEOUT_SECONDS = 30.0


class DataDirBusy(AppError):
    """Another process holds the data dir's lock in a way that excludes this one."""


class CopyFailed(AppError):
    """A copy of the database could not be written (disk full, permissions, a damaged file)."""


# --- the data dir lock ----------------------------------------------------------------


def lock_path(database_path: Path) -> Path:
    return database_path.with_name(database_path.name + ".lock")


def hold_lock(database_path: Path, *, exclusive: bool) -> int:
    """An fd holding the data dir's lock (shared, or exclusive for a restore), without
    waiting; release it with release_lock. Raises DataDirBusy naming who is in the way."""
    path = lock_path(database_path)
    # O_RDONLY suffices for flock, so a lock file another user created still works.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        data_dir = database_path.parent
        if exclusive:
            raise DataDirBusy(
                f"{data_dir} is in use by a running appliance (serve, run or a keys command holds {path.name}): "
                "stop it first (e.g. `systemctl stop appliance`), then run the restore again"
            ) from None
        raise DataDirBusy(
            f"{data_dir} is being restored (`appliance restore` holds {path.name}): wait for it "
            "to finish, then try again"
        ) from None
    return fd


def release_lock(fd: int) -> None:
    os.close(fd)  # closing the only fd of an open file description drops its flock


# --- copies ---------------------------------------------------------------------------


def copy_database(source: Path, dest: Path) -> int:
    """Write a consistent copy of the SQLite file `source` to `dest` (mode 0600,
    replaced only when complete). Returns the copy's schema version (user_version)."""
    if not source.is_file():
        raise FileNotFoundError(errno.ENOENT, "no database file", str(source))
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            dst = sqlite3.connect(partial)
            try:
                # pages=-1: one step, so the copy is one snapshot; copied in steps, a write
                # by the server between two steps would restart the copy.
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")
                version: int = dst.execute("PRAGMA user_version").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, dest)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise CopyFailed(f"could not copy {source} to {dest} ({exc})") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return version


def database_version(path: Path) -> int | None:
    """The schema version (user_version) of the SQLite file at `path`; None if no file."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


def write_pre_migration_copy(database_path: Path, new_version: int, *, keep: int = PRE_MIGRATION_KEEP) -> Path:
    """Copy the database, as it is, to DATA_DIR/backups/appliance-before-v<new>-<UTC>Z.db
    before a migration changes it; keep the newest `keep` such copies."""
    folder = database_path.parent / PRE_MIGRATION_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    dest = folder / f"appliance-before-v{new_version}-{stamp}Z.db"
    n = 1
    while dest.exists():  # two upgrades within one second
        n += 1
        dest = folder / f"appliance-before-v{new_version}-{stamp}Z-{n}.db"
    copy_database(database_path, dest)
    prune_pre_migration_copies(folder, keep)
    return dest


def pre_migration_copies(folder: Path) -> list[Path]:
    """The pre-upgrade copies in `folder`, oldest first."""
    found = [p for p in folder.glob("appliance-before-v*.db") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def prune_pre_migration_copies(folder: Path, keep: int) -> None:
    copies = pre_migration_copies(folder)
    for old in copies[: max(0, len(copies) - keep)]:
        old.unlink(missing_ok=True)


def forget_sandbox_containers(path: Path) -> int:
    """In a restored database file: drop the container ids of the persistent sandboxes.
    Their files now come from the backup, and no container made before the restore has
    those files mounted; at start the reconciler removes such containers as strays and
    makes each sandbox a new one over the restored files. Returns the rows changed."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sandboxes'").fetchone()
        if not has_table:
            return 0
        with conn:
            return conn.execute("UPDATE sandboxes SET container_id = NULL WHERE container_id IS NOT NULL").rowcount
    finally:
        conn.close()


def forget_instance_id(path: Path) -> None:
    """In a restored database file: drop the installation's instance id (meta row
    `instance_id`, which app.py makes at start when there is none). The containers an
    appliance makes and removes are labelled with it; a copy restored elsewhere must not
    take the original's for its own on a shared Docker engine."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        with conn:
            conn.execute("DELETE FROM meta WHERE key = 'instance_id'")
    finally:
        conn.close()
