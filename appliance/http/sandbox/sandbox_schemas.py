"""Response bodies of /api/sandboxes, /api/files and /api/snapshots, in the shapes of
sandbox-api.md (sizes as "512M" strings, with exact byte counts beside them)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec

from appliance.core.clock import iso_z
from appliance.core.sandboxes import SandboxRecord, SnapshotRecord
from appliance.core.sizes import format_size
from appliance.services.sandboxes.sandboxes import SandboxDetails


class Network(msgspec.Struct, kw_only=True):
    enabled: bool
    # As stored (canonical): kept when the network is off; with it on, the only hosts
    # the sandbox reaches, through its egress proxy.
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class Resources(msgspec.Struct, kw_only=True):
    memory_limit: str
    cpu_limit: float
    disk_limit: str
    memory_limit_bytes: int
    disk_limit_bytes: int


class ResourcesInUse(Resources, kw_only=True):
    """The limits and what the sandbox uses of them now."""

    memory_used: str | None  # None while its container is not running
    memory_used_bytes: int | None
    cpu_used: float | None
    disk_used: str
    disk_used_bytes: int


def network_body(record: SandboxRecord) -> Network:
    return Network(enabled=record.network_enabled, allowed_hosts=list(record.allowed_hosts))


class SandboxCreated(msgspec.Struct, kw_only=True):
    sandbox_id: str
    name: str
    status: str
    created_at: str
    runtime: str
    template: str | None
    engine: str
    resources: Resources
    network: Network
    environment: dict[str, str]


class SandboxSummary(msgspec.Struct, kw_only=True):
    sandbox_id: str
    name: str
    status: str
    status_reason: str | None
    runtime: str
    template: str | None
    engine: str
    created_at: str
    last_activity: str


class SandboxList(msgspec.Struct, kw_only=True):
    sandboxes: list[SandboxSummary]
    total: int
    limit: int
    offset: int


class FileBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    path: str
    type: str
    created_at: str
    modified_at: str
    size: int | None = None  # files only


class SandboxDetail(SandboxSummary, kw_only=True):
    resources: ResourcesInUse
    network: Network
    environment: dict[str, str]
    files: list[FileBody]
    file_count: int
    files_truncated: bool


class SandboxDeleted(msgspec.Struct, kw_only=True):
    sandbox_id: str
    status: str
    message: str


class FileList(msgspec.Struct, kw_only=True):
    path: str
    files: list[FileBody]
    truncated: bool


class UploadedBody(msgspec.Struct, kw_only=True):
    name: str
    path: str
    size: int
    uploaded_at: str


class UploadResult(msgspec.Struct, kw_only=True):
    files: list[UploadedBody]


class FileDeleted(msgspec.Struct, kw_only=True):
    path: str
    type: str
    message: str


class SnapshotCreated(msgspec.Struct, kw_only=True):
    snapshot_id: str
    sandbox_id: str
    name: str
    status: str
    type: str
    compressed: bool
    created_at: str
    estimated_completion: str
    memory_included: bool
    warnings: list[str]


class SnapshotBody(msgspec.Struct, kw_only=True):
    snapshot_id: str
    sandbox_id: str
    name: str
    description: str
    status: str
    status_reason: str | None
    type: str
    compressed: bool
    size: str | None  # "256M": the archive on disk
    size_bytes: int | None
    content_bytes: int | None  # the files in it, uncompressed
    file_count: int | None
    created_at: str
    completed_at: str | None
    tags: dict[str, str]
    memory_included: bool = False


class SnapshotList(msgspec.Struct, kw_only=True):
    snapshots: list[SnapshotBody]


class SnapshotDeleted(msgspec.Struct, kw_only=True):
    snapshot_id: str
    status: str
    message: str


def resources_body(record: SandboxRecord) -> Resources:
    r = record.resources
    return Resources(
        memory_limit=format_size(r.memory_limit),
        cpu_limit=r.cpu_limit,
        disk_limit=format_size(r.disk_limit),
        memory_limit_bytes=r.memory_limit,
        disk_limit_bytes=r.disk_limit,
    )


def created_body(record: SandboxRecord) -> SandboxCreated:
    return SandboxCreated(
        sandbox_id=record.sandbox_id,
        name=record.name,
        status=record.status,
        created_at=iso_z(record.created_at),
        runtime=record.runtime,
        template=record.template,
        engine=record.engine,
        resources=resources_body(record),
        network=network_body(record),
        environment=record.environment,
    )


def summary_body(record: SandboxRecord) -> SandboxSummary:
    return SandboxSummary(
        sandbox_id=record.sandbox_id,
        name=record.name,
        status=record.status,
        status_reason=record.status_reason,
        runtime=record.runtime,
        template=record.template,
        engine=record.engine,
        created_at=iso_z(record.created_at),
        last_activity=iso_z(record.last_activity),
    )


class FileFacts(Protocol):
    """A file as the file and sandbox services list it (runtime's FileEntry, which this
    layer does not import)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def modified_at(self) -> datetime: ...


def file_body(entry: FileFacts) -> FileBody:
    return FileBody(
        name=entry.name,
        path=entry.path,
        type=entry.type,
        created_at=iso_z(entry.created_at),
        modified_at=iso_z(entry.modified_at),
        size=entry.size if entry.type == "file" else None,
    )


def detail_body(details: SandboxDetails) -> SandboxDetail:
    record, usage = details.sandbox, details.usage
    resources = ResourcesInUse(
        **msgspec.structs.asdict(resources_body(record)),
        memory_used=None if usage.memory_used is None else format_size(usage.memory_used),
        memory_used_bytes=usage.memory_used,
        cpu_used=usage.cpu_used,
        disk_used=format_size(usage.disk_used),
        disk_used_bytes=usage.disk_used,
    )
    summary = msgspec.structs.asdict(summary_body(record))
    return SandboxDetail(
        **summary,
        resources=resources,
        network=network_body(record),
        environment=record.environment,
        files=[file_body(f) for f in details.files],
        file_count=usage.file_count,
        files_truncated=details.files_truncated,
    )


def snapshot_body(s: SnapshotRecord) -> SnapshotBody:
    return SnapshotBody(
        snapshot_id=s.snapshot_id,
        sandbox_id=s.sandbox_id,
        name=s.name,
        description=s.description,
        status=s.status,
        status_reason=s.status_reason,
        type=s.type,
        compressed=s.compressed,
        size=None if s.size_bytes is None else format_size(s.size_bytes),
        size_bytes=s.size_bytes,
        content_bytes=s.content_bytes,
        file_count=s.file_count,
        created_at=iso_z(s.created_at),
        completed_at=iso_z(s.completed_at),
        tags=s.tags,
    )
