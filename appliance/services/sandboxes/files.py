"""Files in a persistent sandbox: upload, list, download, delete.

Every path is resolved by runtime/confined_files.py, which never follows a link and
never leaves the sandbox's files directory, whatever the sandbox has put there. Sizes
are checked before anything is written: one upload may not exceed max_upload_bytes,
and the files may not grow past the sandbox's disk_limit (both 413).
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import IO

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import PayloadTooLarge, ValidationError
from appliance.core.files import MAX_COMPONENT_BYTES
from appliance.core.identity import SANDBOX_READ, SANDBOX_WRITE, Identity
from appliance.core.sizes import format_size
from appliance.runtime import confined_files
from appliance.services.access.auth import require_permission
from appliance.services.sandboxes.sandboxes import SandboxService

MAX_LISTED = 10_000


class UploadedFile(msgspec.Struct, kw_only=True):
    name: str
    path: str
    size: int
    uploaded_at: datetime


class Download(msgspec.Struct, kw_only=True):
    name: str
    size: int
    content_type: str
    chunks: AsyncIterator[bytes]


def _file_name_problem(name: str) -> str | None:
    if not name or name in (".", ".."):
        return "the uploaded file has no usable name; send it with a filename"
    if "/" in name or "\\" in name:
        return f"file name {name[:80]!r} contains a directory separator; give directories with the path field"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "file name contains NUL or another control character"
    if len(name.encode()) > MAX_COMPONENT_BYTES:
        return f"file name is longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def _size_of(source: IO[bytes]) -> int:
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


class SandboxFileService:
    def __init__(self, sandboxes: SandboxService, max_upload_bytes: int) -> None:
        self._sandboxes = sandboxes
        self._max_upload = max_upload_bytes

    @property
    def max_upload_bytes(self) -> int:
        return self._max_upload

    def may_upload(self, identity: Identity) -> None:
        """401/403 before an upload's body is read: a caller who may not upload is
        refused without the appliance taking in the file first."""
        require_permission(identity, SANDBOX_WRITE)

    def _root(self, sandbox_id: str) -> Path:
        return self._sandboxes.paths.files_dir(sandbox_id)

    async def upload(
        self, identity: Identity, sandbox_id: str, files: list[tuple[str, IO[bytes]]], path: str | None
    ) -> list[UploadedFile]:
        """`path` is where to put the file: a directory (ends with /, already one, or
        several files are sent) takes the file under its own name; anything else is
        the file's new path. Without `path` the file goes to /sandbox/<its name>."""
        self.may_upload(identity)
        record = await self._sandboxes.owned(identity, sandbox_id)
        if not files:
            raise ValidationError(
                "no file in the upload: send the file as the multipart field 'file'",
                details={"field": "file", "reason": "missing"},
            )
        for name, _ in files:
            problem = _file_name_problem(name)
            if problem:
                raise ValidationError(problem, details={"field": "file", "reason": problem})
        sizes = [await asyncio.to_thread(_size_of, source) for _, source in files]
        if sum(sizes) > self._max_upload:
            raise PayloadTooLarge(
                f"the upload holds {format_size(sum(sizes))}; one upload may carry at most "
                f"{format_size(self._max_upload)} (setting max_upload_bytes)",
                details={"limit": "max_upload_bytes", "limit_bytes": self._max_upload},
            )
        root = self._root(sandbox_id)
        base = confined_files.split_path(path) if path is not None else []
        into_dir = (
            path is None
            or path.endswith("/")
            or len(files) > 1
            or not base
            or await asyncio.to_thread(confined_files.kind_of, root, base) == "directory"
        )
        targets = [[*base, name] if into_dir else base for name, _ in files]
        written: list[UploadedFile] = []
        async with self._sandboxes.lock(sandbox_id):
            record = await self._sandboxes.owned(identity, sandbox_id)
            used, _ = await asyncio.to_thread(confined_files.usage, root)
            replaced = 0
            for parts in targets:
                if await asyncio.to_thread(confined_files.kind_of, root, parts) == "file":
                    replaced += await asyncio.to_thread(_file_size, root, parts)
            limit = record.resources.disk_limit
            if used - replaced + sum(sizes) > limit:
                raise PayloadTooLarge(
                    f"the sandbox's files would take {format_size(used - replaced + sum(sizes))}, past its "
                    f"disk_limit of {format_size(limit)} ({format_size(used)} used now): delete files or raise "
                    "resources.disk_limit with PUT /api/sandboxes/{id}",
                    details={"limit": "disk_limit", "limit_bytes": limit, "disk_used": used},
                )
            for parts, (_, source) in zip(targets, files, strict=True):
                entry = await asyncio.to_thread(confined_files.write_file, root, parts, source)
                written.append(UploadedFile(name=entry.name, path=entry.path, size=entry.size, uploaded_at=utc_now()))
        await self._sandboxes.touch(sandbox_id)
        return written

    async def listing(
        self, identity: Identity, sandbox_id: str, path: str | None, recursive: bool
    ) -> confined_files.Listing:
        require_permission(identity, SANDBOX_READ)
        await self._sandboxes.owned(identity, sandbox_id)
        parts = confined_files.split_path(path or "")
        return await asyncio.to_thread(
            confined_files.listing, self._root(sandbox_id), parts, recursive=recursive, limit=MAX_LISTED
        )

    async def download(self, identity: Identity, sandbox_id: str, file_path: str) -> Download:
        require_permission(identity, SANDBOX_READ)
        await self._sandboxes.owned(identity, sandbox_id)
        parts = confined_files.split_path(file_path, relative=True)
        fd, st = await asyncio.to_thread(confined_files.open_for_read, self._root(sandbox_id), parts)
        content_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        await self._sandboxes.touch(sandbox_id)
        return Download(name=parts[-1], size=st.st_size, content_type=content_type, chunks=_read_all(fd, st.st_size))

    async def delete(self, identity: Identity, sandbox_id: str, file_path: str) -> tuple[str, str]:
        """(shown path, kind) of what was deleted."""
        require_permission(identity, SANDBOX_WRITE)
        await self._sandboxes.owned(identity, sandbox_id)
        parts = confined_files.split_path(file_path, relative=True)
        async with self._sandboxes.lock(sandbox_id):
            kind = await asyncio.to_thread(confined_files.delete, self._root(sandbox_id), parts)
        await self._sandboxes.touch(sandbox_id)
        return confined_files.shown_path(parts), kind


def _file_size(root: Path, parts: list[str]) -> int:
    try:
        fd, st = confined_files.open_for_read(root, parts)
    except Exception:
        return 0
    os.close(fd)
    return st.st_size


async def _read_all(fd: int, size: int) -> AsyncIterator[bytes]:
    """The file's bytes as it was when opened (up to its size then); the fd is closed
    when the response ends, or is abandoned by a client that went away."""
    chunks = confined_files.read_chunks(fd, size)
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        os.close(fd)
