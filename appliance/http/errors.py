"""Every error in the documented shape of the surface its path belongs to.

The platform API (and every path no other document claims):

    {"error": "Validation error", "detail": "Code field is required", "status_code": 400}

The sandbox API (`/api/execute`, `/api/sandboxes`, `/api/files`, ..., `/auth/api-keys`):

    {"error": {"code": "VALIDATION_ERROR", "message": "...", "details": {...},
               "request_id": "req_..."}}

The request id is also sent as the `X-Request-ID` header and written to the log with
every 5xx, so a user's report can be matched to the log line.
"""

from __future__ import annotations

import logging
import re
import secrets
from http import HTTPStatus

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from appliance.core.errors import AppError, RateLimited

log = logging.getLogger(__name__)

_TITLES = {
    400: "Validation error",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    429: "Rate limit exceeded",
    503: "Service unavailable",
}


# Paths of the sandbox API document (sandbox-api.md), which has its own error shape.
SANDBOX_SURFACE_PREFIXES = (
    "/api/execute",
    "/api/sandboxes",
    "/api/files",
    "/api/snapshots",
    "/api/templates",
    "/api/metrics",
    "/api/health",
    "/api/alerts",
    "/auth/",
    "/ws/execute",
    "/ws/monitor",
)

_SANDBOX_CODES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_REQUIRED",
    403: "INSUFFICIENT_PERMISSIONS",
    404: "RESOURCE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "RESOURCE_CONFLICT",
    413: "RESOURCE_LIMIT_EXCEEDED",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


def is_sandbox_surface(path: str) -> bool:
    return path.startswith(SANDBOX_SURFACE_PREFIXES)


def new_request_id() -> str:
    return f"req_{secrets.token_hex(8)}"


def sandbox_error_body(
    status_code: int, message: str, details: dict | None = None, request_id: str | None = None, code: str | None = None
) -> dict:
    """The sandbox surface's error object (also sent as a WebSocket `error` message)."""
    return {
        "error": {
            "code": code
            or _SANDBOX_CODES.get(status_code, "SYSTEM_ERROR" if status_code >= 500 else "VALIDATION_ERROR"),
            "message": message,
            "details": details or {},
            "request_id": request_id or new_request_id(),
        }
    }


def error_response(
    status_code: int,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    path: str = "",
    details: dict | None = None,
    request_id: str | None = None,
) -> Response:
    if is_sandbox_surface(path):
        request_id = request_id or new_request_id()
        return Response(
            sandbox_error_body(status_code, detail, details, request_id),
            status_code=status_code,
            media_type=MediaType.JSON,
            headers={**(headers or {}), "X-Request-ID": request_id},
        )
    title = title or _TITLES.get(status_code) or HTTPStatus(status_code).phrase
    return Response(
        {"error": title, "detail": detail, "status_code": status_code},
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _validation_problems(exc: ValidationException) -> list[tuple[str | None, str]]:
    problems = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            message = str(item.get("message", "")).replace("`", "'")
            problems.append((item.get("key"), message))
    return problems


def _validation_detail(exc: ValidationException) -> str:
    """Litestar's decoding errors, said the way a user can act on them."""
    problems = _validation_problems(exc)
    if not problems:  # msgspec could not parse the body at all
        return f"request body is not valid JSON: {exc.detail}"
    return "; ".join(f"{key}: {message}" if key else message for key, message in problems if message)


def _validation_details(exc: ValidationException) -> dict:
    problems = _validation_problems(exc)
    if not problems:
        return {"reason": "request body is not valid JSON"}
    key, message = problems[0]
    field = key if key not in (None, "data") else _field_in(message)
    return {"field": field, "reason": message} if field else {"reason": message}


_FIELD_IN_MESSAGE = (
    re.compile(r"at '\$\.([^']+)'"),  # "Expected 'int', got 'str' - at '$.timeout'"
    re.compile(r"(?:required|unknown) field '([^']+)'"),  # "Object missing required field 'code'"
)


def _field_in(message: str) -> str | None:
    """The body field a msgspec decoding message is about (Litestar reports the whole
    body as key 'data')."""
    for pattern in _FIELD_IN_MESSAGE:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def handle_app_error(request: Request, exc: AppError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(exc.status_code, exc.detail, exc.title, headers, path=request.url.path, details=exc.details)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    path = request.url.path
    if isinstance(exc, RequestEntityTooLarge):
        if is_sandbox_surface(path):
            return error_response(
                413,
                "request body is larger than this appliance accepts (setting max_body_bytes); send a smaller body",
                path=path,
                details={"reason": "body too large"},
            )
        # The platform API documents 400 for any invalid request body, too large included.
        return error_response(
            400,
            "request body is larger than this appliance accepts "
            "(setting max_body_bytes); send less code or split the batch",
        )
    if isinstance(exc, ValidationException):
        return error_response(400, _validation_detail(exc), path=path, details=_validation_details(exc))
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, path, exc.detail)
    detail = str(exc.detail)
    if status == 404:
        detail = f"no such endpoint: {request.method} {path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {path}"
    return error_response(status, detail, headers=getattr(exc, "headers", None), path=path)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    request_id = new_request_id()
    log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
    return error_response(
        500,
        f"the appliance hit an internal error; it has been logged as {request_id}",
        path=request.url.path,
        request_id=request_id,
    )


EXCEPTION_HANDLERS = {
    AppError: handle_app_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
