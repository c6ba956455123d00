"""Who is calling, and whether they are still within their rate limit.

Used as a Litestar dependency: handlers that take an `identity` parameter are
authenticated and counted. Browsers cannot set headers on WebSockets, so a key or token
is also accepted in the query string there.

Credentials, first found wins: `X-API-Key` (or `?api_key=`), `Authorization: Bearer`
with an API key (`ak_...`) or a JWT (or `?token=`), then, only on routes whose `opt`
says `session_cookie` (the experiments API), the session cookie, which must come with
the session's CSRF token on unsafe methods (services/access/sessions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import WebSocket
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers import BaseRouteHandler
from litestar.types import Message, Scope

from appliance.config import Settings
from appliance.core.errors import AppError, RateLimited, Unauthorized
from appliance.core.identity import Identity, anonymous
from appliance.core.sessions import CSRF_HEADER, SESSION_COOKIE
from appliance.http.app_state import appliance_of
from appliance.http.ws_close import POLICY_VIOLATION
from appliance.services.access.rate_limit import RateDecision

if TYPE_CHECKING:
    from appliance.app import Appliance

RATE_STATE_KEY = "rate_decision"
IDENTITY_STATE_KEY = "identity"
API_KEY_PREFIX = "ak_"
# A route's opt["rate_bucket"] of this value is counted as "read" for GET and HEAD and
# as "write" for every other method (the experiments API's table).
READ_WRITE = "read_write"
READ_METHODS = frozenset({"GET", "HEAD"})
# A route of this bucket is counted by what it carries, not per request: the handler
# calls `charge` with the count (telemetry ingest, counted in events).
TELEMETRY_EVENTS = "telemetry_events"
WS_AUTHENTICATION_REQUIRED = "Authentication required: pass ?api_key=... or ?token=..., or an X-API-Key header"


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """The caller, by the first credential present, in this order: the X-API-Key header,
    the `api_key` query parameter, the Authorization header (`Bearer <token>`), the
    `token` query parameter. The first one present alone decides: a valid key is not
    undone by an Authorization header beside it (a proxy or a generated client may add
    one), and a bad key is refused even with a valid token beside it."""
    appliance = appliance_of(connection.app.state)
    headers = connection.headers
    key = headers.get("x-api-key") or connection.query_params.get("api_key")
    if key:
        return await appliance.auth.authenticate_key(key)
    authorization = headers.get("authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <api_key>' or 'Bearer <token>'")
        return await _authenticate_bearer(appliance, value.strip())
    token = connection.query_params.get("token")
    if token:
        return await _authenticate_bearer(appliance, token)
    cookie = connection.cookies.get(SESSION_COOKIE) if connection.route_handler.opt.get("session_cookie") else None
    if cookie:
        method = str(connection.scope.get("method", "GET"))
        return await appliance.sessions.authenticate(cookie, method, headers.get(CSRF_HEADER))
    return anonymous(connection.client.host if connection.client else "")


async def _authenticate_bearer(appliance: Appliance, value: str) -> Identity:
    """A Bearer value (or a `?token=`): an API key (`ak_...`, as the experiments API and a
    Phoenix socket's `token` param send it) or a JWT."""
    if value.startswith(API_KEY_PREFIX):
        return await appliance.auth.authenticate_key(value)
    return await appliance.auth.authenticate_token(value)


def limit_for(settings: Settings, identity: Identity, bucket: str) -> int:
    if identity.is_anonymous:
        return settings.rate_limit_anonymous
    # A handler names its bucket with `opt={"rate_bucket": ...}`; each bucket is counted
    # on its own, and "default" is the standard per-key limit.
    per_bucket = {
        "batch": settings.rate_limit_batch,
        "execute": settings.rate_limit_execute,
        "upload": settings.rate_limit_upload,
        "read": settings.rate_limit_read,
        "write": settings.rate_limit_write,
        "export": settings.rate_limit_export,
        "llm": settings.rate_limit_llm,
        TELEMETRY_EVENTS: settings.rate_limit_telemetry_events,
    }
    return per_bucket.get(bucket, settings.rate_limit_authenticated)


def rate_decision(connection: ASGIConnection[Any, Any, Any, Any], identity: Identity, bucket: str) -> RateDecision:
    """Count one request of `identity` in `bucket`."""
    appliance = appliance_of(connection.app.state)
    return appliance.rate_limiter.check(identity.rate_key, bucket, limit_for(appliance.settings, identity, bucket))


def refuse_past_limit(decision: RateDecision, what: str = "requests") -> None:
    if not decision.allowed:
        raise RateLimited(
            f"more than {decision.limit} {what} per minute; retry after {decision.retry_after} s",
            decision.retry_after,
        )


def bucket_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    bucket = str(connection.route_handler.opt.get("rate_bucket", "default"))
    if bucket == READ_WRITE:
        return "read" if str(connection.scope.get("method", "GET")).upper() in READ_METHODS else "write"
    return bucket


async def authenticate_once(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """`authenticate`, remembered for the rest of the request (a guard and the
    `identity` dependency both ask)."""
    state = connection.scope.setdefault("state", {})
    known = state.get(IDENTITY_STATE_KEY)
    if isinstance(known, Identity):
        return known
    identity = await authenticate(connection)
    state[IDENTITY_STATE_KEY] = identity
    return identity


async def require_authentication(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of a surface whose every route needs a caller: a 401 comes before anything
    about the request itself (its body, its parameters) is looked at."""
    if (await authenticate_once(connection)).is_anonymous:
        raise Unauthorized(
            "Authentication required: send Authorization: Bearer <api_key>, an X-API-Key header, or the session cookie"
        )


async def provide_identity(request: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    identity = await authenticate_once(request)
    bucket = bucket_of(request)
    if bucket == TELEMETRY_EVENTS:
        return identity  # counted by the handler (`charge`), once it knows how many
    decision = rate_decision(request, identity, bucket)
    request.scope.setdefault("state", {})[RATE_STATE_KEY] = decision  # the 429 carries the headers too
    refuse_past_limit(decision)
    return identity


def charge(connection: ASGIConnection[Any, Any, Any, Any], identity: Identity, bucket: str, amount: int) -> None:
    """Count `amount` units (events) of `identity` in `bucket` at once; past the limit
    none are counted and the request is refused with a 429."""
    appliance = appliance_of(connection.app.state)
    decision = appliance.rate_limiter.check(
        identity.rate_key, bucket, limit_for(appliance.settings, identity, bucket), cost=amount
    )
    connection.scope.setdefault("state", {})[RATE_STATE_KEY] = decision
    refuse_past_limit(decision, "events" if bucket == TELEMETRY_EVENTS else "requests")


async def open_socket(
    socket: WebSocket[Any, Any, Any],
    authorize: Callable[[Identity], None],
    refusal: Callable[[AppError], msgspec.Struct],
) -> Identity | None:
    """Accept a WebSocket and authenticate its caller; `authorize` is the service's
    check of what the socket offers. A refused caller gets `refusal(error)` as the only
    message, then the socket closes with 1008, and None is returned."""
    await socket.accept()
    try:
        identity = await authenticate(socket)
        if identity.is_anonymous:
            # Said here, not by the service: a browser can only pass the key in the URL.
            raise Unauthorized(WS_AUTHENTICATION_REQUIRED)
        authorize(identity)
    except AppError as exc:
        await socket.send_json(refusal(exc))
        await socket.close(code=POLICY_VIOLATION, reason=exc.title)
        return None
    return identity


async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
    """before_send hook: every counted response carries X-RateLimit-* headers."""
    if message["type"] != "http.response.start":
        return
    decision = scope.get("state", {}).get(RATE_STATE_KEY)
    if not isinstance(decision, RateDecision) or decision.limit <= 0:
        return
    headers = MutableScopeHeaders.from_message(message)
    headers["X-RateLimit-Limit"] = str(decision.limit)
    headers["X-RateLimit-Remaining"] = str(decision.remaining)
    headers["X-RateLimit-Reset"] = str(decision.reset)
