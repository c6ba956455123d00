"""`/api/sandboxes`: create, list, inspect, update and delete persistent sandboxes."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, post, put

from appliance.core.identity import SANDBOX_READ, SANDBOX_WRITE, Identity
from appliance.http.sandbox.sandbox_schemas import (
    SandboxDeleted,
    SandboxDetail,
    SandboxList,
    created_body,
    detail_body,
    summary_body,
)
from appliance.services.access.auth import require_permission
from appliance.services.sandboxes.requests import SandboxCreate, SandboxUpdate


def _service(request: Request):
    return request.app.state.appliance.sandboxes


class SandboxController(Controller):
    path = "/api/sandboxes"
    tags = ["sandboxes"]

    @post("/", status_code=201, summary='Create a sandbox; it answers "creating" and comes up in the background')
    async def create(self, request: Request, identity: Identity, data: SandboxCreate) -> Response:
        require_permission(identity, SANDBOX_WRITE)
        record = await _service(request).create(identity, data)
        return Response(
            created_body(record), status_code=201, headers={"Location": f"/api/sandboxes/{record.sandbox_id}"}
        )

    @get("/", summary="List sandboxes (X-Pagination-* headers)")
    async def list_sandboxes(
        self,
        request: Request,
        identity: Identity,
        status: str | None = None,
        runtime: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Response[SandboxList]:
        require_permission(identity, SANDBOX_READ)
        records, total = await _service(request).list(
            identity, status=status, runtime=runtime, limit=limit, offset=offset
        )
        headers = {
            "X-Pagination-Total": str(total),
            "X-Pagination-Limit": str(limit),
            "X-Pagination-Offset": str(offset),
        }
        if offset + len(records) < total:
            query = {k: v for k, v in (("status", status), ("runtime", runtime)) if v is not None}
            query.update(offset=offset + limit, limit=limit)
            headers["X-Pagination-Next"] = f"/api/sandboxes?{urlencode(query)}"
        body = SandboxList(sandboxes=[summary_body(r) for r in records], total=total, limit=limit, offset=offset)
        return Response(body, headers=headers)

    @get("/{sandbox_id:str}", summary="A sandbox with its live memory, CPU and disk use and its files")
    async def get_sandbox(self, request: Request, identity: Identity, sandbox_id: str) -> SandboxDetail:
        require_permission(identity, SANDBOX_READ)
        return detail_body(await _service(request).details(identity, sandbox_id))

    @put("/{sandbox_id:str}", summary="Change a sandbox's resources or environment")
    async def update(self, request: Request, identity: Identity, sandbox_id: str, data: SandboxUpdate) -> SandboxDetail:
        require_permission(identity, SANDBOX_WRITE)
        return detail_body(await _service(request).update(identity, sandbox_id, data))

    @delete("/{sandbox_id:str}", status_code=200, summary="Delete a sandbox, its files and its snapshots")
    async def delete_sandbox(
        self, request: Request, identity: Identity, sandbox_id: str, force: bool = False
    ) -> SandboxDeleted:
        require_permission(identity, SANDBOX_WRITE)
        await _service(request).delete(identity, sandbox_id, force=force)
        return SandboxDeleted(sandbox_id=sandbox_id, status="deleted", message="Sandbox deleted successfully")
