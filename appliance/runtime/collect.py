"""Copying files out of a sandbox's work dir after its program ended (an experiment run's
checkpoints/), before the container is destroyed.

The work dir is a tmpfs inside the container, which `docker cp` (get_archive) does not
see, so the files come out as a tar stream from `tar -c` run in the container as the
sandbox user (`docker exec`); the runner keeps the container alive for it (`K`) and has
already killed whatever the program left running. Everything in that directory was
written by the program, so the stream is read as hostile:

* it is read as a stream, never whole: a file past the caps (its own size, the total,
  the number of files) is skipped and a problem line names it; the stream itself stops
  at its own cap (the sandbox's writable space, which bounds what the program can have
  written), at a number of entries, and at a deadline;
* only regular files are kept: links, devices, FIFOs and directories are skipped (a
  link is stored as a link by tar, never followed), and names with `..`, absolute
  paths or control characters are refused;
* each file is written by the appliance to a new file of its own naming
  (`<into>/<n>`, O_EXCL|O_NOFOLLOW), so no name from the sandbox reaches the host's
  file system.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from appliance.core.evaluations import CollectedFile
from appliance.core.languages import WORK_DIR
from appliance.core.sizes import format_size
from appliance.runtime.engine import DockerEngine
from appliance.runtime.limits import SANDBOX_USER

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Entries of any kind (directories, skipped links) per file allowed, before giving up.
ENTRIES_PER_FILE = 4
# tar's own bytes (headers, padding, pax records) allowed beside the files' bytes.
TAR_OVERHEAD_BYTES = 16 * 1024 * 1024
MAX_NAME_CHARS = 1024


class CollectSpec(msgspec.Struct, frozen=True, kw_only=True):
    directory: str  # relative to the work dir, e.g. "checkpoints"
    into: str  # a host directory the appliance owns; created if missing
    max_bytes: int  # all files together
    max_files: int
    max_file_bytes: int  # one file
    timeout: float = 300.0


class CollectOutcome(msgspec.Struct, kw_only=True):
    files: list[CollectedFile] = []
    problems: list[str] = []


class _Stop(Exception):
    """A cap was reached: stop reading the stream."""


class _StreamReader:
    """A file-like view of the exec's output chunks for tarfile's stream mode, with a
    byte cap and a deadline."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int, deadline: float) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._max = max_bytes
        self._deadline = deadline
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            if time.monotonic() > self._deadline:
                raise _Stop("copying took past its deadline")
            chunk = next(self._chunks, None)
            if not chunk:
                break
            self.total += len(chunk)
            if self.total > self._max:
                raise _Stop(f"the archive passed {format_size(self._max)}")
            self._buffer += chunk
        n = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


def _clean_name(member_name: str, directory: str) -> str | None:
    """The member's path below `directory`, or None when it is not a usable name."""
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    if not parts or parts[0] != directory or len(parts) == 1:
        return None
    rest = parts[1:]
    if any(p == ".." for p in rest) or len(member_name) > MAX_NAME_CHARS:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in member_name):
        return None
    return "/".join(rest)


def _write_member(source: tarfile.ExFileObject, target: Path, size: int) -> str:
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        left = size
        while left > 0:
            data = source.read(min(CHUNK, left))
            if not data:
                break
            digest.update(data)
            out.write(data)
            left -= len(data)
    return digest.hexdigest()


def collect_files(engine: DockerEngine, container_id: str, spec: CollectSpec, stream_cap: int) -> CollectOutcome:
    """Blocking; on the engine's threads. The container must still run (its runner
    waiting after the program ended). `stream_cap`: bytes of tar stream read at most."""
    api = engine.api
    outcome = CollectOutcome()
    into = Path(spec.into)
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    command = ["/bin/tar", "--format=posix", "-c", "-C", WORK_DIR, "--", spec.directory]
    exec_id = api.exec_create(container_id, command, user=SANDBOX_USER, stdout=True, stderr=False)["Id"]
    chunks = api.exec_start(exec_id, stream=True)
    reader = _StreamReader(iter(chunks), stream_cap + TAR_OVERHEAD_BYTES, time.monotonic() + max(1.0, spec.timeout))
    kept_bytes = entries = 0
    skipped: list[str] = []
    over: list[tuple[int, str]] = []  # (size, name) of files left out
    try:
        with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                entries += 1
                if entries > spec.max_files * ENTRIES_PER_FILE + 16:
                    raise _Stop(f"the directory holds more than {entries - 1} entries")
                if member.isdir():
                    continue
                name = _clean_name(member.name, spec.directory)
                if not member.isreg() or name is None:
                    skipped.append(member.name[:200])
                    continue
                if (
                    len(outcome.files) >= spec.max_files
                    or member.size > spec.max_file_bytes
                    or kept_bytes + member.size > spec.max_bytes
                ):
                    over.append((member.size, name[:200]))
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                target = into / f"{len(outcome.files) + 1:06d}"
                sha256 = _write_member(source, target, member.size)
                kept_bytes += member.size
                outcome.files.append(
                    CollectedFile(
                        name=name,
                        size=member.size,
                        sha256=sha256,
                        modified_at=datetime.fromtimestamp(member.mtime, UTC),
                        stored_path=str(target),
                    )
                )
    except _Stop as stop:
        outcome.problems.append(f"copying {spec.directory}/ out stopped: {stop}; what came after was not kept")
    except tarfile.ReadError as exc:
        if reader.total > 0 and "empty" not in str(exc):
            outcome.problems.append(f"the files of {spec.directory}/ could not be read: {exc}")
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if over:
        outcome.problems.append(
            f"files of {spec.directory}/ past a cap were not kept ({spec.max_files} files, "
            f"{format_size(spec.max_file_bytes)} each, {format_size(spec.max_bytes)} in all): "
            + _some([f"{name} ({format_size(size)})" for size, name in sorted(over, reverse=True)])
        )
    if skipped:
        outcome.problems.append(f"skipped what is not a regular file with a usable name: {_some(skipped)}")
    return outcome


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
