"""`/api/sandboxes/{id}/snapshots` and `/api/snapshots/{id}`: take, list, restore and
delete snapshots of a sandbox's files, environment and resources."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post

from appliance.core.clock import iso_z
from appliance.core.identity import Identity
from appliance.http.error_docs import errors, example
from appliance.http.sandbox.sandbox_schemas import SnapshotCreated, SnapshotDeleted, SnapshotList, snapshot_body
from appliance.services.sandboxes.snapshots import RestoreOutcome, SnapshotCreate, SnapshotRestore, SnapshotService


class SandboxSnapshotsController(Controller):
    path = "/api/sandboxes/{sandbox_id:str}/snapshots"
    tags = ["snapshots"]

    @post(
        "/",
        status_code=201,
        summary="Take a snapshot (written in the background: creating, then completed)",
        opt=errors(403, 404, 409),
    )
    async def create(
        self,
        snapshots: SnapshotService,
        identity: Identity,
        sandbox_id: str,
        data: Annotated[SnapshotCreate | None, example("Named", {"name": "before-upgrade"})] = None,
    ) -> SnapshotCreated:
        started = await snapshots.create(identity, sandbox_id, data or SnapshotCreate())
        s = started.snapshot
        return SnapshotCreated(
            snapshot_id=s.snapshot_id,
            sandbox_id=s.sandbox_id,
            name=s.name,
            status=s.status,
            type=s.type,
            compressed=s.compressed,
            created_at=iso_z(s.created_at),
            estimated_completion=iso_z(started.estimated_completion),
            memory_included=False,
            warnings=started.warnings,
        )

    @get("/", summary="A sandbox's snapshots", opt=errors(403, 404))
    async def list_snapshots(self, snapshots: SnapshotService, identity: Identity, sandbox_id: str) -> SnapshotList:
        records = await snapshots.list(identity, sandbox_id)
        return SnapshotList(snapshots=[snapshot_body(r) for r in records])


class SnapshotController(Controller):
    path = "/api/snapshots"
    tags = ["snapshots"]

    @post(
        "/{snapshot_id:str}/restore",
        status_code=200,
        summary="Restore a snapshot's files and environment into a sandbox (replacing its files)",
        opt=errors(403, 404, 409),
    )
    async def restore(
        self, snapshots: SnapshotService, identity: Identity, snapshot_id: str, data: SnapshotRestore | None = None
    ) -> RestoreOutcome:
        return await snapshots.restore(identity, snapshot_id, data or SnapshotRestore())

    @delete("/{snapshot_id:str}", status_code=200, summary="Delete a snapshot", opt=errors(403, 404, 409))
    async def delete_snapshot(
        self, snapshots: SnapshotService, identity: Identity, snapshot_id: str
    ) -> SnapshotDeleted:
        await snapshots.delete(identity, snapshot_id)
        return SnapshotDeleted(snapshot_id=snapshot_id, status="deleted", message="Snapshot deleted successfully")
