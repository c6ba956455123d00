"""`/api/v1/session` and `/api/v1/sessions`: the session cookie experiments-api.md names
(`Cookie: _crucible_ui_key=<session_token>`), for browsers.

`POST /api/v1/session` with an API key sets the cookie (HttpOnly, SameSite=Strict,
Path=/, Secure when the request came over https) and returns the CSRF token that unsafe
requests made with the cookie must send in `X-CSRF-Token`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie

from appliance.core.clock import iso_z
from appliance.core.identity import Identity
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.sessions import SESSION_COOKIE, Session
from appliance.http.error_docs import errors
from appliance.http.experiments.envelope import Item, Page, Timestamp
from appliance.http.experiments.listing import ListRequest, list_parameters
from appliance.services.access.sessions import SessionService

SESSION_LIST = ListSpec(
    name="sessions",
    sorts=("created_at", "expires_at"),
    default_sort="-created_at",
    filters=(
        FilterField(param="key_id", field="key_id"),
        FilterField(param="owner", field="owner"),
        FilterField(param="created_after", field="created_at", op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
        FilterField(param="created_before", field="created_at", op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
    ),
)


class SessionBody(msgspec.Struct, kw_only=True):
    id: str
    key_id: str
    owner: str
    created_at: Timestamp
    expires_at: Timestamp


class OpenSessionBody(SessionBody, kw_only=True):
    csrf_token: str  # send it as X-CSRF-Token with POST, PUT, PATCH and DELETE


class WhoAmI(msgspec.Struct, kw_only=True):
    key_id: str | None
    name: str
    owner: str
    permissions: list[str]
    admin: bool
    # The session the request came with (null when it came with a key or token).
    session: OpenSessionBody | None


def session_body(session: Session) -> SessionBody:
    return SessionBody(
        id=session.session_id,
        key_id=session.key_id,
        owner=session.owner,
        created_at=iso_z(session.created_at),
        expires_at=iso_z(session.expires_at),
    )


def open_session_body(session: Session, csrf_token: str) -> OpenSessionBody:
    return OpenSessionBody(**msgspec.structs.asdict(session_body(session)), csrf_token=csrf_token)


def _cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class SessionController(Controller):
    path = "/api/v1/session"
    tags = ["session"]

    @post(
        "/",
        status_code=201,
        summary="Open a browser session (sets the cookie; returns the CSRF token)",
        opt=errors(403),
    )
    async def open_session(
        self, request: Request[Any, Any, Any], sessions: SessionService, identity: Identity
    ) -> Response[Item[OpenSessionBody]]:
        opened = await sessions.open(identity)
        max_age = int((opened.session.expires_at - opened.session.created_at).total_seconds())
        return Response(
            Item(open_session_body(opened.session, opened.csrf_token)),
            status_code=201,
            cookies=[_cookie(request, opened.token, max_age)],
        )

    @get("/", summary="Who the request acts as, and its session if it came with one", opt=errors(403))
    async def who_am_i(self, sessions: SessionService, identity: Identity) -> Item[WhoAmI]:
        session = await sessions.current(identity)
        return Item(
            WhoAmI(
                key_id=identity.key_id,
                name=identity.name,
                owner=identity.owner,
                permissions=sorted(identity.permissions),
                admin=identity.is_admin,
                session=open_session_body(session, sessions.csrf_token(session.session_id)) if session else None,
            )
        )

    @delete(
        "/", status_code=204, summary="End the session the request came with (clears the cookie)", opt=errors(403, 404)
    )
    async def end_session(
        self, request: Request[Any, Any, Any], sessions: SessionService, identity: Identity
    ) -> Response[None]:
        await sessions.end_current(identity)
        return Response(None, status_code=204, cookies=[_cookie(request, "", 0)])


class SessionsController(Controller):
    path = "/api/v1/sessions"
    tags = ["session"]

    @get("/", dependencies={"listing": list_parameters(SESSION_LIST)}, summary="List live sessions", opt=errors(403))
    async def list_sessions(
        self, sessions: SessionService, identity: Identity, listing: ListRequest
    ) -> Page[SessionBody]:
        return listing.page(await sessions.list(identity, listing.query), session_body)

    @delete("/{session_id:str}", status_code=204, summary="End a session", opt=errors(403, 404))
    async def end_session(self, sessions: SessionService, identity: Identity, session_id: str) -> None:
        await sessions.end(identity, session_id)
