"""The experiments API (experiments-api.md) under /api/v1: experiments, runs, models and
sessions and the Phoenix socket (/socket/websocket) today; telemetry, statistical
results and exports join as they are served (add each to PATH_SPACES then).

Every route of this document needs a caller (the guard answers 401 before a request's
body or parameters are looked at), accepts the session cookie besides keys and tokens,
and is counted as a read (GET) or a write (any other method) unless it names its own
rate bucket (`opt={"rate_bucket": "export"}`).
"""

from __future__ import annotations

from litestar import Router

from appliance.http.dependencies import DEPENDENCIES
from appliance.http.error_docs import document_errors
from appliance.http.experiments.errors import EXPERIMENTS_ERRORS, experiments_exception_handlers
from appliance.http.experiments.experiments import ExperimentController
from appliance.http.experiments.models import ModelController
from appliance.http.experiments.runs import ExperimentRunsController, RunController
from appliance.http.experiments.session import SessionController, SessionsController
from appliance.http.experiments.socket import phoenix_socket
from appliance.http.identity import READ_WRITE, require_authentication
from appliance.http.surfaces import Surface

DOCUMENT = "experiments-api.md"
PATH_SPACES = (
    "/api/v1/experiments",
    "/api/v1/runs",
    "/api/v1/models",
    "/api/v1/session",
    "/api/v1/sessions",
    "/socket/websocket",
)


def experiments_router() -> Router:
    router = Router(
        path="/",
        route_handlers=[
            ExperimentController,
            ExperimentRunsController,
            RunController,
            ModelController,
            SessionController,
            SessionsController,
            phoenix_socket,
        ],
        exception_handlers=experiments_exception_handlers(),
        guards=[require_authentication],
        opt={"rate_bucket": READ_WRITE, "session_cookie": True},
    )
    return document_errors(router, EXPERIMENTS_ERRORS, DEPENDENCIES)


def experiments_surface() -> Surface:
    return Surface(DOCUMENT, experiments_router(), PATH_SPACES)
