"""The platform API (platform-api.md): the evaluation queue, platform status, `/ws`.

Its path spaces are listed once, here: an unmatched path in them gets this document's
errors too (see http/surfaces.py). Its errors: platform/errors.py.
"""

from __future__ import annotations

from litestar import Router

from appliance.http.dependencies import DEPENDENCIES
from appliance.http.error_docs import document_errors
from appliance.http.errors import exception_handlers
from appliance.http.platform.errors import PLATFORM_ERRORS
from appliance.http.platform.evaluations import EvaluationController
from appliance.http.platform.status import StatusController
from appliance.http.platform.ws import evaluation_events
from appliance.http.surfaces import Surface

DOCUMENT = "platform-api.md"
PATH_SPACES = (
    "/api/eval",
    "/api/eval-batch",
    "/api/eval-status",
    "/api/queue-status",
    "/api/status",
    "/api/evaluations",
    "/api/auth/token",
    "/ws",
)


def platform_router() -> Router:
    router = Router(
        path="/",
        route_handlers=[EvaluationController, StatusController, evaluation_events],
        exception_handlers=exception_handlers(PLATFORM_ERRORS),
    )
    return document_errors(router, PLATFORM_ERRORS, DEPENDENCIES)


def platform_surface() -> Surface:
    return Surface(DOCUMENT, platform_router(), PATH_SPACES)
