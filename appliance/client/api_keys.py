"""API key management (admin keys only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appliance.client.transport import Transport


class ApiKeysApi(Transport):
    def create_api_key(
        self,
        name: str,
        permissions: list[str] | None = None,
        *,
        expires_at: datetime | str | None = None,
        owner: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"name": name}
        if permissions is not None:
            body["permissions"] = permissions
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
        if owner is not None:
            body["owner"] = owner
        return self.call("POST", "/auth/api-keys", json=body)

    def list_api_keys(self) -> list:
        return self.call("GET", "/auth/api-keys")["api_keys"]

    def revoke_api_key(self, key_id: str) -> Any:
        return self.call("DELETE", f"/auth/api-keys/{key_id}")
