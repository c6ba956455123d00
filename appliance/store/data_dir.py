"""The data dir's permissions: the directory and its subdirectories 0700, the appliance's
own files (database and its -wal/-shm, keys, secrets, logs, snapshots) 0600.

However the dir was made (scripts/run.sh under a 022 umask, `appliance serve`, the
installer, a restore), the start brings anything looser back to these modes, and the
doctor reports what is looser with the same walk. The sandboxes' bind-mounted trees
(`sandboxes/<id>/files`) are left alone: their container user needs their modes, and
the sandbox's own directory above them (0700) already keeps other host users out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# Below these, only the directories themselves are ours to tighten: under `sandboxes`
# each sandbox's dir (its `files` tree belongs to the container user), under `cache` and
# a one-file build's unpack dir the contents are tools' trees (debootstrap, executables).
SHALLOW = {"sandboxes": 1, "cache": 0, "runtime": 0, "tmp": 0}


class LooseMode:
    """A path in the data dir whose mode lets others (or, for a file, anyone) in."""

    __slots__ = ("path", "mode", "wanted")

    def __init__(self, path: Path, mode: int, wanted: int) -> None:
        self.path, self.mode, self.wanted = path, mode, wanted

    def __repr__(self) -> str:
        return f"{self.path} {self.mode:04o} (want {self.wanted:04o})"


def loose_modes(data_path: Path) -> list[LooseMode]:
    """Everything in the data dir that is looser than it should be, without changing it."""
    return list(_walk(data_path))


def make_private(data_path: Path, subdirs: Iterable[Path] = ()) -> list[LooseMode]:
    """Create the data dir and `subdirs` if needed and tighten whatever is looser; returns
    what was tightened (the start logs it). Symbolic links are never followed or changed."""
    data_path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for folder in subdirs:
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fixed = []
    for loose in _walk(data_path):
        try:
            os.chmod(loose.path, loose.wanted, follow_symlinks=False)
        except (FileNotFoundError, NotImplementedError):
            continue  # gone meanwhile (a rotated log, a removed sandbox)
        fixed.append(loose)
    return fixed


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist: SQLite then creates the
    database's -wal and -shm with the same mode, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)


def _wanted(st: os.stat_result) -> int | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return DIR_MODE if mode & 0o077 else None
    if stat.S_ISREG(st.st_mode):
        # An owner's execute bit stays (an unpacked executable); group and others go.
        return (mode & 0o700) | FILE_MODE if mode & 0o077 else None
    return None


def _walk(data_path: Path) -> Iterator[LooseMode]:
    try:
        st = os.lstat(data_path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    if (wanted := _wanted(st)) is not None:
        yield LooseMode(data_path, stat.S_IMODE(st.st_mode), wanted)
    yield from _walk_dir(data_path, levels=None, top=True)


def _walk_dir(folder: Path, *, levels: int | None, top: bool = False) -> Iterator[LooseMode]:
    """`levels`: how many levels of entries below `folder` to look at (None: all)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        path = Path(entry.path)
        if (wanted := _wanted(st)) is not None:
            yield LooseMode(path, stat.S_IMODE(st.st_mode), wanted)
        if not stat.S_ISDIR(st.st_mode):
            continue
        below = SHALLOW[entry.name] if top and entry.name in SHALLOW else (None if levels is None else levels - 1)
        if below is None or below > 0:
            yield from _walk_dir(path, levels=below)
