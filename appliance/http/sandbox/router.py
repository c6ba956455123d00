"""The sandbox API (sandbox-api.md): sync execution, sandboxes, files, snapshots,
templates, monitoring, alerts, API keys, `/ws/execute`, `/ws/monitor`.

Its path spaces are listed once, here: an unmatched path in them gets this document's
errors too (see http/surfaces.py). Its errors: sandbox/errors.py.
"""

from __future__ import annotations

from litestar import Router

from appliance.http.dependencies import DEPENDENCIES
from appliance.http.error_docs import document_errors
from appliance.http.errors import exception_handlers
from appliance.http.sandbox.alerts import AlertController
from appliance.http.sandbox.api_keys import ApiKeyController, ApiKeyUnderApiController
from appliance.http.sandbox.errors import SANDBOX_ERRORS
from appliance.http.sandbox.execute_ws import execute_stream
from appliance.http.sandbox.executions import ExecutionController
from appliance.http.sandbox.files import SandboxFilesController, upload_router
from appliance.http.sandbox.monitoring import MonitoringController
from appliance.http.sandbox.sandboxes import SandboxController
from appliance.http.sandbox.snapshots import SandboxSnapshotsController, SnapshotController
from appliance.http.sandbox.templates import TemplateController
from appliance.http.sandbox.ws_monitor import monitor
from appliance.http.surfaces import Surface

DOCUMENT = "sandbox-api.md"
PATH_SPACES = (
    "/api/execute",
    "/api/sandboxes",
    "/api/files",
    "/api/snapshots",
    "/api/templates",
    "/api/metrics",
    "/api/health",
    "/api/alerts",
    "/auth/api-keys",
    "/api/auth/api-keys",
    "/ws/execute",
    "/ws/monitor",
)


def sandbox_router(max_upload_bytes: int) -> Router:
    router = Router(
        path="/",
        route_handlers=[
            ExecutionController,
            execute_stream,
            SandboxController,
            SandboxFilesController,
            upload_router(max_upload_bytes),
            SandboxSnapshotsController,
            SnapshotController,
            TemplateController,
            MonitoringController,
            monitor,
            AlertController,
            ApiKeyController,
            ApiKeyUnderApiController,
        ],
        exception_handlers=exception_handlers(SANDBOX_ERRORS),
    )
    return document_errors(router, SANDBOX_ERRORS, DEPENDENCIES)


def sandbox_surface(max_upload_bytes: int) -> Surface:
    return Surface(DOCUMENT, sandbox_router(max_upload_bytes), PATH_SPACES)
