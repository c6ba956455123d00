"""Persistent sandboxes and their snapshots: the records, and the checks on their input.

A persistent sandbox (sandbox-api.md "Sandbox Management API") is a long-running,
locked-down container with a files directory that outlives it; a snapshot is an archive
of those files plus the sandbox's environment and resources.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

# Statuses of a sandbox, as the document lists them.
CREATING = "creating"
RUNNING = "running"
STOPPED = "stopped"
ERROR = "error"
SANDBOX_STATUSES = (CREATING, RUNNING, STOPPED, ERROR)

# Statuses of a snapshot the services act on; the store marks a failed one "failed".
SNAPSHOT_CREATING = "creating"
SNAPSHOT_COMPLETED = "completed"

# Where the files directory appears inside the container, and how paths are shown.
SANDBOX_ROOT = "/sandbox"

MAX_NAME_CHARS = 100
MAX_TAGS = 32


class SandboxResources(msgspec.Struct, frozen=True, kw_only=True):
    memory_limit: int  # bytes
    cpu_limit: float  # cores
    disk_limit: int  # bytes the files directory may hold


class SandboxRecord(msgspec.Struct, kw_only=True):
    sandbox_id: str
    owner: str
    name: str
    runtime: str  # a language name (core/languages.py)
    template: str | None
    engine: str  # "docker" or "gvisor"
    image: str
    status: str
    resources: SandboxResources
    network_enabled: bool = False
    # Canonical entries (core/allowed_hosts.py), kept whether or not the network is on;
    # with it on, the sandbox reaches only these, through its egress proxy.
    allowed_hosts: list[str] = []
    # Set by the caller (POST, PUT, a restore); the template's variables lie beneath.
    environment: dict[str, str] = {}
    template_environment: dict[str, str] = {}
    status_reason: str | None = None
    container_id: str | None = None
    created_at: datetime
    last_activity: datetime

    @property
    def full_environment(self) -> dict[str, str]:
        return {**self.template_environment, **self.environment}

    @property
    def filters_egress(self) -> bool:
        """Whether its traffic leaves only through an allow-listing proxy."""
        return self.network_enabled and bool(self.allowed_hosts)


class SnapshotRecord(msgspec.Struct, kw_only=True):
    snapshot_id: str
    sandbox_id: str
    owner: str
    name: str
    description: str = ""
    type: str = "full"
    compressed: bool = True
    status: str = SNAPSHOT_CREATING
    status_reason: str | None = None
    tags: dict[str, str] = {}
    # What the sandbox was when the snapshot was taken (restored with the files).
    environment: dict[str, str] = {}
    resources: SandboxResources
    runtime: str
    network_enabled: bool = False
    allowed_hosts: list[str] = []
    size_bytes: int | None = None  # the archive on disk
    content_bytes: int | None = None  # the files in it, uncompressed
    file_count: int | None = None
    created_at: datetime
    completed_at: datetime | None = None


def name_problem(name: str, what: str = "name") -> str | None:
    if not name.strip():
        return f"{what} is empty: give it a short name that says what it is for"
    if len(name) > MAX_NAME_CHARS:
        return f"{what} is longer than {MAX_NAME_CHARS} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return f"{what} contains a control character"
    return None


def tags_problem(tags: dict[str, str]) -> str | None:
    if len(tags) > MAX_TAGS:
        return f"at most {MAX_TAGS} tags are allowed"
    for key, value in tags.items():
        if not key or len(key) > MAX_NAME_CHARS or len(value) > 1000:
            return f"tag {key[:60]!r}: keys are 1 to {MAX_NAME_CHARS} characters, values up to 1000"
    return None
