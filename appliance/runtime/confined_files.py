"""File operations confined to one sandbox's files directory.

The directory is bind-mounted read-write into the sandbox at /sandbox, so whatever runs
in the sandbox (uid 65534) can put anything in it at any moment: symbolic links to
/etc/passwd or to the appliance's data dir, a directory swapped for a link between two
system calls, FIFOs. The appliance runs as root on the host side, so every operation
here must reach only what is inside that directory, whatever the sandbox does:

* Paths are split into components; `..`, NUL and control characters are refused
  before anything is opened; absolute paths must be under /sandbox.
* Each component is opened relative to the directory fd of the one before, with
  O_NOFOLLOW (openat-style): a symbolic link anywhere on the way fails the open instead
  of being followed, and a swap after a check cannot redirect an open that is already
  relative to a held fd. A string prefix check is never relied on.
* A file is read through an O_PATH descriptor checked to be a regular file, then
  reopened through /proc/self/fd: FIFOs and devices are never opened for reading.
* A file is written as a new temporary file (O_CREAT|O_EXCL|O_NOFOLLOW) in the
  already-open parent and renamed over the target: rename replaces a link at the
  target, it never writes through one.
* Directories are removed with shutil.rmtree(dir_fd=...), which is fd-based and does
  not follow links; lists and sizes come from fd-based walks that do not follow links.

All functions block; the services call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

import msgspec

from appliance.core.errors import Conflict, NotFound, ValidationError
from appliance.core.files import MAX_COMPONENT_BYTES, MAX_PATH_BYTES
from appliance.core.sandboxes import SANDBOX_ROOT

SANDBOX_UID = SANDBOX_GID = 65534
MAX_DEPTH = 256
CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileEntry(msgspec.Struct, kw_only=True):
    name: str
    path: str  # as the sandbox sees it: /sandbox/...
    type: str  # file, directory, symlink or other (a FIFO or socket the sandbox made)
    size: int
    # Linux keeps no creation time that stat reports: this is the inode change time.
    created_at: datetime
    modified_at: datetime


class Listing(msgspec.Struct, kw_only=True):
    path: str  # the directory listed, as the sandbox sees it
    entries: list[FileEntry]
    truncated: bool = False


# --- paths --------------------------------------------------------------------------------


def split_path(text: str, *, relative: bool = False) -> list[str]:
    """Components of a path inside the sandbox. `relative=True` for a path taken from a
    URL (always relative to /sandbox, one leading slash ignored); otherwise a leading
    slash means an absolute path, which must be /sandbox or below it."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValidationError(
            "path contains NUL or another control character", details={"field": "path", "reason": "control character"}
        )
    if len(text.encode()) > MAX_PATH_BYTES:
        raise ValidationError(f"path is longer than {MAX_PATH_BYTES} bytes", details={"field": "path"})
    if relative and text.startswith("/"):
        text = text[1:]
    if text.startswith("/"):
        if text != SANDBOX_ROOT and not text.startswith(SANDBOX_ROOT + "/"):
            raise ValidationError(
                f"path {text[:80]!r} is outside the sandbox: absolute paths must start with {SANDBOX_ROOT}/ "
                "(or give a path relative to it)",
                details={"field": "path", "reason": "outside /sandbox"},
            )
        text = text[len(SANDBOX_ROOT) :]
    parts = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValidationError(
                f"path {text[:80]!r} contains '..': paths must stay inside {SANDBOX_ROOT}",
                details={"field": "path", "reason": "parent directory reference"},
            )
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise ValidationError(
                f"a path component is longer than {MAX_COMPONENT_BYTES} bytes", details={"field": "path"}
            )
        parts.append(part)
    return parts


def shown_path(parts: list[str]) -> str:
    return SANDBOX_ROOT + ("/" + "/".join(parts) if parts else "")


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _entry(parts: list[str], st: os.stat_result) -> FileEntry:
    kind = _kind(st.st_mode)
    return FileEntry(
        name=parts[-1] if parts else SANDBOX_ROOT.strip("/"),
        path=shown_path(parts),
        type=kind,
        size=st.st_size if kind == "file" else 0,
        created_at=_when(st.st_ctime),
        modified_at=_when(st.st_mtime),
    )


# --- opening without following links ------------------------------------------------------


def make_root(path: Path) -> None:
    """Create the files directory, owned by the sandbox user. Its parent (the
    sandbox's own directory) is the appliance's alone: the container reaches the files
    through the bind mount, host users other than root do not reach them at all."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.mkdir(exist_ok=True)
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fchmod(fd, 0o755)
        _give_to_sandbox(fd, directory=True)
    finally:
        os.close(fd)


def _give_to_sandbox(fd: int, *, directory: bool) -> None:
    try:
        os.fchown(fd, SANDBOX_UID, SANDBOX_GID)
    except PermissionError:  # not root: let the sandbox user write through the mode instead
        os.fchmod(fd, 0o777 if directory else 0o666)


def _refuse_component(dir_fd: int, name: str, parts: list[str], exc: OSError) -> None:
    where = shown_path(parts)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        raise Conflict(f"{where} changed while it was being opened; retry") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValidationError(
            f"{where} is a symbolic link: the appliance never follows links in a sandbox",
            details={"field": "path", "reason": "symbolic link"},
        ) from None
    raise ValidationError(
        f"{where} is not a directory", details={"field": "path", "reason": "not a directory"}
    ) from exc


def _open_dir(dir_fd: int, name: str, parts: list[str], *, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise NotFound(f"{shown_path(parts)} does not exist in the sandbox") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            _refuse_component(dir_fd, name, parts, exc)
        raise
    # Made meanwhile (perhaps as a link): the open below decides.
    with suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            _refuse_component(dir_fd, name, parts, exc)
        raise
    _give_to_sandbox(fd, directory=True)
    return fd


@contextmanager
def open_root(root: Path) -> Iterator[int]:
    try:
        fd = os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        raise NotFound("the sandbox's files directory is gone (the sandbox is being deleted)") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_dirs(root_fd: int, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """The directory at `parts` below the root, every component opened without
    following links; `create` makes missing directories (owned by the sandbox user)."""
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts):
            next_fd = _open_dir(fd, name, parts[: depth + 1], create=create)
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def open_regular(dir_fd: int, name: str, parts: list[str]) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file `name` in `dir_fd`, and its stat. Links,
    directories, FIFOs and devices are refused without being opened for reading."""
    try:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise NotFound(f"{shown_path(parts)} does not exist in the sandbox") from None
    try:
        st = os.fstat(path_fd)
        kind = _kind(st.st_mode)
        if kind == "symlink":
            raise ValidationError(
                f"{shown_path(parts)} is a symbolic link: the appliance never follows links in a sandbox",
                details={"field": "path", "reason": "symbolic link"},
            )
        if kind == "directory":
            raise ValidationError(
                f"{shown_path(parts)} is a directory: list it with GET .../files?path={shown_path(parts)}",
                details={"field": "path"},
            )
        if kind != "file":
            raise ValidationError(f"{shown_path(parts)} is not a regular file", details={"field": "path"})
        # The O_PATH fd pins this very inode; reopening it through /proc cannot land elsewhere.
        return os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC), st
    finally:
        os.close(path_fd)


# --- the operations -----------------------------------------------------------------------


def open_for_read(root: Path, parts: list[str]) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file at `parts` (the caller closes it), and its stat."""
    if not parts:
        raise ValidationError(f"{SANDBOX_ROOT} is a directory: name a file in it", details={"field": "path"})
    with open_root(root) as root_fd, open_dirs(root_fd, parts[:-1]) as dir_fd:
        return open_regular(dir_fd, parts[-1], parts)


def read_chunks(fd: int, size: int) -> Iterator[bytes]:
    """At most `size` bytes (the size when it was opened) in chunks."""
    left = size
    while left > 0:
        data = os.read(fd, min(CHUNK, left))
        if not data:
            return
        left -= len(data)
        yield data


def write_new_file(dir_fd: int, name: str, parts: list[str], source: IO[bytes], *, mode: int = 0o644) -> os.stat_result:
    """Write `source` to `name` in `dir_fd`, replacing what is there unless it is a
    directory. Written to a fresh temporary file and renamed into place."""
    try:
        existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(existing.st_mode):
            raise ValidationError(
                f"{shown_path(parts)} is a directory: upload into it with path {shown_path(parts)}/",
                details={"field": "path", "reason": "is a directory"},
            )
    except FileNotFoundError:
        pass
    temp = f".appliance-upload-{secrets.token_hex(6)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o777, dir_fd=dir_fd)
    try:
        try:
            while chunk := source.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fchmod(fd, mode & 0o777)  # the umask may have taken bits away
            _give_to_sandbox(fd, directory=False)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        if isinstance(exc, IsADirectoryError):
            raise ValidationError(f"{shown_path(parts)} is a directory", details={"field": "path"}) from None
        if isinstance(exc, FileNotFoundError):  # the sandbox moved the temporary file
            raise Conflict(f"{shown_path(parts)} changed while it was written; retry") from None
        raise
    return st


def write_file(root: Path, parts: list[str], source: BinaryIO) -> FileEntry:
    if not parts:
        raise ValidationError(f"name a file under {SANDBOX_ROOT}", details={"field": "path"})
    with open_root(root) as root_fd, open_dirs(root_fd, parts[:-1], create=True) as dir_fd:
        st = write_new_file(dir_fd, parts[-1], parts, source)
    return _entry(parts, st)


def kind_of(root: Path, parts: list[str]) -> str | None:
    """file, directory, symlink, other, or None when nothing is there (or a parent is
    missing). A parent that is a link is refused."""
    if not parts:
        return "directory"
    with open_root(root) as root_fd:
        try:
            with open_dirs(root_fd, parts[:-1]) as dir_fd:
                return _kind(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except (NotFound, FileNotFoundError):
            return None


def delete(root: Path, parts: list[str]) -> str:
    """Remove a file, a link (not what it points to) or a directory with everything in it."""
    if not parts:
        raise ValidationError(
            f"{SANDBOX_ROOT} itself cannot be deleted; delete the files in it", details={"field": "path"}
        )
    with open_root(root) as root_fd, open_dirs(root_fd, parts[:-1]) as dir_fd:
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: does not follow links
            else:
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            raise NotFound(f"{shown_path(parts)} does not exist in the sandbox") from None
        return _kind(st.st_mode)


def iter_tree(dir_fd: int, prefix: list[str], depth: int = 0) -> Iterator[tuple[int, str, list[str], os.stat_result]]:
    """(dir fd, name, path parts, lstat) of everything below `dir_fd`, parents before
    their contents, names sorted. A directory swapped for a link mid-walk is skipped."""
    with os.scandir(dir_fd) as scan:
        names = sorted(entry.name for entry in scan)
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        parts = [*prefix, name]
        yield dir_fd, name, parts, st
        if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from iter_tree(sub, parts, depth + 1)
            finally:
                os.close(sub)


def listing(root: Path, parts: list[str], *, recursive: bool, limit: int) -> Listing:
    with open_root(root) as root_fd, open_dirs(root_fd, parts) as dir_fd:
        entries: list[FileEntry] = []
        if recursive:
            for _, _, entry_parts, st in iter_tree(dir_fd, parts):
                if len(entries) >= limit:
                    return Listing(path=shown_path(parts), entries=entries, truncated=True)
                entries.append(_entry(entry_parts, st))
            return Listing(path=shown_path(parts), entries=entries)
        with os.scandir(dir_fd) as scan:
            names = sorted(entry.name for entry in scan)
        for name in names:
            if len(entries) >= limit:
                return Listing(path=shown_path(parts), entries=entries, truncated=True)
            try:
                entries.append(_entry([*parts, name], os.stat(name, dir_fd=dir_fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue
        return Listing(path=shown_path(parts), entries=entries)


def usage(root: Path) -> tuple[int, int]:
    """(bytes, files): the apparent sizes of the regular files, links not followed."""
    total = files = 0
    with open_root(root) as root_fd:
        for _, _, _, st in iter_tree(root_fd, []):
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                files += 1
    return total, files


def remove_tree(path: Path) -> None:
    """Delete a sandbox's or snapshot's directory; rmtree is fd-based on Linux and does
    not follow the links a sandbox may have left in it."""
    assert shutil.rmtree.avoids_symlink_attacks
    shutil.rmtree(path, ignore_errors=True)
