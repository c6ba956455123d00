"""Every error, on every path, in the platform API's documented shape:

    {"error": "Validation error", "detail": "Code field is required", "status_code": 400}
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from appliance.core.errors import AppError, RateLimited

log = logging.getLogger(__name__)

_TITLES = {400: "Validation error", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 429: "Rate limit exceeded", 503: "Service unavailable"}


def error_response(status_code: int, detail: str, title: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    title = title or _TITLES.get(status_code) or HTTPStatus(status_code).phrase
    return Response(
        {"error": title, "detail": detail, "status_code": status_code},
        status_code=status_code, media_type=MediaType.JSON, headers=headers,
    )


def _validation_detail(exc: ValidationException) -> str:
    """Litestar's decoding errors, said the way a user can act on them."""
    problems = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            message = str(item.get("message", "")).replace("`", "'")
            key = item.get("key")
            problems.append(f"{key}: {message}" if key else message)
    if not problems:  # msgspec could not parse the body at all
        return f"request body is not valid JSON: {exc.detail}"
    return "; ".join(p for p in problems if p)


def handle_app_error(request: Request, exc: AppError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(exc.status_code, exc.detail, exc.title, headers)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, RequestEntityTooLarge):
        # The platform API documents 400 for any invalid request body, too large included.
        return error_response(400, "request body is larger than this appliance accepts "
                                   "(setting max_body_bytes); send less code or split the batch")
    if isinstance(exc, ValidationException):
        return error_response(400, _validation_detail(exc))
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
    detail = str(exc.detail)
    if status == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return error_response(status, detail, headers=getattr(exc, "headers", None))


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "the appliance hit an internal error; it has been logged")


EXCEPTION_HANDLERS = {
    AppError: handle_app_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
