"""Snapshot archives: a sandbox's files as a tar (gzip when compressed), and back.

Both directions go through confined_files, so neither reading a sandbox's files nor
writing them back can follow a link out of the sandbox: files are read through checked
descriptors, links are stored as links (never followed), FIFOs and sockets are left
out, and set-id bits are dropped. Extraction goes into a fresh, empty directory that no
sandbox sees yet; each member is checked (`..`, absolute paths, NUL) and written with
every component opened without following links, so a link stored earlier in the
archive cannot redirect a later member.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

import msgspec

from appliance.core.errors import PayloadTooLarge, ValidationError
from appliance.core.sizes import format_size
from appliance.runtime import confined_files as cf

ARCHIVE_NAME = "files.tar"


class ArchiveStats(msgspec.Struct, frozen=True, kw_only=True):
    size_bytes: int  # the archive on disk
    content_bytes: int  # the regular files in it, uncompressed
    file_count: int


class ExactReader:
    """Reads exactly `size` bytes from a file that a running sandbox may be changing:
    bytes past the size at open time are left out, a file that shrank is padded with
    zeros (tarfile would otherwise fail the whole archive)."""

    def __init__(self, source: BinaryIO, size: int) -> None:
        self._source, self._left = source, size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._source.read(n) or b""
        data += b"\0" * (n - len(data))
        self._left -= len(data)
        return data


def archive_path(snapshot_dir: Path, compressed: bool) -> Path:
    return snapshot_dir / (ARCHIVE_NAME + (".gz" if compressed else ""))


def write_archive(root: Path, dest: Path, *, compress: bool) -> ArchiveStats:
    content = count = 0
    with (
        cf.open_root(root) as root_fd,
        tarfile.open(dest, "w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for dir_fd, name, parts, st in cf.iter_tree(root_fd, []):
            info = tarfile.TarInfo("/".join(parts))
            info.mtime = int(st.st_mtime)
            info.mode = stat.S_IMODE(st.st_mode) & 0o777
            info.uid = info.gid = cf.SANDBOX_UID
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                try:
                    info.linkname = os.readlink(name, dir_fd=dir_fd)
                except OSError:
                    continue  # gone or changed meanwhile
                info.type = tarfile.SYMTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                try:
                    fd, opened = cf.open_regular(dir_fd, name, parts)
                except Exception:  # replaced by a link or removed meanwhile: leave it out
                    continue
                with os.fdopen(fd, "rb") as handle:
                    info.size = opened.st_size
                    tar.addfile(info, ExactReader(handle, opened.st_size))
                content += opened.st_size
                count += 1
    return ArchiveStats(size_bytes=dest.stat().st_size, content_bytes=content, file_count=count)


def extract_archive(archive: Path, root: Path, *, limit_bytes: int) -> tuple[int, int]:
    """Write the archive's members under `root` (a new, empty files directory). Returns
    (bytes, files). More than `limit_bytes` of content is refused with a 413."""
    content = count = 0
    with cf.open_root(root) as root_fd, tarfile.open(archive, "r:*") as tar:
        for member in tar:
            try:
                parts = cf.split_path(member.name, relative=True)
            except ValidationError:
                raise ValidationError(
                    f"the snapshot archive holds an unsafe name {member.name[:80]!r}; it was not restored"
                ) from None
            if not parts:
                continue
            if member.isdir():
                with cf.open_dirs(root_fd, parts, create=True) as fd:
                    os.fchmod(fd, (member.mode & 0o777) | 0o700)
                continue
            with cf.open_dirs(root_fd, parts[:-1], create=True) as dir_fd:
                if member.issym():
                    with contextlib.suppress(FileExistsError):
                        os.symlink(member.linkname, parts[-1], dir_fd=dir_fd)
                elif member.isfile():
                    content += member.size
                    if content > limit_bytes:
                        raise PayloadTooLarge(
                            f"the snapshot's files exceed the target sandbox's disk_limit "
                            f"({format_size(limit_bytes)}); raise disk_limit with PUT /api/sandboxes/{{id}}",
                            details={"limit": "disk_limit", "limit_bytes": limit_bytes},
                        )
                    source = tar.extractfile(member)
                    assert source is not None
                    cf.write_new_file(dir_fd, parts[-1], parts, source, mode=(member.mode & 0o777) | 0o600)
                    os.utime(parts[-1], (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)
                    count += 1
                # hard links, devices and FIFOs are never written: snapshots do not make them
    return content, count
