"""sandbox-api.md's error shape:

    {"error": {"code": "VALIDATION_ERROR", "message": "...", "details": {...},
               "request_id": "req_..."}}

The request id is also sent as the `X-Request-ID` header. The WebSockets of this
document send the same `error` object inside their `error` messages (`sandbox_error`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.http.errors import ErrorFacts, ErrorShape, new_request_id

_CODES = {
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


class SandboxError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str


class SandboxErrorBody(msgspec.Struct, kw_only=True):
    error: SandboxError


def code_for(status_code: int) -> str:
    return _CODES.get(status_code, "SYSTEM_ERROR" if status_code >= 500 else "VALIDATION_ERROR")


def sandbox_error(
    status_code: int, message: str, details: dict[str, Any] | None = None, request_id: str | None = None
) -> SandboxError:
    """The error object, as a response's body and a WebSocket `error` message carry it."""
    return SandboxError(
        code=code_for(status_code), message=message, details=details or {}, request_id=request_id or new_request_id()
    )


class SandboxErrors(ErrorShape[SandboxErrorBody]):
    body = SandboxErrorBody
    body_too_large_status = 413
    request_ids = "always"

    def error_body(self, error: ErrorFacts) -> SandboxErrorBody:
        return SandboxErrorBody(error=sandbox_error(error.status_code, error.detail, error.details, error.request_id))


SANDBOX_ERRORS = SandboxErrors()
