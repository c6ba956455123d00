"""llm-eval-api.md's error shape:

    {"error": {"code": "INVALID_REQUEST", "message": "Missing required field: prompt"}}

The document's codes: INVALID_REQUEST (400), NOT_FOUND (404), PROVIDER_ERROR (502: the
model's server failed or refused), TIMEOUT (504: it did not answer in time),
INTERNAL_ERROR (500). The appliance adds, in the same shape: UNAUTHORIZED (401),
FORBIDDEN (403), RATE_LIMITED (429, with Retry-After), and for what the document has no
word for METHOD_NOT_ALLOWED (405), CONFLICT (409: a version that exists),
PAYLOAD_TOO_LARGE (413) and UNAVAILABLE (503: the sandboxes cannot take the grading
programs now). `details`, when there is something to add (the field at fault, the run
id of a failed suite), is an extra member of `error`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response

from appliance.http.errors import BODY_TOO_LARGE, ErrorFacts, ErrorShape

CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_REQUEST",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "PROVIDER_ERROR",
    503: "UNAVAILABLE",
    504: "TIMEOUT",
}


def code_for(status: int) -> str:
    return CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")


class LlmError(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str
    message: str
    details: dict[str, Any] | None = None


class LlmErrorBody(msgspec.Struct, kw_only=True):
    error: LlmError


class LlmEvalErrors(ErrorShape[LlmErrorBody]):
    body = LlmErrorBody
    body_too_large_status = 413

    def error_body(self, error: ErrorFacts) -> LlmErrorBody:
        extra = dict(error.details or {})
        if error.request_id:
            extra["request_id"] = error.request_id
        return LlmErrorBody(
            error=LlmError(code=code_for(error.status_code), message=error.detail, details=extra or None)
        )

    def body_too_large(self) -> Response[LlmErrorBody]:
        return self.render(413, f"{BODY_TOO_LARGE}; send a smaller body")


LLM_EVAL_ERRORS = LlmEvalErrors()
