"""The llm-eval API (llm-eval-api.md): GET /health, POST /api/v1/evaluate, POST
/api/v1/suite, GET /api/v1/suites and /api/v1/prompts, and the appliance's additions
(writing prompts and suites, promptfoo import, /api/v1/suite-runs), POST
/api/v1/optimize. The leaderboard and benchmarks join with issue 19; their paths are this
document's already, so until then they answer its 404.

The document runs without authentication; the appliance keeps its keys here, as the
document advises for production: every route but GET /health needs a key (X-API-Key
or Authorization: Bearer), checked before the request is looked at; requests are
counted per key in the `llm` bucket (setting rate_limit_llm). /health needs nothing and
counts against nothing. CORS: cors.py.
"""

from __future__ import annotations

from typing import Any

from litestar import Router, get
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from appliance.core.errors import Unauthorized
from appliance.http.dependencies import DEPENDENCIES
from appliance.http.error_docs import document_errors
from appliance.http.errors import exception_handlers
from appliance.http.identity import authenticate_once
from appliance.http.llm_eval.cors import cors_middleware
from appliance.http.llm_eval.errors import LLM_EVAL_ERRORS
from appliance.http.llm_eval.evaluate import EvaluateController, SuiteRunController
from appliance.http.llm_eval.library import PromptController, SuiteController
from appliance.http.llm_eval.optimize import OptimizeController
from appliance.http.llm_eval.schemas import Health
from appliance.http.surfaces import Surface

DOCUMENT = "llm-eval-api.md"
PATH_SPACES = (
    "/health",
    "/api/v1/evaluate",
    "/api/v1/suite",
    "/api/v1/suites",
    "/api/v1/prompts",
    "/api/v1/suite-runs",
    "/api/v1/leaderboard",
    "/api/v1/benchmark",
    "/api/v1/optimize",
)
RATE_BUCKET = "llm"


@get(
    "/health",
    opt={"public": True},
    # No key asked (one sent is not looked at), no rate limit counted: no 401 nor 429.
    security=[{}],
    summary="Health check (no key needed)",
    tags=["llm evaluation"],
)
async def health() -> Health:
    return Health(status="ok")


async def require_key_here(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every route but the public ones needs a key; preflights never carry one."""
    if handler.opt.get("public") or connection.scope.get("method") == "OPTIONS":
        return
    if (await authenticate_once(connection)).is_anonymous:
        raise Unauthorized("Authentication required: send an X-API-Key header or Authorization: Bearer <api_key>")


def llm_eval_router(cors_origins: list[str]) -> Router:
    router = Router(
        path="/",
        route_handlers=[
            health,
            EvaluateController,
            SuiteRunController,
            PromptController,
            SuiteController,
            OptimizeController,
        ],
        exception_handlers=exception_handlers(LLM_EVAL_ERRORS),
        guards=[require_key_here],
        middleware=[cors_middleware(cors_origins)],
        opt={"rate_bucket": RATE_BUCKET},
    )
    return document_errors(router, LLM_EVAL_ERRORS, DEPENDENCIES)


def llm_eval_surface(cors_origins: list[str]) -> Surface:
    return Surface(DOCUMENT, llm_eval_router(cors_origins), PATH_SPACES)
