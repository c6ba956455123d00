"""The backup archive's format, shared by `appliance backup` and `appliance restore`.

The archive is a tar.gz (mode 0600: it holds the secrets):

  backup.json     first: format, appliance version, schema version, UTC time, data dir,
                  size estimate; read before anything else, so a backup from a newer
                  appliance is refused at once
  appliance.db    a consistent copy made with SQLite's online backup (safe while serving)
  telemetry.db    the telemetry events, copied the same way (left out with --no-telemetry)
  jwt.secret, admin.key, config.toml   as they are (the secrets always mode 0600)
  sandboxes/      the persistent sandboxes' files (links kept as links, never followed)
  snapshots/      the snapshot archives
  checkpoints/    the checkpoint files of experiment runs
  manifest.json   last: the header again and every entry with its type, mode, size and
                  sha256, computed from the very bytes that went into the archive

Left out: the live database files (appliance.db, telemetry.db and their -wal/-shm: the
copies stand for them), export job files, logs, caches (the debootstrap cache), the pre-upgrade copies in backups/, and
anything else in the data dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from appliance.config import CHECKPOINTS_DIR, SECRET_FILES, TELEMETRY_FILE
from appliance.core.errors import AppError
from appliance.core.sizes import format_size
from appliance.services.sandboxes.sandboxes import SandboxPaths

FORMAT = 1
HEADER_NAME = "backup.json"
MANIFEST_NAME = "manifest.json"
DATABASE_MEMBER = "appliance.db"
TELEMETRY_MEMBER = TELEMETRY_FILE
PLAIN_FILES = ("config.toml",)
DATABASE_SIDE_FILES = ("-wal", "-shm", "-journal")  # suffixes of the live database's companions
COMPRESS_LEVEL = 1  # measured: 3x the speed of 6 on text and databases, nearly the same size
CHUNK = 1024 * 1024
PROGRESS_MIN_BYTES = 64 * 1024 * 1024  # smaller backups finish before a bar would help
PROGRESS_EVERY_SECONDS = 0.25
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# progress(key, fraction, message), e.g. runtime.images.render_progress
Progress = Callable[[str, float, str], None]


class BackupError(AppError):
    """A backup or restore refused or failed; the message says what to do."""


class BackupHeader(msgspec.Struct, kw_only=True):
    format: int
    appliance_version: str
    schema_version: int
    created_at: str  # UTC, ISO 8601 with Z
    data_dir: str  # where it was taken (resolved); restored elsewhere, the copy gets a new identity
    data_dir_uid: int  # the owner of that data dir: restore maps it to the target's owner
    data_dir_gid: int
    estimated_bytes: int  # content to read, for restore's progress


class ManifestEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    path: str
    type: str  # file, dir or symlink
    mode: str  # octal, e.g. "0600"
    size: int = 0
    sha256: str | None = None  # files
    target: str | None = None  # symlinks


class Manifest(BackupHeader, kw_only=True):
    files: list[ManifestEntry]


def tree_names(data_path: Path) -> list[str]:
    """The data dir's directories that a backup carries (the sandboxes' files, snapshots,
    runs' checkpoints)."""
    paths = SandboxPaths(data_path)
    return [paths.sandboxes.name, paths.snapshots.name, CHECKPOINTS_DIR]


def owned_names(data_path: Path, database_path: Path) -> list[str]:
    """What a restore replaces in a data dir: what a backup holds, and the live database's
    companion files (a stale -wal beside a restored database would corrupt it)."""
    databases = (database_path.name, TELEMETRY_MEMBER)
    return [
        *(db + suffix for db in databases for suffix in ("", *DATABASE_SIDE_FILES)),
        *SECRET_FILES,
        *PLAIN_FILES,
        *tree_names(data_path),
    ]


# --- progress -------------------------------------------------------------------------------


class Meter:
    """Bytes done out of an estimate, reported at most every PROGRESS_EVERY_SECONDS, and
    only for big jobs."""

    def __init__(self, key: str, total: int, progress: Progress | None) -> None:
        self.key, self.total, self.done = key, max(total, 1), 0
        self.progress = progress if progress is not None and total >= PROGRESS_MIN_BYTES else None
        self._shown_at = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.progress is not None and now - self._shown_at >= PROGRESS_EVERY_SECONDS:
            self._shown_at = now
            self.progress(
                self.key,
                min(self.done / self.total, 0.99),
                f"{format_size(self.done)} of about {format_size(self.total)}",
            )

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.key, 1.0, f"{format_size(self.done)}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
