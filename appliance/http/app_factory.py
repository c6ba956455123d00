"""The Litestar application: every surface mounted on one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from appliance import __version__
from appliance.http.docs import docs_assets, docs_page, openapi_json, openapi_yaml
from appliance.http.errors import EXCEPTION_HANDLERS
from appliance.http.identity import add_rate_limit_headers, provide_identity
from appliance.http.platform.evaluations import EvaluationController
from appliance.http.platform.status import StatusController
from appliance.http.platform.ws import evaluation_events
from appliance.http.sandbox.alerts import AlertController
from appliance.http.sandbox.api_keys import ApiKeyController
from appliance.http.sandbox.execute_ws import execute_stream
from appliance.http.sandbox.executions import ExecutionController
from appliance.http.sandbox.files import SandboxFilesController, upload_router
from appliance.http.sandbox.monitoring import MonitoringController
from appliance.http.sandbox.sandboxes import SandboxController
from appliance.http.sandbox.snapshots import SandboxSnapshotsController, SnapshotController
from appliance.http.sandbox.templates import TemplateController
from appliance.http.sandbox.ws_monitor import monitor

if TYPE_CHECKING:
    from appliance.app import Appliance


def create_app(appliance: Appliance, *, manage_lifecycle: bool = True) -> Litestar:
    """`manage_lifecycle=False` when the caller starts and stops the appliance itself
    (the TUI's one-process mode shares the services with the server)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if manage_lifecycle:
            await appliance.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await appliance.stop()

    openapi = OpenAPIConfig(
        title="appliance",
        version=__version__,
        # Litestar's own schema routes stay out of /api (they would answer every unknown
        # /api/... path with an HTML 404); /api/openapi.yaml and .json are ours, in docs.py.
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
                "Bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
        security=[{"ApiKey": []}, {"Bearer": []}],
    )
    app = Litestar(
        route_handlers=[
            EvaluationController,
            StatusController,
            evaluation_events,
            # sandbox-api.md
            MonitoringController,
            ApiKeyController,
            TemplateController,
            AlertController,
            monitor,
            ExecutionController,
            execute_stream,
            SandboxController,
            SandboxFilesController,
            upload_router(appliance.settings.max_upload_bytes),
            SandboxSnapshotsController,
            SnapshotController,
            docs_page,
            docs_assets,
            openapi_yaml,
            openapi_json,
        ],
        dependencies={"identity": Provide(provide_identity)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_rate_limit_headers],
        lifespan=[lifespan],
        openapi_config=openapi,
        request_max_body_size=appliance.settings.max_body_bytes,
        debug=False,
        # The process configures logging once (appliance.logging_setup, with the filter
        # that masks keys in WebSocket query strings); Litestar's default would replace it.
        logging_config=None,
    )
    app.state.appliance = appliance
    return app
