"""`appliance backup`: the data dir in one archive (backup_format.py), safe while serving.

The database is copied with SQLite's online backup first, then the files are read: every
row of the copy has its files in the archive (a sandbox made meanwhile may add files
that no row names; the next start removes those). Nothing needs Docker; the sandboxes'
trees are read through confined_files (fd-based, links never followed), as snapshots are.
A file a running sandbox changes while it is read goes in as it was when opened (cut to
its size then, or zero-padded if it shrank), its checksum taken from those very bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import msgspec

from appliance import __version__
from appliance.config import SECRET_FILES
from appliance.core.clock import iso_z, utc_now
from appliance.core.errors import AppError
from appliance.core.sizes import format_size
from appliance.runtime import confined_files
from appliance.runtime.snapshot_archive import ExactReader
from appliance.services.operations.backup_format import (
    CHUNK,
    COMPRESS_LEVEL,
    DATABASE_MEMBER,
    FORMAT,
    HEADER_NAME,
    MANIFEST_NAME,
    PLAIN_FILES,
    TELEMETRY_MEMBER,
    BackupError,
    BackupHeader,
    Manifest,
    ManifestEntry,
    Meter,
    Progress,
    fsync_dir,
    tree_names,
)
from appliance.store import db_files


class BackupSummary(msgspec.Struct, kw_only=True):
    path: str
    header: BackupHeader
    file_count: int
    content_bytes: int
    archive_bytes: int
    left_out: list[str]  # changed or vanished while read, or names that are not UTF-8

    def describe(self) -> str:
        text = (
            f"wrote {self.path}: {self.file_count} files, {format_size(self.content_bytes)} of data in "
            f"{format_size(self.archive_bytes)} (schema v{self.header.schema_version}, appliance "
            f"{self.header.appliance_version}, {self.header.created_at})"
        )
        if self.left_out:
            shown = ", ".join(self.left_out[:3]) + (" ..." if len(self.left_out) > 3 else "")
            text += f"; left out {len(self.left_out)} entries that changed while being read: {shown}"
        return text


def create_backup(
    data_path: Path,
    database_path: Path,
    dest: Path,
    *,
    progress: Progress | None = None,
    include_telemetry: bool = True,
) -> BackupSummary:
    """Write the data dir's backup to `dest` (a new file). Safe while the server runs."""
    if not data_path.is_dir():
        raise BackupError(
            f"no data dir at {data_path}: name the appliance's data dir with --data-dir (or APPLIANCE_DATA_DIR)"
        )
    if not database_path.is_file():
        raise BackupError(
            f"{data_path} holds no appliance database ({database_path.name}): name the appliance's "
            "data dir with --data-dir (or APPLIANCE_DATA_DIR)"
        )
    dest = Path(os.path.abspath(dest))
    if os.path.lexists(dest):
        raise BackupError(f"{dest} exists: name a new file (a backup never overwrites one)")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory: create it, or name a file elsewhere")
    for name in tree_names(data_path):  # the archive would swallow itself as it grows
        if dest.resolve().is_relative_to((data_path / name).resolve()):
            raise BackupError(f"{dest} is inside {data_path / name}, which the backup holds: name a file elsewhere")
    lock = db_files.hold_lock(database_path, exclusive=False)  # refused while a restore runs
    try:
        return _write_backup(data_path, database_path, dest, progress, include_telemetry)
    except (OSError, db_files.CopyFailed) as exc:
        raise BackupError(f"backup failed: {getattr(exc, 'detail', exc)}; nothing was written to {dest}") from exc
    finally:
        db_files.release_lock(lock)


def _write_backup(
    data_path: Path, database_path: Path, dest: Path, progress: Progress | None, include_telemetry: bool
) -> BackupSummary:
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))  # mode 0700
    try:
        db_copy = work / DATABASE_MEMBER
        version = db_files.copy_database(database_path, db_copy)
        telemetry = data_path / TELEMETRY_MEMBER
        telemetry_copy = work / TELEMETRY_MEMBER if include_telemetry and telemetry.is_file() else None
        if telemetry_copy is not None:
            db_files.copy_database(telemetry, telemetry_copy)
        single = [(name, data_path / name) for name in (*SECRET_FILES, *PLAIN_FILES) if (data_path / name).is_file()]
        trees = [(name, data_path / name) for name in tree_names(data_path) if (data_path / name).is_dir()]
        estimate = (
            db_copy.stat().st_size
            + (telemetry_copy.stat().st_size if telemetry_copy is not None else 0)
            + sum(path.stat().st_size for _, path in single)
            + sum(_tree_bytes(path) for _, path in trees)
        )
        owner = data_path.stat()
        header = BackupHeader(
            format=FORMAT,
            appliance_version=__version__,
            schema_version=version,
            created_at=iso_z(utc_now()),
            data_dir=str(data_path.resolve()),
            data_dir_uid=owner.st_uid,
            data_dir_gid=owner.st_gid,
            estimated_bytes=estimate,
        )
        meter = Meter("backup", estimate, progress)
        partial = work / "archive.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=COMPRESS_LEVEL, format=tarfile.PAX_FORMAT) as tar:
                # TarFile sets copybufsize in __init__, but typeshed does not declare the attribute.
                tar.copybufsize = CHUNK  # type: ignore[attr-defined]
                writer = _ArchiveWriter(tar, meter)
                writer.add_json(HEADER_NAME, header)
                live = database_path.stat()  # the copy keeps the live file's mode and owner
                with open(db_copy, "rb") as copy:
                    writer.add_file(DATABASE_MEMBER, copy, os.fstat(copy.fileno()), like=live)
                if telemetry_copy is not None:
                    with open(telemetry_copy, "rb") as copy:
                        writer.add_file(TELEMETRY_MEMBER, copy, os.fstat(copy.fileno()), like=telemetry.stat())
                for name, path in single:
                    with open(path, "rb") as handle:
                        st = os.fstat(handle.fileno())
                        writer.add_file(name, handle, st, mode=0o600 if name in SECRET_FILES else None)
                for name, path in trees:
                    writer.add_tree(name, path)
                writer.add_json(MANIFEST_NAME, Manifest(**msgspec.structs.asdict(header), files=writer.entries))
            raw.flush()
            os.fsync(raw.fileno())
        meter.finish()
        _publish(partial, dest)
        fsync_dir(dest.parent)
        return BackupSummary(
            path=str(dest),
            header=header,
            file_count=writer.file_count,
            content_bytes=writer.content_bytes,
            archive_bytes=dest.stat().st_size,
            left_out=writer.left_out,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(partial: Path, dest: Path) -> None:
    """Give the finished archive its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, dest)
    except FileExistsError:
        raise BackupError(f"{dest} appeared while the backup was written: name a new file") from None
    except OSError:  # no hard links here (vfat, some network file systems)
        if os.path.lexists(dest):
            raise BackupError(f"{dest} appeared while the backup was written: name a new file") from None
        os.rename(partial, dest)


def _tree_bytes(root: Path) -> int:
    total = 0
    with _open_tree(root) as root_fd:
        for _, _, _, st in confined_files.iter_tree(root_fd, []):
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


class _open_tree:
    """A top-level tree of the data dir, as an fd. The top level may be a link an
    operator made (e.g. snapshots on another disk); nothing below it is followed."""

    def __init__(self, root: Path) -> None:
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> int:
        return self._fd

    def __exit__(self, *_: object) -> None:
        os.close(self._fd)


class _HashingReader:
    """Exactly `size` bytes of a file a running sandbox may be changing (see
    ExactReader), hashed as they go by."""

    def __init__(self, source: BinaryIO, size: int, meter: Meter) -> None:
        self._exact, self._meter = ExactReader(source, size), meter
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._exact.read(n)
        self.sha256.update(data)
        self._meter.add(len(data))
        return data


class _ArchiveWriter:
    """Adds members to the tar and lists each one for the manifest."""

    def __init__(self, tar: tarfile.TarFile, meter: Meter) -> None:
        self.tar, self.meter = tar, meter
        self.entries: list[ManifestEntry] = []
        self.file_count = self.content_bytes = 0
        self.left_out: list[str] = []

    @staticmethod
    def _info(name: str, st: os.stat_result, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid, info.mtime = mode, st.st_uid, st.st_gid, int(st.st_mtime)
        info.uname = info.gname = ""  # ids only: names differ between machines
        return info

    def add_json(self, name: str, value: msgspec.Struct) -> None:
        data = msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))

    def add_file(
        self,
        name: str,
        source: BinaryIO,
        st: os.stat_result,
        *,
        mode: int | None = None,
        like: os.stat_result | None = None,
    ) -> None:
        """A regular file: content from `source` (st_size bytes), mode and owner from
        `like` (default `st`), `mode` overriding."""
        meta = like or st
        mode = stat.S_IMODE(meta.st_mode) & 0o777 if mode is None else mode  # set-id bits dropped
        info = self._info(name, meta, mode)
        info.size, info.mtime = st.st_size, int(st.st_mtime)
        reader = _HashingReader(source, st.st_size, self.meter)
        self.tar.addfile(info, reader)
        self.entries.append(
            ManifestEntry(path=name, type="file", mode=f"{mode:04o}", size=st.st_size, sha256=reader.sha256.hexdigest())
        )
        self.file_count += 1
        self.content_bytes += st.st_size

    def add_tree(self, name: str, root: Path) -> None:
        with _open_tree(root) as root_fd:
            self._add_dir(name, os.fstat(root_fd))
            for dir_fd, entry, parts, st in confined_files.iter_tree(root_fd, [name]):
                path = "/".join(parts)
                try:
                    path.encode("utf-8")
                except UnicodeEncodeError:  # the manifest is JSON: such a name cannot be listed
                    self.left_out.append(path.encode("utf-8", "replace").decode())
                    continue
                if stat.S_ISDIR(st.st_mode):
                    self._add_dir(path, st)
                elif stat.S_ISLNK(st.st_mode):
                    try:
                        target = os.readlink(entry, dir_fd=dir_fd)
                        target.encode("utf-8")
                    except (OSError, UnicodeEncodeError):  # gone meanwhile, or not listable in JSON
                        self.left_out.append(path)
                        continue
                    info = self._info(path, st, stat.S_IMODE(st.st_mode) & 0o777)
                    info.type, info.linkname = tarfile.SYMTYPE, target
                    self.tar.addfile(info)
                    self.entries.append(
                        ManifestEntry(path=path, type="symlink", mode=f"{info.mode:04o}", target=target)
                    )
                elif stat.S_ISREG(st.st_mode):
                    try:  # checked descriptor: FIFOs, devices and links are never opened
                        fd, opened = confined_files.open_regular(dir_fd, entry, parts)
                    except (AppError, OSError):  # replaced or removed meanwhile
                        self.left_out.append(path)
                        continue
                    with os.fdopen(fd, "rb") as handle:
                        self.add_file(path, handle, opened)
                # FIFOs and sockets a sandbox made are not data: left out, as in snapshots

    def _add_dir(self, path: str, st: os.stat_result) -> None:
        info = self._info(path, st, stat.S_IMODE(st.st_mode) & 0o777)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)
        self.entries.append(ManifestEntry(path=path, type="dir", mode=f"{info.mode:04o}"))
