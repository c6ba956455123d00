"""`/api/sandboxes`: create, list, inspect, update and delete persistent sandboxes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from litestar import Controller, Response, delete, get, post, put
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.core.paging import MAX_OFFSET
from appliance.http.error_docs import errors, example
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
from appliance.services.sandboxes.sandboxes import MAX_PAGE, SandboxService


class SandboxController(Controller):
    path = "/api/sandboxes"
    tags = ["sandboxes"]

    @post(
        "/",
        status_code=201,
        summary='Create a sandbox; it answers "creating" and comes up in the background',
        opt=errors(403, 409, 503),
    )
    async def create(
        self,
        sandboxes: SandboxService,
        identity: Identity,
        data: Annotated[SandboxCreate, example("Python", {"name": "scratch", "runtime": "python"})],
    ) -> Response[SandboxCreated]:
        record = await sandboxes.create(identity, data)
        return Response(
            created_body(record), status_code=201, headers={"Location": f"/api/sandboxes/{record.sandbox_id}"}
        )

    @get("/", summary="List sandboxes (X-Pagination-* headers)", opt=errors(403))
    async def list_sandboxes(
        self,
        sandboxes: SandboxService,
        identity: Identity,
        status: str | None = None,
        runtime: str | None = None,
        # The service checks the bounds (its messages); the schema says them.
        limit: int = Parameter(default=50, schema_extra={"minimum": 1, "maximum": MAX_PAGE}),
        offset: int = Parameter(default=0, schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
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

    @get(
        "/{sandbox_id:str}",
        summary="A sandbox with its live memory, CPU and disk use and its files",
        opt=errors(403, 404),
    )
    async def get_sandbox(self, sandboxes: SandboxService, identity: Identity, sandbox_id: str) -> SandboxDetail:
        return detail_body(await sandboxes.details(identity, sandbox_id))

    @put("/{sandbox_id:str}", summary="Change a sandbox's resources or environment", opt=errors(403, 404, 409))
    async def update(
        self,
        sandboxes: SandboxService,
        identity: Identity,
        sandbox_id: str,
        data: Annotated[SandboxUpdate, example("New environment", {"environment": {"DEBUG": "1"}})],
    ) -> SandboxDetail:
        return detail_body(await sandboxes.update(identity, sandbox_id, data))

    @delete(
        "/{sandbox_id:str}",
        status_code=200,
        summary="Delete a sandbox, its files and its snapshots",
        opt=errors(403, 404, 409),
    )
    async def delete_sandbox(
        self, sandboxes: SandboxService, identity: Identity, sandbox_id: str, force: bool = False
    ) -> SandboxDeleted:
        await sandboxes.delete(identity, sandbox_id, force=force)
        return SandboxDeleted(sandbox_id=sandbox_id, status="deleted", message="Sandbox deleted successfully")
