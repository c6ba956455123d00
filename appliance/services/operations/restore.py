"""`appliance restore`: a backup (backup_format.py) back into a data dir.

Restore extracts into a staging directory inside the target data dir, checks every
entry against the manifest, and only then moves the current data aside (with --force)
and the restored entries into place: a refused or damaged restore changes nothing.
It holds the data dir's lock exclusively throughout (store/db_files.py): that is how it
knows no appliance has the data dir open, and no appliance starts on it meanwhile.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import TypeVar

import msgspec

from appliance import __version__
from appliance.config import SECRET_FILES
from appliance.core.clock import utc_now
from appliance.core.sizes import format_size
from appliance.services.operations.backup_format import (
    CHUNK,
    DATABASE_MEMBER,
    DIR_FLAGS,
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
    owned_names,
    tree_names,
)
from appliance.store import db_files
from appliance.store.database import schema_version

S = TypeVar("S", bound=msgspec.Struct)


class RestoreSummary(msgspec.Struct, kw_only=True):
    data_dir: str
    header: BackupHeader
    file_count: int
    content_bytes: int
    moved_aside: str | None
    new_identity: bool  # restored elsewhere than it was taken: a new instance id at the next start

    def describe(self) -> str:
        h = self.header
        text = (
            f"restored {self.file_count} files ({format_size(self.content_bytes)}) into {self.data_dir}, "
            f"from a backup made {h.created_at} by appliance {h.appliance_version} (schema v{h.schema_version})"
        )
        if self.moved_aside:
            text += f"; the data that was there is in {self.moved_aside}"
        if self.new_identity:
            text += f"; taken from {h.data_dir}, this copy gets its own instance id at its first start"
        if h.schema_version < schema_version():
            text += (
                f"; the next start upgrades the database from schema v{h.schema_version} to "
                f"v{schema_version()} (a copy goes to backups/ first)"
            )
        return text


def restore_backup(
    archive: Path, data_path: Path, database_path: Path, *, force: bool = False, progress: Progress | None = None
) -> RestoreSummary:
    """Restore `archive` into `data_path`. Refused while anything has the data dir open,
    and, without `force`, when it already holds appliance data; with `force` that data
    is first moved to DATA_DIR/replaced-<UTC>Z/."""
    archive = Path(os.path.abspath(archive))
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file: name a backup that `appliance backup` wrote")
    if os.path.lexists(data_path) and not data_path.is_dir():
        raise BackupError(f"{data_path} is not a directory: name the data dir to restore into with --data-dir")
    made_dir = not data_path.exists()
    if made_dir:
        data_path.mkdir(mode=0o700, parents=True)
    made_lock = not db_files.lock_path(database_path).exists()
    lock = None
    finished = False
    try:
        lock = db_files.hold_lock(database_path, exclusive=True)  # refused while anything has it open
        summary = _restore_locked(archive, data_path, database_path, force, progress)
        finished = True
        return summary
    except OSError as exc:
        raise BackupError(f"restore failed: {exc}; {data_path} was not changed") from exc
    finally:
        if lock is not None:
            db_files.release_lock(lock)
        if not finished:  # leave no trace of a refused restore
            if made_lock and lock is not None:
                db_files.lock_path(database_path).unlink(missing_ok=True)
            if made_dir:
                shutil.rmtree(data_path, ignore_errors=True)


def _restore_locked(
    archive: Path, data_path: Path, database_path: Path, force: bool, progress: Progress | None
) -> RestoreSummary:
    for leftover in data_path.glob(".restore-*"):  # from a restore that was killed; none runs now
        shutil.rmtree(leftover, ignore_errors=True)
    present = [name for name in owned_names(data_path, database_path) if os.path.lexists(data_path / name)]
    if present and not force:
        raise BackupError(
            f"{data_path} already holds appliance data ({', '.join(present)}): restore into an empty data dir "
            f"(--data-dir DIR), or add --force to move the current data aside to {data_path}/replaced-<time>Z/ first"
        )
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_path))
    try:
        header, count, content = _Extraction(archive, staging, data_path, progress).run()
        staged_db = staging / DATABASE_MEMBER
        db_files.forget_sandbox_containers(staged_db)
        # Same data dir: the same installation, which takes over its containers. Anywhere
        # else: a copy, which must never touch the original's containers on a shared engine.
        new_identity = header.data_dir != str(data_path.resolve())
        if new_identity:
            db_files.forget_instance_id(staged_db)
        staged_db.rename(staging / database_path.name)
        moved = None
        try:  # renames within one directory: these do not fail short of a broken disk
            moved = _move_aside(data_path, present) if present else None
            for entry in sorted(staging.iterdir()):
                entry.rename(data_path / entry.name)
            fsync_dir(data_path)
        except OSError as exc:
            raise BackupError(
                f"restore stopped while moving entries into place ({exc}): what was restored so far "
                f"is in {data_path}, the previous data in {moved or data_path}; fix the cause and "
                "restore again with --force"
            ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreSummary(
        data_dir=str(data_path),
        header=header,
        file_count=count,
        content_bytes=content,
        moved_aside=str(moved) if moved else None,
        new_identity=new_identity,
    )


def _move_aside(data_path: Path, names: list[str]) -> Path:
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    aside = data_path / f"replaced-{stamp}Z"
    n = 1
    while os.path.lexists(aside):
        n += 1
        aside = data_path / f"replaced-{stamp}Z-{n}"
    aside.mkdir(mode=0o700)
    for name in names:
        (data_path / name).rename(aside / name)
    return aside


class _Extraction:
    """One pass over the archive: the header first (refusing what this appliance cannot
    restore), every member written under `staging` and hashed, the manifest last, then
    every entry compared with it. Members are written with each path component opened
    without following links, into a directory nothing else uses, so neither a name nor a
    link stored earlier in the archive can send a write outside it."""

    def __init__(self, archive: Path, staging: Path, data_path: Path, progress: Progress | None) -> None:
        self.archive, self.staging, self.progress = archive, staging, progress
        self.trees = set(tree_names(data_path))
        self.target_owner = data_path.stat()
        self.header: BackupHeader | None = None
        self.found: dict[str, ManifestEntry] = {}
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []
        self.meter = Meter("restore", 0, None)
        self.content = 0

    def damaged(self, why: str) -> BackupError:
        return BackupError(
            f"{self.archive} is damaged or not an appliance backup ({why}); nothing was changed: use another backup"
        )

    def run(self) -> tuple[BackupHeader, int, int]:
        manifest: Manifest | None = None
        self.root_fd = os.open(self.staging, DIR_FLAGS)
        try:
            with tarfile.open(self.archive, "r|gz") as tar:
                for member in tar:
                    if self.header is None:
                        self.header = self._read_header(tar, member)
                    elif manifest is not None:
                        raise self.damaged(f"{member.name[:80]!r} follows the manifest")
                    elif member.name == MANIFEST_NAME:
                        manifest = self._read_json(tar, member, Manifest)
                    else:
                        self._extract(tar, member)
            self._finish_dirs()
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise self.damaged(str(exc) or type(exc).__name__) from None
        finally:
            os.close(self.root_fd)
        if self.header is None:
            raise self.damaged("it is empty")
        if manifest is None:
            raise self.damaged("no manifest at its end: the backup was cut short")
        if DATABASE_MEMBER not in self.found:
            raise self.damaged(f"it holds no {DATABASE_MEMBER}")
        self._verify(manifest)
        self.meter.finish()
        files = sum(1 for e in self.found.values() if e.type == "file")
        return self.header, files, self.content

    # --- members ----------------------------------------------------------------------

    def _read_json(self, tar: tarfile.TarFile, member: tarfile.TarInfo, kind: type[S]) -> S:
        source = tar.extractfile(member) if member.isfile() else None
        if source is None or member.size > 64 * 1024 * 1024:
            raise self.damaged(f"{member.name} is not a JSON file")
        try:
            return msgspec.json.decode(source.read(), type=kind)
        except msgspec.DecodeError as exc:
            raise self.damaged(f"{member.name}: {exc}") from None

    def _read_header(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> BackupHeader:
        if member.name != HEADER_NAME:
            raise self.damaged(f"it starts with {member.name[:80]!r}, not {HEADER_NAME}")
        header = self._read_json(tar, member, BackupHeader)
        assert isinstance(header, BackupHeader)
        if header.format > FORMAT:
            raise BackupError(
                f"{self.archive} is in backup format {header.format}, which this appliance "
                f"({__version__}) does not know: restore it with appliance {header.appliance_version} "
                "or newer"
            )
        if header.schema_version > schema_version():
            raise BackupError(
                f"{self.archive} holds a database at schema version {header.schema_version}, newer "
                f"than this appliance ({__version__}, schema up to {schema_version()}) knows: restore "
                f"it with appliance {header.appliance_version} or newer; nothing was changed"
            )
        self.meter = Meter("restore", header.estimated_bytes, self.progress)
        return header

    def _parts(self, member: tarfile.TarInfo) -> list[str]:
        name = member.name
        parts = name.split("/")
        if (
            name.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
        ):
            raise self.damaged(f"unsafe member name {name[:80]!r}")
        top, is_tree = parts[0], parts[0] in self.trees
        singles = (DATABASE_MEMBER, TELEMETRY_MEMBER, *SECRET_FILES, *PLAIN_FILES)
        if not is_tree and top not in singles:
            raise self.damaged(f"unexpected member {name[:80]!r}")
        expected_kind = member.isdir() if is_tree else member.isfile()  # the tree roots, the single files
        if (len(parts) == 1 and not expected_kind) or (not is_tree and len(parts) > 1):
            raise self.damaged(f"{name[:80]!r} is not what a backup holds there")
        if member.issym() and len(parts) < 3:  # links only inside a sandbox's or snapshot's directory
            raise self.damaged(f"unexpected link {name[:80]!r}")
        return parts

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int] | None:
        """Who owns the restored entry, when running as root (otherwise: whoever runs the
        restore). The source data dir's owner becomes the target's; other ids (the
        sandbox user that owns a sandbox's files) stay as they were."""
        if os.geteuid() != 0:
            return None
        assert self.header is not None
        uid = self.target_owner.st_uid if member.uid == self.header.data_dir_uid else member.uid
        gid = self.target_owner.st_gid if member.gid == self.header.data_dir_gid else member.gid
        return uid, gid

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self._parts(member)
        path = member.name
        if path in self.found:
            raise self.damaged(f"{path[:80]!r} appears twice")
        mode = member.mode & 0o777
        if member.isdir():
            os.close(self._open_dirs(parts))
            self.dirs.append((parts, member))
            self.found[path] = ManifestEntry(path=path, type="dir", mode=f"{mode:04o}")
            return
        parent = self._open_dirs(parts[:-1])
        try:
            if member.issym():
                os.symlink(member.linkname, parts[-1], dir_fd=parent)
                owner = self._owner(member)
                if owner is not None:
                    os.chown(parts[-1], *owner, dir_fd=parent, follow_symlinks=False)
                self.found[path] = ManifestEntry(path=path, type="symlink", mode=f"{mode:04o}", target=member.linkname)
            elif member.isfile():
                if len(parts) == 1 and parts[0] in SECRET_FILES:
                    mode = 0o600
                self.found[path] = self._write_file(tar, member, parent, parts[-1], mode)
            else:
                raise self.damaged(f"{path[:80]!r} is a kind of entry backups never hold")
        except FileExistsError:
            raise self.damaged(f"{path[:80]!r} appears twice") from None
        finally:
            os.close(parent)

    def _write_file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str, mode: int
    ) -> ManifestEntry:
        source = tar.extractfile(member)
        assert source is not None
        digest = hashlib.sha256()
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            size = 0
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                self.meter.add(len(chunk))
            os.fchmod(fd, mode)
            owner = self._owner(member)
            if owner is not None:
                os.fchown(fd, *owner)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)
        self.content += size
        return ManifestEntry(path=member.name, type="file", mode=f"{mode:04o}", size=size, sha256=digest.hexdigest())

    def _open_dirs(self, parts: list[str]) -> int:
        """The staging directory at `parts`, made where missing (0700 until the end),
        every component opened without following links."""
        fd = os.dup(self.root_fd)
        try:
            for name in parts:
                try:
                    next_fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(name, 0o700, dir_fd=fd)
                    next_fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    raise self.damaged(f"{'/'.join(parts)[:80]!r} lies under a file or a link") from None
                except OSError as exc:
                    if exc.errno == errno.ELOOP:  # the component is a link
                        raise self.damaged(f"{'/'.join(parts)[:80]!r} lies under a link") from None
                    raise
                os.close(fd)
                fd = next_fd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _finish_dirs(self) -> None:
        """Directory modes and owners last: a read-only directory would have refused its
        own contents."""
        for parts, member in sorted(self.dirs, key=lambda item: -len(item[0])):
            fd = self._open_dirs(parts)
            try:
                os.fchmod(fd, member.mode & 0o777)
                owner = self._owner(member)
                if owner is not None:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)

    # --- checking ---------------------------------------------------------------------

    def _verify(self, manifest: Manifest) -> None:
        assert self.header is not None
        if msgspec.structs.asdict(self.header) != {
            k: v for k, v in msgspec.structs.asdict(manifest).items() if k != "files"
        }:
            raise self.damaged("its header and its manifest disagree")
        expected = {entry.path: entry for entry in manifest.files}
        problems = []
        for path in expected.keys() - self.found.keys():
            problems.append(f"{path}: listed in the manifest but missing")
        for path in self.found.keys() - expected.keys():
            problems.append(f"{path}: in the archive but not in the manifest")
        for path in expected.keys() & self.found.keys():
            want, got = expected[path], self.found[path]
            if (want.type, want.size, want.target) != (got.type, got.size, got.target):
                problems.append(f"{path}: not the {want.type} the manifest lists")
            elif want.sha256 != got.sha256:
                problems.append(f"{path}: sha256 differs from the manifest's")
            elif want.mode != got.mode:
                problems.append(f"{path}: mode differs from the manifest's")
        if problems:
            problems.sort()
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise self.damaged(problems[0] + more)
