"""The Litestar application: one router per API document, all on one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from appliance import __version__
from appliance.http.app_state import keep_appliance
from appliance.http.dependencies import DEPENDENCIES
from appliance.http.docs import docs_assets, docs_page, openapi_json, openapi_yaml
from appliance.http.experiments.router import experiments_surface
from appliance.http.identity import add_rate_limit_headers
from appliance.http.llm_eval.router import llm_eval_surface
from appliance.http.platform.router import platform_surface
from appliance.http.sandbox.router import sandbox_surface
from appliance.http.surfaces import Surface, unmatched_path_handlers

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

    surfaces = document_surfaces(
        appliance.settings.max_upload_bytes,
        appliance.settings.telemetry_max_body_bytes,
        appliance.settings.llm_cors_origins,
    )
    app = Litestar(
        route_handlers=[*(surface.router for surface in surfaces), *DOCS_ROUTES],
        dependencies=DEPENDENCIES,
        # Only what no router took: an unmatched path, by the document whose path space it is in.
        exception_handlers=unmatched_path_handlers(surfaces, default=surfaces[0]),
        before_send=[add_rate_limit_headers],
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        request_max_body_size=appliance.settings.max_body_bytes,
        debug=False,
        # The process configures logging once (appliance.logging_setup, with the filter
        # that masks keys in WebSocket query strings); Litestar's default would replace it.
        logging_config=None,
    )
    keep_appliance(app.state, appliance)
    return app


DOCS_ROUTES = (docs_page, docs_assets, openapi_yaml, openapi_json)


def document_surfaces(
    max_upload_bytes: int, telemetry_max_body_bytes: int = 0, llm_cors_origins: list[str] | None = None
) -> list[Surface]:
    """The API documents served, the first one the default for paths none claims; the
    next ones go here (see http/__init__.py). The settings taken shape only middleware
    and body limits, never the routes, so the OpenAPI document is built without them."""
    return [
        platform_surface(),
        sandbox_surface(max_upload_bytes),
        experiments_surface(telemetry_max_body_bytes),
        llm_eval_surface(["*"] if llm_cors_origins is None else llm_cors_origins),
    ]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="appliance",
        version=__version__,
        # Litestar's own schema routes stay out of /api (they would answer every unknown
        # /api/... path with an HTML 404); /api/openapi.yaml and .json are ours, in docs.py.
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
                # A JWT from POST /api/auth/token, or an API key (ak_...) itself.
                "Bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT or API key"),
                "SessionCookie": SecurityScheme(type="apiKey", name="_crucible_ui_key", security_scheme_in="cookie"),
            }
        ),
        security=[{"ApiKey": []}, {"Bearer": []}],
    )


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the server serves, built without an appliance or a server
    (`appliance openapi`): the same routers, dependencies and configuration. Nothing in
    it depends on settings (the upload and telemetry limits only size routers' body limits)."""
    app = Litestar(
        route_handlers=[*(surface.router for surface in document_surfaces(0)), *DOCS_ROUTES],
        dependencies=DEPENDENCIES,
        openapi_config=openapi_config(),
        logging_config=None,
    )
    return app.openapi_schema.to_schema()
