"""Browser sessions: `POST /api/v1/session` (with an API key) sets the cookie
`_crucible_ui_key`; requests with that cookie then act as the key.

The cookie is HttpOnly and SameSite=Strict, and on top of that every unsafe request
(POST, PUT, PATCH, DELETE) authenticated by it must carry the session's CSRF token in
`X-CSRF-Token`: a page of another site can neither read the token nor set the header.
The CSRF token is an HMAC of the session id under a key derived from the installation's
secret, so it needs no storage and survives restarts like the session does.

A session ends when it expires (`session_ttl_seconds`), when it is deleted, or when its
API key is revoked or expires: each request re-reads the key.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import msgspec

from appliance.core.clock import utc_now, utc_now_ms
from appliance.core.errors import Forbidden, NotFound, Unauthorized
from appliance.core.identity import Identity
from appliance.core.listing import ListPage, ListQuery
from appliance.core.sessions import CSRF_HEADER, UNSAFE_METHODS, Session, new_session_id, new_session_token
from appliance.services.access.auth import AuthService, require_key
from appliance.store.sessions import SessionStore

CSRF_PURPOSE = "session-csrf"


class OpenedSession(msgspec.Struct, kw_only=True):
    session: Session
    token: str  # the cookie's value: set on the response, never stored
    csrf_token: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    def __init__(self, store: SessionStore, auth: AuthService, ttl_seconds: int) -> None:
        self._store = store
        self._auth = auth
        self._ttl = timedelta(seconds=ttl_seconds)
        auth.on_revoke(store.delete_of_key)

    def csrf_token(self, session_id: str) -> str:
        key = self._auth.derived_key(CSRF_PURPOSE)
        return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()

    async def open(self, identity: Identity) -> OpenedSession:
        require_key(identity)
        if identity.session_id is not None or identity.key_id is None:
            raise Forbidden("a session is opened with an API key (X-API-Key or Authorization: Bearer ak_...)")
        now = utc_now_ms()
        await self._store.delete_expired(now)
        session = Session(
            session_id=new_session_id(),
            key_id=identity.key_id,
            owner=identity.owner,
            created_at=now,
            expires_at=now + self._ttl,
        )
        token = new_session_token()
        await self._store.insert(session, token_hash(token))
        return OpenedSession(session=session, token=token, csrf_token=self.csrf_token(session.session_id))

    async def authenticate(self, token: str, method: str, csrf_token: str | None) -> Identity:
        """Who the cookie `token` acts as; 401 for an unknown or ended session, 403 for
        an unsafe request without the session's CSRF token."""
        session = await self._store.by_token_hash(token_hash(token))
        if session is None:
            raise Unauthorized(
                "the session cookie is not valid (ended or never issued): open one with POST /api/v1/session"
            )
        if session.expires_at <= utc_now():
            await self._store.delete(session.session_id)
            raise Unauthorized("the session has expired: open a new one with POST /api/v1/session")
        identity = await self._auth.identity_of_key(session.key_id)
        if method.upper() in UNSAFE_METHODS:
            if not csrf_token:
                raise Forbidden(
                    f"a request authenticated by the session cookie must send the session's CSRF token in the "
                    f"{CSRF_HEADER} header for {method.upper()} (the token POST /api/v1/session returned)",
                    details={"header": CSRF_HEADER},
                )
            if not hmac.compare_digest(csrf_token.strip(), self.csrf_token(session.session_id)):
                raise Forbidden(
                    f"the {CSRF_HEADER} header does not match this session's CSRF token",
                    details={"header": CSRF_HEADER},
                )
        return msgspec.structs.replace(identity, session_id=session.session_id)

    async def current(self, identity: Identity) -> Session | None:
        """The session the request came with, if any."""
        require_key(identity)
        if identity.session_id is None:
            return None
        return await self._store.get(identity.session_id)

    async def end_current(self, identity: Identity) -> None:
        require_key(identity)
        if identity.session_id is None:
            raise NotFound("this request came without a session cookie: there is no session to end")
        await self._store.delete(identity.session_id)

    async def end(self, identity: Identity, session_id: str) -> None:
        """End a session of one's own keys (an admin: anyone's)."""
        require_key(identity)
        session = await self._store.get(session_id)
        if session is None or not identity.may_see(session.owner) or session.expires_at <= utc_now():
            raise NotFound(f"no session {session_id}")
        await self._store.delete(session_id)

    async def list(self, identity: Identity, query: ListQuery) -> ListPage[Session]:
        require_key(identity)
        return await self._store.list_page(query, None if identity.is_admin else identity.owner, utc_now())
