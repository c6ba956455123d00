"""`/auth/api-keys`: create (the secret is in this one response only), list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol

import msgspec
from litestar import Controller, delete, get, post

from appliance.core.identity import Identity
from appliance.http.error_docs import errors, example
from appliance.services.access.auth import AuthService


class ApiKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    permissions: list[str] = msgspec.field(default_factory=lambda: ["execute", "sandbox_read", "sandbox_write"])
    expires_at: datetime | None = None
    # Whose evaluations and sandboxes the key sees; by default the key's name.
    owner: str | None = None


class ApiKeyBody(msgspec.Struct, kw_only=True):
    key_id: str
    name: str
    owner: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyBody, kw_only=True):
    api_key: str  # shown once; only its argon2 hash is stored


class ApiKeyList(msgspec.Struct, kw_only=True):
    api_keys: list[ApiKeyBody]


class ApiKeyRevoked(msgspec.Struct, kw_only=True):
    key_id: str
    status: str
    message: str


class KeyRecord(Protocol):
    """What the auth service returns of a key (the store's record, which this layer does
    not import); its secret's hash is never read here."""

    @property
    def key_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def permissions(self) -> list[str]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def last_used_at(self) -> datetime | None: ...


def key_body(record: KeyRecord) -> ApiKeyBody:
    return ApiKeyBody(
        key_id=record.key_id,
        name=record.name,
        owner=record.owner,
        permissions=record.permissions,
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


class ApiKeyController(Controller):
    path = "/auth/api-keys"
    tags = ["auth"]

    @post("/", status_code=201, summary="Create an API key (admin); the key is shown once", opt=errors(403))
    async def create(
        self,
        auth: AuthService,
        identity: Identity,
        data: Annotated[
            ApiKeyCreate, example("A CI job's key", {"name": "ci-bot", "permissions": ["execute", "read"]})
        ],
    ) -> ApiKeyCreated:
        created = await auth.create_key(
            identity, data.name, data.permissions, owner=data.owner, expires_at=data.expires_at
        )
        return ApiKeyCreated(**msgspec.structs.asdict(key_body(created.record)), api_key=created.secret)

    @get("/", summary="List API keys (admin); secrets are never shown again", opt=errors(403))
    async def list_keys(self, auth: AuthService, identity: Identity) -> ApiKeyList:
        records = await auth.list_keys(identity)
        return ApiKeyList(api_keys=[key_body(r) for r in records])

    @delete("/{key_id:str}", status_code=200, summary="Revoke an API key (admin)", opt=errors(403, 404))
    async def revoke(self, auth: AuthService, identity: Identity, key_id: str) -> ApiKeyRevoked:
        await auth.revoke_key(identity, key_id)
        return ApiKeyRevoked(key_id=key_id, status="revoked", message="API key revoked; it is refused from now on")


class ApiKeyUnderApiController(ApiKeyController):
    """The same routes under the document's base URL (`http://host/api`): a script that
    reads `POST /auth/api-keys` as relative to it calls `/api/auth/api-keys`."""

    path = "/api/auth/api-keys"
    include_in_schema = False  # one documented path; this one is the same operations
