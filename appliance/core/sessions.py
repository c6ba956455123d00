"""Browser sessions of the experiments API: a cookie that acts as the API key it was
opened with, until it expires, is ended, or the key is revoked."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec

SESSION_COOKIE = "_crucible_ui_key"  # the name experiments-api.md gives the cookie
CSRF_HEADER = "X-CSRF-Token"
# Methods that change something: a cookie-authenticated request with one of these must
# carry the session's CSRF token in CSRF_HEADER.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_session_id() -> str:
    return f"ses_{secrets.token_hex(8)}"


def new_session_token() -> str:
    """The cookie's value: 256 random bits; only its SHA-256 is stored."""
    return secrets.token_urlsafe(32)


class Session(msgspec.Struct, kw_only=True):
    session_id: str
    key_id: str
    owner: str
    created_at: datetime
    expires_at: datetime
