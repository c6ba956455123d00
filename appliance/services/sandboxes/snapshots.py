"""Snapshots of persistent sandboxes: take, list, restore, delete.

A snapshot is the sandbox's files as a tar archive (gzip when `compress`), written in
the background to DATA_DIR/snapshots/<id>/ while the container is paused (so the files
are consistent), plus the sandbox's environment and resources kept in its row.
Process memory is never included: checkpointing memory (CRIU) is not supported here,
and the answer says so (`memory_included: false` and a warning) rather than refusing a
request written against the reference, which asks for it.

Restoring replaces the target sandbox's files with the archive's (extracted into a
fresh directory, then swapped in) and its environment with the snapshot's, and
recreates its container; the target keeps its own resources. Deleting a sandbox
deletes its snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import Conflict, NotFound, PayloadTooLarge, ValidationError
from appliance.core.identity import SANDBOX_READ, SANDBOX_WRITE, Identity
from appliance.core.ids import new_snapshot_id
from appliance.core.sandboxes import (
    RUNNING,
    SNAPSHOT_COMPLETED,
    SNAPSHOT_CREATING,
    SnapshotRecord,
    name_problem,
    tags_problem,
)
from appliance.core.sizes import format_size
from appliance.runtime import confined_files, persistent_sandbox, snapshot_archive
from appliance.services.access.auth import require_permission
from appliance.services.sandboxes.requests import NetworkChoice, NetworkInput, check_network
from appliance.services.sandboxes.sandboxes import SandboxService
from appliance.store.snapshots import SnapshotStore

log = logging.getLogger(__name__)

SNAPSHOT_TYPES = ("full",)
MAX_DESCRIPTION_CHARS = 2000
# For `estimated_completion`: archive speed assumed, and the least time given.
ESTIMATE_BYTES_PER_SECOND = 50 * 1024 * 1024
ESTIMATE_MIN_SECONDS = 1.0
MEMORY_NOT_INCLUDED = (
    "include_memory: process memory is not captured; memory checkpointing is not supported "
    "by this appliance. The snapshot holds the files, environment and resources."
)
MEMORY_NOT_RESTORED = (
    "include_memory: no snapshot here holds process memory, so none was restored; the "
    "sandbox's container was started afresh."
)


class SnapshotCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    description: str = ""
    type: str = "full"
    compress: bool = True
    include_memory: bool = False
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class RestoreOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    include_files: bool = True
    include_memory: bool = False
    # true: the target keeps its own network setting instead of the snapshot's.
    preserve_network: bool = False


class SnapshotRestore(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target_sandbox_id: str | None = None  # the snapshot's own sandbox when absent
    restore_options: RestoreOptions = msgspec.field(default_factory=RestoreOptions)


class SnapshotStarted(msgspec.Struct, kw_only=True):
    snapshot: SnapshotRecord
    estimated_completion: datetime
    warnings: list[str]


class RestoreOutcome(msgspec.Struct, kw_only=True):
    snapshot_id: str
    target_sandbox_id: str
    status: str  # the target sandbox's status afterwards
    files_restored: bool
    file_count: int
    environment_restored: bool
    network_enabled: bool
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    memory_restored: bool = False
    warnings: list[str] = msgspec.field(default_factory=list)


class SnapshotService:
    def __init__(self, store: SnapshotStore, sandboxes: SandboxService) -> None:
        self._store = store
        self._sandboxes = sandboxes
        sandboxes.on_delete.append(self._delete_all_of)

    # --- take -------------------------------------------------------------------------

    async def create(self, identity: Identity, sandbox_id: str, request: SnapshotCreate) -> SnapshotStarted:
        require_permission(identity, SANDBOX_WRITE)
        sandbox = await self._sandboxes.owned(identity, sandbox_id)
        now = utc_now()
        name = request.name if request.name is not None else f"{sandbox.name}-{now:%Y%m%d-%H%M%S}"
        problem = name_problem(name)
        if problem is None and len(request.description) > MAX_DESCRIPTION_CHARS:
            problem = f"description is longer than {MAX_DESCRIPTION_CHARS} characters"
        if problem is None and request.type not in SNAPSHOT_TYPES:
            problem = (
                f'type: {request.type[:40]!r} is not supported; snapshots here are "full" '
                "(every file, the environment and the resources)"
            )
        problem = problem or tags_problem(request.tags)
        if problem:
            raise ValidationError(problem, details={"reason": problem})
        files_dir = self._sandboxes.paths.files_dir(sandbox_id)
        used, _ = await asyncio.to_thread(confined_files.usage, files_dir)
        record = SnapshotRecord(
            snapshot_id=new_snapshot_id(),
            sandbox_id=sandbox_id,
            owner=sandbox.owner,
            name=name.strip(),
            description=request.description,
            type=request.type,
            compressed=request.compress,
            tags=request.tags,
            environment=sandbox.environment,
            resources=sandbox.resources,
            runtime=sandbox.runtime,
            network_enabled=sandbox.network_enabled,
            allowed_hosts=sandbox.allowed_hosts,
            created_at=now,
        )
        await self._store.insert(record)
        self._sandboxes.spawn(self._take(record))
        estimate = max(ESTIMATE_MIN_SECONDS, used / ESTIMATE_BYTES_PER_SECOND)
        return SnapshotStarted(
            snapshot=record,
            estimated_completion=now + timedelta(seconds=estimate),
            warnings=[MEMORY_NOT_INCLUDED] if request.include_memory else [],
        )

    async def _take(self, snapshot: SnapshotRecord) -> None:
        sandboxes = self._sandboxes
        engine = sandboxes.engine
        folder = sandboxes.paths.snapshot_dir(snapshot.snapshot_id)
        try:
            async with sandboxes.lock(snapshot.sandbox_id):
                sandbox = await sandboxes.store.get(snapshot.sandbox_id)
                if sandbox is None or await self._store.get(snapshot.snapshot_id) is None:
                    raise RuntimeError("the sandbox was deleted before the snapshot was taken")
                await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
                paused = False
                if sandbox.status == RUNNING and sandbox.container_id:
                    paused = await engine.call(persistent_sandbox.pause, engine, sandbox.container_id)
                try:
                    stats = await asyncio.to_thread(
                        snapshot_archive.write_archive,
                        sandboxes.paths.files_dir(snapshot.sandbox_id),
                        snapshot_archive.archive_path(folder, snapshot.compressed),
                        compress=snapshot.compressed,
                    )
                finally:
                    if paused:
                        await engine.call(persistent_sandbox.unpause, engine, sandbox.container_id)
            await self._store.complete(
                snapshot.snapshot_id, stats.size_bytes, stats.content_bytes, stats.file_count, utc_now()
            )
        except Exception as exc:  # the snapshot fails with the reason; nothing else is affected
            log.warning("snapshot %s failed: %s", snapshot.snapshot_id, exc)
            await asyncio.to_thread(confined_files.remove_tree, folder)
            await self._store.fail(snapshot.snapshot_id, str(exc)[:500] or type(exc).__name__, utc_now())

    # --- read -------------------------------------------------------------------------

    async def owned(self, identity: Identity, snapshot_id: str) -> SnapshotRecord:
        record = await self._store.get(snapshot_id)
        if record is None or not identity.may_see(record.owner):
            raise NotFound(
                f"no snapshot {snapshot_id[:80]}: GET /api/sandboxes/{{id}}/snapshots lists a sandbox's snapshots",
                details={"snapshot_id": snapshot_id[:80]},
            )
        return record

    async def list(self, identity: Identity, sandbox_id: str) -> list[SnapshotRecord]:
        require_permission(identity, SANDBOX_READ)
        await self._sandboxes.owned(identity, sandbox_id)
        return await self._store.for_sandbox(sandbox_id)

    # --- restore ----------------------------------------------------------------------

    async def restore(self, identity: Identity, snapshot_id: str, request: SnapshotRestore) -> RestoreOutcome:
        require_permission(identity, SANDBOX_WRITE)
        snapshot = await self.owned(identity, snapshot_id)
        if snapshot.status != SNAPSHOT_COMPLETED:
            raise Conflict(
                f"snapshot {snapshot_id} is {snapshot.status}; only a completed snapshot can be "
                "restored" + (" (wait for it)" if snapshot.status == SNAPSHOT_CREATING else ""),
                details={"status": snapshot.status},
            )
        options = request.restore_options
        target_id = request.target_sandbox_id or snapshot.sandbox_id
        target = await self._sandboxes.owned(identity, target_id)
        if options.include_files and (snapshot.content_bytes or 0) > target.resources.disk_limit:
            raise PayloadTooLarge(
                f"the snapshot's files take {format_size(snapshot.content_bytes or 0)}, more than the target "
                f"sandbox's disk_limit of {format_size(target.resources.disk_limit)}; raise resources.disk_limit "
                "with PUT /api/sandboxes/{id} first",
                details={"limit": "disk_limit", "limit_bytes": target.resources.disk_limit},
            )
        warnings = [MEMORY_NOT_RESTORED] if options.include_memory else []
        network = NetworkChoice(enabled=target.network_enabled, allowed_hosts=target.allowed_hosts)
        wanted = NetworkInput(enabled=snapshot.network_enabled, allowed_hosts=snapshot.allowed_hosts)
        if not options.preserve_network and (wanted.enabled, wanted.allowed_hosts) != (
            network.enabled,
            network.allowed_hosts,
        ):
            try:
                network = check_network(wanted, target.engine, self._sandboxes.policy)
            except ValidationError as exc:
                warnings.append(
                    f"the snapshot's network setting cannot apply to the target: {exc.detail}; the target keeps its own"
                )
        paths = self._sandboxes.paths
        archive = snapshot_archive.archive_path(paths.snapshot_dir(snapshot_id), snapshot.compressed)
        token = secrets.token_hex(4)
        staging = paths.sandbox_dir(target_id) / f"files.restore-{token}"
        count = 0
        async with self._sandboxes.lock(target_id):
            target = await self._sandboxes.owned(identity, target_id)
            try:
                if options.include_files:
                    await asyncio.to_thread(confined_files.make_root, staging)
                    _, count = await asyncio.to_thread(
                        snapshot_archive.extract_archive, archive, staging, limit_bytes=target.resources.disk_limit
                    )
            except BaseException:
                await asyncio.to_thread(confined_files.remove_tree, staging)
                raise
            if target.container_id:  # nothing may write to the old files from here on
                await self._sandboxes.engine.call(self._sandboxes.engine.remove, target.container_id)
            if options.include_files:
                old = paths.sandbox_dir(target_id) / f"files.old-{token}"
                files = paths.files_dir(target_id)
                await asyncio.to_thread(_swap, files, staging, old)
                await asyncio.to_thread(confined_files.remove_tree, old)
            await self._sandboxes.store.update_config(
                target_id, target.resources, snapshot.environment, network.enabled, network.allowed_hosts, utc_now()
            )
            updated = msgspec.structs.replace(
                target,
                environment=snapshot.environment,
                network_enabled=network.enabled,
                allowed_hosts=network.allowed_hosts,
                container_id=None,
            )
            status = await self._sandboxes.replace_container(updated)
        return RestoreOutcome(
            snapshot_id=snapshot_id,
            target_sandbox_id=target_id,
            status=status,
            files_restored=options.include_files,
            file_count=count,
            environment_restored=True,
            network_enabled=network.enabled,
            allowed_hosts=network.allowed_hosts,
            warnings=warnings,
        )

    # --- delete -----------------------------------------------------------------------

    async def delete(self, identity: Identity, snapshot_id: str) -> SnapshotRecord:
        require_permission(identity, SANDBOX_WRITE)
        snapshot = await self.owned(identity, snapshot_id)
        if snapshot.status == SNAPSHOT_CREATING:
            raise Conflict(
                f"snapshot {snapshot_id} is still being written; delete it once it is completed",
                details={"status": snapshot.status},
            )
        await self._remove(snapshot_id)
        return snapshot

    async def _remove(self, snapshot_id: str) -> None:
        await self._store.delete(snapshot_id)
        await asyncio.to_thread(confined_files.remove_tree, self._sandboxes.paths.snapshot_dir(snapshot_id))

    async def _delete_all_of(self, sandbox_id: str) -> None:
        for snapshot in await self._store.for_sandbox(sandbox_id):
            await self._remove(snapshot.snapshot_id)

    async def at_start(self) -> None:
        """Snapshots cut short by a stop are failed (their partial archive removed), and
        archive folders without a row are removed."""
        for snapshot_id in await self._store.ids_with_status(SNAPSHOT_CREATING):
            await asyncio.to_thread(confined_files.remove_tree, self._sandboxes.paths.snapshot_dir(snapshot_id))
            await self._store.fail(
                snapshot_id, "the appliance stopped while the snapshot was being written; take it again", utc_now()
            )
        folder = self._sandboxes.paths.snapshots
        if folder.is_dir():
            known = await self._store.all_ids()
            for entry in folder.iterdir():
                if entry.name.startswith("snap_") and entry.name not in known:
                    await asyncio.to_thread(confined_files.remove_tree, entry)


def _swap(files: Path, staging: Path, old: Path) -> None:
    """The restored files take the place of the current ones (two renames on one disk)."""
    if files.exists():
        files.rename(old)
    staging.rename(files)
