"""What every API document's error handlers share: one set of Litestar exception
handlers, parametrised by the document's `ErrorShape`.

Each document's router registers `exception_handlers(its_shape)`; the shape alone says
how the document writes an error (platform/errors.py, sandbox/errors.py). Which shape a
request gets is therefore decided by the router that matched it, and, for a path no
route matches, by surfaces.py's path spaces.

Every 5xx is written to the log with a request id that the response also names, so a
user's report can be matched to the log line.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Generic, Literal, TypeVar

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ExceptionHandlersMap

from appliance.core.errors import AppError, Overloaded, RateLimited

log = logging.getLogger(__name__)

BODY_TOO_LARGE = "request body is larger than this appliance accepts (setting max_body_bytes)"


def new_request_id() -> str:
    return f"req_{secrets.token_hex(8)}"


BodyT = TypeVar("BodyT")


class ErrorFacts(msgspec.Struct, frozen=True):
    """One error as every document's body is written from: its status (the one answered),
    what it says, and the optional title, details and request id."""

    status_code: int
    detail: str
    title: str | None = None
    details: dict[str, Any] | None = None
    request_id: str | None = None


class ErrorShape(Generic[BodyT]):
    """How one API document writes an error response (a `BodyT`)."""

    # The Struct `error_body` writes: the schema every error response of the document gets.
    body: type[BodyT]
    # What `body_too_large` answers (the platform says 400, the sandbox API 413).
    body_too_large_status: int
    # What an invalid request is answered with (400; the experiments API says 422, so an
    # error raised as a 400 is answered as one).
    validation_status: int = 400
    # When a response names a request id in X-Request-ID: "given", when the error has one
    # (a 5xx, whose log line names it too); "always", a new one for every error that has
    # none; "never", for a document that has no word for it.
    request_ids: Literal["given", "always", "never"] = "given"

    def error_body(self, error: ErrorFacts) -> BodyT:
        """The document's body for one error, once `render` has settled its status and id."""
        raise NotImplementedError

    def render(
        self,
        status_code: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Response[BodyT]:
        status = self.validation_status if status_code == 400 else status_code
        if self.request_ids == "always":
            request_id = request_id or new_request_id()
        named = {"X-Request-ID": request_id} if request_id and self.request_ids != "never" else {}
        return Response(
            self.error_body(ErrorFacts(status, detail, title, details, request_id)),
            status_code=status,
            media_type=MediaType.JSON,
            headers={**(headers or {}), **named},
        )

    def body_too_large(self) -> Response[BodyT]:
        """A body past max_body_bytes, at the status the document names for it."""
        return self.render(
            self.body_too_large_status, f"{BODY_TOO_LARGE}; send a smaller body", details={"reason": "body too large"}
        )


def exception_handlers(shape: ErrorShape[BodyT]) -> ExceptionHandlersMap:
    """The handlers a document's router registers: every error in `shape`."""

    def handle_app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[BodyT]:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited | Overloaded) else None
        return shape.render(exc.status_code, exc.detail, title=exc.title, headers=headers, details=exc.details)

    def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[BodyT]:
        path = request.url.path
        if isinstance(exc, RequestEntityTooLarge):
            return shape.body_too_large()
        if isinstance(exc, ValidationException):
            return shape.render(400, _validation_detail(exc), details=_validation_details(exc))
        status = exc.status_code
        if status >= 500:
            log.error("HTTP %s on %s: %s", status, path, exc.detail)
        detail = str(exc.detail)
        if status == 404:
            detail = f"no such endpoint: {request.method} {path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {path}"
        return shape.render(status, detail, headers=exc.headers)

    def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[BodyT]:
        request_id = new_request_id()
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
        return shape.render(
            500, f"the appliance hit an internal error; it has been logged as {request_id}", request_id=request_id
        )

    return {AppError: handle_app_error, HTTPException: handle_http_exception, Exception: handle_unexpected}


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


def _validation_details(exc: ValidationException) -> dict[str, str]:
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
