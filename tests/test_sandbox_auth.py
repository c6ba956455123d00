"""`/auth/api-keys` and the sandbox surface's error shape for 401/403, through the
Python client a team script would use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.client import ApiError, ApplianceClient
from tests.support import assert_sandbox_error, eventually, expect_api_error


@pytest.fixture
def admin(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def test_create_key_shows_the_secret_once_with_its_permissions(admin, server):
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = admin.create_api_key("ci-runner", ["execute", "sandbox_read"], expires_at=expires)
    assert created.api_key.startswith("ak_") and created.key_id.startswith("key_")
    assert created.permissions == ["execute", "sandbox_read"]
    assert created.expires_at.endswith("Z")
    assert datetime.fromisoformat(created.expires_at.replace("Z", "+00:00")) == expires

    listed = {k.key_id: k for k in admin.list_api_keys()}
    assert created.key_id in listed
    assert "api_key" not in listed[created.key_id]  # never shown again

    with ApplianceClient(server.url, api_key=created.api_key) as user:
        assert user.health().status in ("healthy", "degraded", "unhealthy")
        # Its permissions do not include admin: creating keys is refused with 403.
        error = expect_api_error(lambda: user.create_api_key("x"), 403, "INSUFFICIENT_PERMISSIONS", "admin")
        assert error.details == {"required_permission": "admin"}


def test_default_permissions_are_the_documented_three(admin):
    created = admin.create_api_key("defaults")
    assert created.permissions == ["execute", "sandbox_read", "sandbox_write"]


def test_expired_key_gets_401(admin, server):
    soon = datetime.now(UTC) + timedelta(seconds=5)
    created = admin.create_api_key("short-lived", ["admin"], expires_at=soon.isoformat())

    def refused_as_expired() -> bool:
        try:
            user.list_api_keys()
        except ApiError as exc:
            assert (exc.status_code, exc.code) == (401, "AUTHENTICATION_REQUIRED") and "expired" in exc.message, exc
            return True
        return False

    with ApplianceClient(server.url, api_key=created.api_key) as user:
        accepted = not refused_as_expired()
        if datetime.now(UTC) < soon:  # answered before the expiry: the server judged it before, too
            assert accepted, "refused before it expired"
        eventually(refused_as_expired, message="the key refused as expired")


def test_revoked_key_gets_401_at_once(admin, server):
    created = admin.create_api_key("to-revoke", ["admin"])
    with ApplianceClient(server.url, api_key=created.api_key) as user:
        assert user.list_api_keys()
        revoked = admin.revoke_api_key(created.key_id)
        assert revoked.status == "revoked"
        expect_api_error(lambda: user.list_api_keys(), 401, "AUTHENTICATION_REQUIRED", "revoked")


def test_anonymous_and_garbage_keys_get_401_in_the_sandbox_shape(server):
    with server.client() as anonymous:
        assert_sandbox_error(
            anonymous.post("/auth/api-keys", json={"name": "x"}), 401, "AUTHENTICATION_REQUIRED", "X-API-Key"
        )
    with server.client("ak_000000000000_notarealkeyatallxxxxxxxx") as wrong:
        assert_sandbox_error(wrong.get("/auth/api-keys"), 401, "AUTHENTICATION_REQUIRED", "invalid API key")


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"permissions": ["execute"]}, "name", ["name"]),
        ({"name": "  "}, None, ["name is required"]),
        ({"name": "x", "permissions": ["root"]}, None, ["unknown permission", "sandbox_write"]),
        ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, None, ["past"]),
        ({"name": "x", "expires_at": "next tuesday"}, "expires_at", ["datetime"]),
        ({"name": "x", "colour": "blue"}, "colour", ["colour"]),
    ],
)
def test_bad_key_requests_are_400_and_store_nothing(server, admin, body, field, words):
    before = len(admin.list_api_keys())
    with server.admin() as http:
        error = assert_sandbox_error(http.post("/auth/api-keys", json=body), 400, "VALIDATION_ERROR", *words)
    if field:
        assert error["details"]["field"] == field, error
    assert len(admin.list_api_keys()) == before


def test_revoking_an_unknown_key_is_404(admin):
    expect_api_error(lambda: admin.revoke_api_key("key_000000000000"), 404, "RESOURCE_NOT_FOUND", "key_000000000000")


def test_unknown_sandbox_surface_path_is_404_in_its_shape(server):
    with server.admin() as http:
        assert_sandbox_error(http.get("/api/alerts/x/nope"), 404, "RESOURCE_NOT_FOUND", "no such endpoint")
        # Path spaces are whole segments: /api/alerts-nope is not the sandbox document's.
        assert "status_code" in http.get("/api/alerts-nope").json()
        assert_sandbox_error(http.delete("/api/health"), 405, "METHOD_NOT_ALLOWED", "DELETE")


def test_keys_are_served_under_the_documents_base_url_too(admin, server):
    """sandbox-api.md's base URL is http://host/api: /api/auth/api-keys is the same resource."""
    import httpx

    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.admin_key}) as http:
        created = http.post("/api/auth/api-keys", json={"name": "via-base-url"})
        assert created.status_code == 201, created.text
        key_id = created.json()["key_id"]
        assert key_id in [k["key_id"] for k in http.get("/auth/api-keys").json()["api_keys"]]
        assert http.delete(f"/api/auth/api-keys/{key_id}").status_code == 200
        missing = http.get("/api/auth/api-keys/nope/more")
        assert missing.status_code in (404, 405) and "request_id" in missing.json()["error"], missing.text
