"""`/api/sandboxes`: create, list, inspect, update and delete persistent sandboxes."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, Response, delete, get, post, put

from appliance.core.identity import Identity
from appliance.http.sandbox.sandbox_schemas import (
    SandboxCreated,
    SandboxDeleted,
    SandboxDetail,
    SandboxList,
    created_body,
    detail_body,
    summary_body,
)
from appliance.services.sandboxes.requests import SandboxCreate, SandboxUpdate
from appliance.services.sandboxes.sandboxes import SandboxService


class SandboxController(Controller):
    path = "/api/sandboxes"
    tags = ["sandboxes"]

    @post("/", status_code=201, summary='Create a sandbox; it answers "creating" and comes up in the background')
    async def create(
        self, sandboxes: SandboxService, identity: Identity, data: SandboxCreate
    ) -> Response[SandboxCreated]:
        record = await sandboxes.create(identity, data)
        return Response(
            created_body(record), status_code=201, headers={"Location": f"/api/sandboxes/{record.sandbox_id}"}
        )

    @get("/", summary="List sandboxes (X-Pagination-* headers)")
    async def list_sandboxes(
        self,
        sandboxes: SandboxService,
        identity: Identity,
        status: str | None = None,
        runtime: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Response[SandboxList]:
        records, total = await sandboxes.list(identity, status=status, runtime=runtime, limit=limit, offset=offset)
        headers = {
            "X-Pagination-Total": str(total),
            "X-Pagination-Limit": str(limit),
            "X-Pagination-Offset": str(offset),
        }
        if offset + len(records) < total:
            query: dict[str, str | int] = {k: v for k, v in (("status", status), ("runtime", runtime)) if v is not None}
            query.update(offset=offset + limit, limit=limit)
            headers["X-Pagination-Next"] = f"/api/sandboxes?{urlencode(query)}"
        body = SandboxList(sandboxes=[summary_body(r) for r in records], total=total, limit=limit, offset=offset)
        return Response(body, headers=headers)

    @get("/{sandbox_id:str}", summary="A sandbox with its live memory, CPU and disk use and its files")
    async def get_sandbox(self, sandboxes: SandboxService, identity: Identity, sandbox_id: str) -> SandboxDetail:
        return detail_body(await sandboxes.details(identity, sandbox_id))

    @put("/{sandbox_id:str}", summary="Change a sandbox's resources or environment")
    async def update(
        self, sandboxes: SandboxService, identity: Identity, sandbox_id: str, data: SandboxUpdate
    ) -> SandboxDetail:
        return detail_body(await sandboxes.update(identity, sandbox_id, data))

    @delete("/{sandbox_id:str}", status_code=200, summary="Delete a sandbox, its files and its snapshots")
    async def delete_sandbox(
        self, sandboxes: SandboxService, identity: Identity, sandbox_id: str, force: bool = False
    ) -> SandboxDeleted:
        await sandboxes.delete(identity, sandbox_id, force=force)
        return SandboxDeleted(sandbox_id=sandbox_id, status="deleted", message="Sandbox deleted successfully")
