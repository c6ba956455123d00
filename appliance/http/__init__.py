"""The HTTP and WebSocket layer: one Litestar router per API document.

    app_factory.py     the app: the documents' routers, the docs routes (/docs,
                       /api/openapi.yaml|.json), identity and service dependencies,
                       and the handlers for paths no route matched
    surfaces.py        Surface = (document, router, path spaces); which document's
                       errors an unmatched path gets (whole path segments, longest wins)
    errors.py          the exception handlers every router registers, parametrised by
                       its document's ErrorShape
    error_docs.py      the error statuses of each operation in the OpenAPI document
                       (`document_errors`, `opt=errors(...)`), request body examples
    app_state.py       the appliance in the app's state, typed (the one place it is read)
    dependencies.py    services as typed dependencies (`sandboxes: SandboxService`)
    identity.py        who is calling (the `identity` dependency), rate limits, and the
                       authenticated opening of a WebSocket
    ws_close.py        WebSocket close codes
    platform/          platform-api.md: router.py (router + PATH_SPACES), errors.py,
                       schemas.py, one module per group of routes, ws.py (/ws)
    sandbox/           sandbox-api.md: the same layout, execute_ws.py, ws_monitor.py

Handlers translate: they decode the request into the service's input, call one service
method with the caller's `identity`, and encode the result into the document's schema
(a msgspec Struct, so every response has a schema in the OpenAPI). They decide no
permission: every service method that acts for a caller checks it first
(services/access/auth.py `require_permission`), so the CLI and the TUI are held to the
same rules. They never reach `app.state`; only the providers do.

Adding an API document (experiments-api.md, llm-eval-api.md are next; see
docs/architecture.md for the whole list, services and TUI included):

1. `appliance/http/<document>/` (e.g. `experiments/`, `llm_eval/`), with:
   - `router.py`: `DOCUMENT`, `PATH_SPACES` (every path prefix the document owns, e.g.
     experiments: "/api/v1/experiments", "/api/v1/runs", "/api/v1/telemetry",
     "/api/v1/models", "/api/v1/statistical-results", "/api/v1/export",
     "/socket/websocket"; llm-eval: "/health", "/api/v1/evaluate", "/api/v1/suite",
     "/api/v1/suites", "/api/v1/prompts", "/api/v1/leaderboard", "/api/v1/benchmark",
     "/api/v1/optimize"), a `<document>_router()` with
     `exception_handlers=exception_handlers(<ITS>_ERRORS)`, returned through
     `document_errors(router, <ITS>_ERRORS, DEPENDENCIES)`, and `<document>_surface()`;
   - `errors.py`: an `ErrorShape` subclass writing the document's error body;
   - `schemas.py`: its request and response Structs, field for field as documented;
   - one module per group of routes, taking services as typed parameters.
2. In app_factory.py, add `<document>_surface()` to `document_surfaces()`; two documents claiming
   the same path space fail at start.
3. A service the new routes need: a provider in dependencies.py.
"""
