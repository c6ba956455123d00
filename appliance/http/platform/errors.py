"""platform-api.md's error shape, for its router and for every path no document claims:

{"error": "Validation error", "detail": "Code field is required", "status_code": 400}
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import MediaType, Response

from appliance.http.errors import BODY_TOO_LARGE, ErrorShape
from appliance.http.platform.schemas import ErrorBody

_TITLES = {
    400: "Validation error",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    429: "Rate limit exceeded",
    503: "Service unavailable",
}


class PlatformErrors(ErrorShape[ErrorBody]):
    body = ErrorBody
    body_too_large_status = 400

    def render(
        self,
        status_code: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Response[ErrorBody]:
        title = title or _TITLES.get(status_code) or HTTPStatus(status_code).phrase
        return Response(
            ErrorBody(error=title, detail=detail, status_code=status_code),
            status_code=status_code,
            media_type=MediaType.JSON,
            headers=headers,
        )

    def body_too_large(self) -> Response[ErrorBody]:
        # The platform API documents 400 for any invalid request body, too large included.
        return self.render(400, f"{BODY_TOO_LARGE}; send less code or split the batch")


PLATFORM_ERRORS = PlatformErrors()
