"""POST /api/v1/optimize: iterative prompt improvement with a judge model
(services/llm/optimize.py). It answers when the last candidate is scored; each
candidate's suite run is visible in GET /api/v1/suite-runs while it runs."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post

from appliance.core.identity import Identity
from appliance.core.llm.optimize import OptimizeRequest, OptimizeResult
from appliance.http.error_docs import errors, example
from appliance.services.llm.optimize import PromptOptimizer

# The document's own example.
OPTIMIZE_EXAMPLE = example(
    "The shipped example prompt", {"prompt": "example", "iterations": 3, "strategy": "iterative"}
)


class OptimizeController(Controller):
    path = "/api/v1"
    tags = ["llm evaluation"]

    @post(
        "/optimize",
        status_code=200,
        summary="Improve a prompt's template with a judge model, each candidate scored on a suite",
        opt=errors(403, 404, 502, 503, 504),
    )
    async def optimize(
        self, optimizer: PromptOptimizer, identity: Identity, data: Annotated[OptimizeRequest, OPTIMIZE_EXAMPLE]
    ) -> OptimizeResult:
        return await optimizer.optimize(identity, data)
