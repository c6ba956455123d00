"""API keys and JWT bearer tokens.

A key looks like `ak_<12 hex>_<secret>`: the middle part is the key id, so a lookup is
one row, and only an argon2 hash of the whole key is stored. Verifying argon2 on every
request would cost tens of milliseconds, so a successful verification is remembered in
memory as a SHA-256 digest of the key; the stored record (revoked? expired?) is still
read on every request, so revocation takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import jwt

from appliance.core.clock import utc_now
from appliance.core.errors import Forbidden, NotFound, Unauthorized, ValidationError
from appliance.core.identity import ADMIN, DEFAULT_PERMISSIONS, LOCAL_OPERATOR, PERMISSIONS, Identity
from appliance.store.api_keys import ApiKeyRecord, ApiKeyStore

_KEY_PATTERN = re.compile(r"^ak_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")
_HASHER = argon2.PasswordHasher()
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "appliance"


def require_key(identity: Identity) -> None:
    """401 for a caller without a key; any key will do."""
    if identity.is_anonymous:
        raise Unauthorized("Authentication required: send an X-API-Key header or a Bearer token")


def require_permission(identity: Identity, permission: str) -> None:
    """401 for a caller without a key, 403 for a key without `permission` (admin has all).

    Every service method that acts for a caller starts with this (or `require_key`), so
    the HTTP surfaces, the WebSockets and the CLI are held to the same rule."""
    require_key(identity)
    if not identity.can(permission):
        raise Forbidden(
            f"this API key lacks the {permission!r} permission", details={"required_permission": permission}
        )


class CreatedKey:
    def __init__(self, record: ApiKeyRecord, secret: str) -> None:
        self.record = record
        self.secret = secret  # the only time the full key exists outside the caller


def write_private_file(path: Path, text: str) -> None:
    """Create or replace `path` readable by its owner only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def load_or_create_secret(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes().strip()
    value = secrets.token_hex(32)
    write_private_file(path, value + "\n")
    return value.encode()


class AuthService:
    def __init__(self, keys: ApiKeyStore, jwt_secret_path: Path, jwt_ttl_seconds: int) -> None:
        self._keys = keys
        self._jwt_secret_path = jwt_secret_path
        self._jwt_secret = b""  # read (or made) by start()
        self._jwt_ttl = jwt_ttl_seconds
        self._verified: dict[bytes, str] = {}  # sha256(key) -> key_id
        self._revoke_listeners: list[Callable[[str], Awaitable[object]]] = []

    def start(self) -> None:
        """Read the token-signing secret, making it on the first start."""
        self._jwt_secret = load_or_create_secret(self._jwt_secret_path)

    def derived_key(self, purpose: str) -> bytes:
        """A key for `purpose` (signing list cursors, CSRF tokens) from the installation's
        secret: stable across restarts, different per purpose."""
        if not self._jwt_secret:
            raise RuntimeError("AuthService.start() has not read the secret yet")
        return hmac.new(self._jwt_secret, purpose.encode(), hashlib.sha256).digest()

    def on_revoke(self, listener: Callable[[str], Awaitable[object]]) -> None:
        """Call `listener(key_id)` when a key is revoked (its sessions end with it)."""
        self._revoke_listeners.append(listener)

    async def ensure_admin_key(self, path: Path) -> bool:
        """On the very first start (no key at all), create an admin key and write it to
        `path` (0600): the operator's way in. True when it was made now."""
        if await self.has_keys():
            return False
        created = await self.create_key(LOCAL_OPERATOR, "admin", [ADMIN], owner="admin")
        write_private_file(path, created.secret + "\n")
        return True

    # --- keys -------------------------------------------------------------------------

    async def create_key(
        self,
        identity: Identity,
        name: str,
        permissions: list[str] | None = None,
        *,
        owner: str | None = None,
        expires_at: datetime | None = None,
    ) -> CreatedKey:
        require_permission(identity, ADMIN)
        name = (name or "").strip()
        if not name:
            raise ValidationError("name is required: give the key a name that says who uses it")
        perms = list(dict.fromkeys(permissions or DEFAULT_PERMISSIONS))
        unknown = [p for p in perms if p not in PERMISSIONS]
        if unknown:
            raise ValidationError(
                f"unknown permission(s) {', '.join(unknown)}; choose from {', '.join(sorted(PERMISSIONS))}"
            )
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)  # the API speaks UTC
        if expires_at is not None and expires_at <= utc_now():
            raise ValidationError("expires_at is in the past: give a future UTC time", details={"field": "expires_at"})
        hex_id = secrets.token_hex(6)
        secret = f"ak_{hex_id}_{secrets.token_urlsafe(24)}"
        record = ApiKeyRecord(
            key_id=f"key_{hex_id}",
            name=name,
            owner=(owner or name).strip(),
            permissions=perms,
            secret_hash=_HASHER.hash(secret),
            created_at=utc_now(),
            expires_at=expires_at,
        )
        await self._keys.insert(record)
        return CreatedKey(record, secret)

    async def list_keys(self, identity: Identity) -> list[ApiKeyRecord]:
        require_permission(identity, ADMIN)
        return await self._keys.list()

    async def revoke_key(self, identity: Identity, key_id: str) -> None:
        require_permission(identity, ADMIN)
        if await self._keys.get(key_id) is None:
            raise NotFound(f"no API key {key_id}")
        await self._keys.revoke(key_id, utc_now())
        self._verified = {d: k for d, k in self._verified.items() if k != key_id}
        for listener in self._revoke_listeners:
            await listener(key_id)

    async def has_keys(self) -> bool:
        return await self._keys.count() > 0

    # --- authentication ---------------------------------------------------------------

    async def authenticate_key(self, presented: str) -> Identity:
        match = _KEY_PATTERN.match(presented.strip())
        if match is None:
            raise Unauthorized("invalid API key: expected the ak_... key printed when it was created")
        key_id = f"key_{match.group(1)}"
        record = await self._keys.get(key_id)
        if record is None:
            raise Unauthorized("invalid API key")
        digest = hashlib.sha256(presented.encode()).digest()
        if self._verified.get(digest) != key_id:
            try:
                _HASHER.verify(record.secret_hash, presented.strip())
            except argon2.exceptions.VerificationError:
                raise Unauthorized("invalid API key") from None
            self._verified[digest] = key_id
        return self._identity(record)

    async def authenticate_token(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the bearer token has expired: request a new one") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid bearer token") from None
        record = await self._keys.get(claims["sub"])
        if record is None:
            raise Unauthorized("invalid bearer token: its API key no longer exists")
        return self._identity(record)

    async def identity_of_key(self, key_id: str) -> Identity:
        """Who the key `key_id` is now (for a session opened with it): refused once the
        key is revoked or expired."""
        record = await self._keys.get(key_id)
        if record is None:
            raise Unauthorized("the API key of this session no longer exists")
        return self._identity(record)

    def _identity(self, record: ApiKeyRecord) -> Identity:
        now = utc_now()
        if record.revoked_at is not None:
            raise Unauthorized("this API key has been revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized("this API key has expired")
        return Identity(
            key_id=record.key_id,
            name=record.name,
            owner=record.owner,
            permissions=frozenset(record.permissions),
        )

    def issue_token(self, identity: Identity) -> tuple[str, int]:
        if identity.is_anonymous:
            raise Forbidden("only an authenticated API key can obtain a token")
        now = utc_now()
        claims = {
            "sub": identity.key_id,
            "iss": JWT_ISSUER,
            "iat": now,
            "exp": now + timedelta(seconds=self._jwt_ttl),
            "owner": identity.owner,
        }
        return jwt.encode(claims, self._jwt_secret, algorithm=JWT_ALGORITHM), self._jwt_ttl
