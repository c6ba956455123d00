"""platform-api.md's error shape, for its router and for every path no document claims:

{"error": "Validation error", "detail": "Code field is required", "status_code": 400}
"""

from __future__ import annotations

from http import HTTPStatus

from litestar import Response

from appliance.http.errors import BODY_TOO_LARGE, ErrorFacts, ErrorShape
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
    request_ids = "never"

    def error_body(self, error: ErrorFacts) -> ErrorBody:
        title = error.title or _TITLES.get(error.status_code) or HTTPStatus(error.status_code).phrase
        return ErrorBody(error=title, detail=error.detail, status_code=error.status_code)

    def body_too_large(self) -> Response[ErrorBody]:
        # The platform API documents 400 for any invalid request body, too large included.
        return self.render(400, f"{BODY_TOO_LARGE}; send less code or split the batch")


PLATFORM_ERRORS = PlatformErrors()
