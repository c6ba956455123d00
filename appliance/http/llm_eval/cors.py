"""CORS for the llm-eval API, as the setting `llm_cors_origins` says (default "*", as
the document has it: "CORS is enabled for all origins by default").

Why "*" is safe here: this surface authenticates with keys in headers only (no cookie
is ever accepted on it), and no `Access-Control-Allow-Credentials` is ever sent, so a
page of another origin can call it only with a key it holds itself; what it gains
without one is `GET /health`. A list of origins narrows it; an empty list turns it off.
Preflights are answered here, before any key is asked for (a browser sends none).
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization, X-API-Key"
EXPOSED_HEADERS = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-ID"
PREFLIGHT_MAX_AGE = "600"


def cors_middleware(origins: list[str]) -> Callable[[ASGIApp], ASGIApp]:
    allow_any = "*" in origins
    allowed = frozenset(origins)

    def allow_origin(origin: str) -> str | None:
        if allow_any:
            return "*"
        return origin if origin in allowed else None

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or not origins:
                await app(scope, receive, send)
                return
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            granted = allow_origin(origin) if origin else None
            if granted and scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
                start: HTTPResponseStartEvent = {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", granted.encode("latin-1")),
                        (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                        (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
                        (b"vary", b"Origin"),
                    ],
                }
                body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
                await send(start)
                await send(body)
                return

            async def send_with_cors(message: Message) -> None:
                if granted and message["type"] == "http.response.start":
                    response_headers = MutableScopeHeaders.from_message(message)
                    response_headers["Access-Control-Allow-Origin"] = granted
                    response_headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                    if granted != "*":
                        response_headers["Vary"] = "Origin"
                await send(message)

            await app(scope, receive, send_with_cors)

        return handle

    return middleware
