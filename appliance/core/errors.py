"""Errors a caller can cause, independent of any surface.

Each surface (http/platform, http/sandbox, ...) renders these in its own documented
shape; the services only say what went wrong and whose fault it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

# What an error's structured details can hold: whatever JSON can carry.
JsonValue: TypeAlias = str | int | float | bool | None | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
ErrorDetails: TypeAlias = dict[str, JsonValue]


class AppError(Exception):
    """Base class: `status_code` is the HTTP status the error maps to."""

    status_code = 500
    title = "Internal server error"

    def __init__(self, detail: str, *, details: ErrorDetails | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # Structured facts about the error (e.g. {"field": ..., "reason": ...}); the
        # sandbox surface returns them as `error.details`.
        self.details = details


class ValidationError(AppError):
    status_code = 400
    title = "Validation error"


class Unauthorized(AppError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(AppError):
    status_code = 403
    title = "Forbidden"


class NotFound(AppError):
    status_code = 404
    title = "Not found"


class Conflict(AppError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    title = "Payload too large"


class RateLimited(AppError):
    status_code = 429
    title = "Rate limit exceeded"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(AppError):
    status_code = 503
    title = "Service unavailable"


class Overloaded(Unavailable):
    """Every worker is busy and the queue is past its threshold: come back later, in
    `retry_after` seconds (sent as the Retry-After header)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, details={"retry_after": retry_after})
        self.retry_after = retry_after


def invalid_fields(problems: Mapping[str, Sequence[str]]) -> ValidationError:
    """A ValidationError naming what is wrong with each field (`{"config.temperature":
    ["must be a number from 0 to 2"]}`), for surfaces that report field-level details:
    its details are `{"fields": problems}`. One field alone may also be named as
    `details={"field": name, "reason": text}`."""
    message = "; ".join(f"{field}: {', '.join(texts)}" for field, texts in problems.items())
    fields: dict[str, JsonValue] = {field: list(texts) for field, texts in problems.items()}
    return ValidationError(message, details={"fields": fields})
