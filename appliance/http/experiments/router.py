"""The experiments API (experiments-api.md) under /api/v1: experiments, runs, models,
sessions, telemetry, statistical results and exports, and the Phoenix socket
(/socket/websocket).

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
from appliance.http.experiments.exports import ComparisonController, ExperimentExportController
from appliance.http.experiments.models import ModelController
from appliance.http.experiments.runs import ExperimentRunsController, RunController
from appliance.http.experiments.session import SessionController, SessionsController
from appliance.http.experiments.socket import phoenix_socket
from appliance.http.experiments.statistics import ExperimentResultsController, StatisticalResultController
from appliance.http.experiments.telemetry import TelemetryController
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
    "/api/v1/telemetry",
    "/api/v1/statistical-results",
    "/api/v1/export",
)


def experiments_router(telemetry_max_body_bytes: int) -> Router:
    # Telemetry batches have their own body limit (setting telemetry_max_body_bytes).
    telemetry = Router(path="/", route_handlers=[TelemetryController], request_max_body_size=telemetry_max_body_bytes)
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
            telemetry,
            StatisticalResultController,
            ExperimentResultsController,
            ExperimentExportController,
            ComparisonController,
        ],
        exception_handlers=experiments_exception_handlers(),
        guards=[require_authentication],
        opt={"rate_bucket": READ_WRITE, "session_cookie": True},
    )
    return document_errors(router, EXPERIMENTS_ERRORS, DEPENDENCIES)


def experiments_surface(telemetry_max_body_bytes: int) -> Surface:
    return Surface(DOCUMENT, experiments_router(telemetry_max_body_bytes), PATH_SPACES)
