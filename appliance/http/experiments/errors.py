"""experiments-api.md's error shape:

    {"error": {"code": "validation_error", "message": "Name is required",
               "details": {"name": ["can't be blank"]}}}

Codes by status: the document's `unauthorized` 401, `forbidden` 403, `not_found` 404,
`validation_error` 422, `rate_limited` 429, `internal_error` 500, and for what it does
not list: `method_not_allowed` 405, `conflict` 409, `payload_too_large` 413,
`unavailable` 503. Every validation failure is a 422, whether a service refused a value
(core's ValidationError, a 400 elsewhere) or the request could not be decoded (bad JSON,
a field of the wrong type, an unknown field, a bad query parameter); its `details` map
each field, by its path inside the body's wrapper object (`config.temperature`, not
`model.config.temperature`) or by its query parameter's name, to what is wrong with it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ExceptionHandlersMap

from appliance.http.errors import ErrorFacts, ErrorShape, exception_handlers

VALIDATION_STATUS = 422
_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
# The objects request bodies are wrapped in ({"model": {...}}): a field's path in
# `details` starts inside them. The areas add theirs as they are served.
BODY_WRAPPERS = frozenset({"model", "session", "experiment", "run", "test"})


def code_for(status_code: int) -> str:
    if status_code in _CODES:
        return _CODES[status_code]
    return "internal_error" if status_code >= 500 else "validation_error"


class ExperimentsError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: dict[str, Any]


class ExperimentsErrorBody(msgspec.Struct, kw_only=True):
    error: ExperimentsError


def field_details(details: dict[str, Any] | None, message: str) -> dict[str, Any]:
    """A validation error's details as {field: [messages]}, from the services' forms
    `{"fields": {field: [...]}}` and `{"field": name, "reason": text}`."""
    if not details:
        return {}
    fields = details.get("fields")
    if isinstance(fields, dict):
        return {str(k): list(v) if isinstance(v, list | tuple) else [str(v)] for k, v in fields.items()}
    field = details.get("field")
    if isinstance(field, str):
        return {field: [str(details.get("reason") or message)]}
    return details


class ExperimentsErrors(ErrorShape[ExperimentsErrorBody]):
    body = ExperimentsErrorBody
    body_too_large_status = 413
    validation_status = VALIDATION_STATUS

    def error_body(self, error: ErrorFacts) -> ExperimentsErrorBody:
        status, detail, details = error.status_code, error.detail, error.details
        shown = field_details(details, detail) if status == VALIDATION_STATUS else dict(details or {})
        return ExperimentsErrorBody(error=ExperimentsError(code=code_for(status), message=detail, details=shown))


EXPERIMENTS_ERRORS = ExperimentsErrors()

_NAMED_FIELD = re.compile(r"(?:required|unknown) field `([^`]+)`")


def _clean(message: str) -> str:
    return message.replace("`", "'")


def _body_path(key: str, message: str) -> str:
    """Where in the body a decoding problem is: Litestar names the enclosing object
    (`model`, or `data` for the whole body); a missing or unknown field is named in the
    message."""
    parts = [] if key in ("", "data") else key.split(".")
    named = _NAMED_FIELD.search(message)
    if named:
        parts.append(named.group(1))
    if len(parts) > 1 and parts[0] in BODY_WRAPPERS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def decoding_problems(exc: ValidationException) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key, message = str(item.get("key") or ""), str(item.get("message") or "")
        if item.get("source") == "body":
            field = _body_path(key, message)
            if message == "'data'":
                message = "a JSON body is required"
            elif key in ("", "data") and "unknown field" in message:
                message += ' at the top of the body: this API wraps the object sent, as in {"model": {...}}'

        else:
            field = key or "request"
        problems.setdefault(field, []).append(_clean(message))
    return problems or {"body": [_clean(str(exc.detail))]}


def experiments_exception_handlers() -> ExceptionHandlersMap:
    """The shared handlers (http/errors.py) in this document's shape, with decoding
    failures as 422s that name their fields."""
    shared = exception_handlers(EXPERIMENTS_ERRORS)
    handle_http = shared[HTTPException]

    def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if isinstance(exc, ValidationException):
            problems = decoding_problems(exc)
            message = "; ".join(f"{field}: {', '.join(texts)}" for field, texts in problems.items())
            return EXPERIMENTS_ERRORS.render(VALIDATION_STATUS, message, details={"fields": problems})
        if exc.status_code == 400 and not isinstance(exc, RequestEntityTooLarge):
            # The body could not be read as JSON at all.
            detail = _clean(str(exc.detail))
            return EXPERIMENTS_ERRORS.render(VALIDATION_STATUS, detail, details={"fields": {"body": [detail]}})
        return handle_http(request, exc)

    return {**shared, HTTPException: handle_http_exception}
