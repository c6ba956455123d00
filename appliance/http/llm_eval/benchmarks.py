"""POST /api/v1/benchmark and GET /api/v1/leaderboard as llm-eval-api.md writes them, and
the appliance's additions: GET /api/v1/benchmark (the results, newest first),
GET /api/v1/benchmark/{id} (a result, also while it runs) and
GET /api/v1/benchmark/{id}/items (each item's transcript)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from appliance.core.identity import Identity
from appliance.core.llm.benchmarks import BenchmarkRequest, BenchmarkResult, ItemTranscript
from appliance.core.paging import MAX_OFFSET
from appliance.http.error_docs import errors, example
from appliance.services.llm.benchmarks import BenchmarkService
from appliance.services.llm.leaderboard import Leaderboard

BENCHMARK_EXAMPLE = example(
    "The document's example",
    {"dataset": "mmlu", "provider": "claude", "model": "claude-sonnet-4-5-20250929", "sample_size": 100},
)


class BenchmarkItems(msgspec.Struct, kw_only=True):
    result: BenchmarkResult
    items: list[ItemTranscript]
    total_items: int


class BenchmarkResults(msgspec.Struct, kw_only=True):
    results: list[BenchmarkResult]
    total: int


class BenchmarkController(Controller):
    path = "/api/v1"
    tags = ["llm evaluation"]

    @post(
        "/benchmark",
        status_code=200,
        summary="Run a benchmark: a dataset asked to a model, as an experiment (wait: false answers 202 at once)",
        responses={
            202: ResponseSpec(
                BenchmarkResult,
                description="wait: false: the run started (status running, unless it ended already); "
                "GET /api/v1/benchmark/{id} follows it.",
            )
        },
        opt=errors(403, 404, 502, 504),
    )
    async def run_benchmark(
        self, benchmarks: BenchmarkService, identity: Identity, data: Annotated[BenchmarkRequest, BENCHMARK_EXAMPLE]
    ) -> Response[BenchmarkResult]:
        result = await benchmarks.run(identity, data)
        return Response(result, status_code=200 if data.wait else 202)

    @get("/benchmark", summary="Benchmark results, newest first (running ones too)", opt=errors(403))
    async def list_results(
        self,
        benchmarks: BenchmarkService,
        identity: Identity,
        dataset: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> BenchmarkResults:
        results, total = await benchmarks.newest(identity, dataset, limit, offset)
        return BenchmarkResults(results=results, total=total)

    @get("/benchmark/{result_id:int}", summary="A benchmark result", opt=errors(403, 404))
    async def get_result(self, benchmarks: BenchmarkService, identity: Identity, result_id: int) -> BenchmarkResult:
        return await benchmarks.get(identity, result_id)

    @get("/benchmark/{result_id:int}/items", summary="A benchmark result's item transcripts", opt=errors(403, 404))
    async def get_items(
        self,
        benchmarks: BenchmarkService,
        identity: Identity,
        result_id: int,
        limit: Annotated[int, Parameter(ge=0, le=10_000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> BenchmarkItems:
        result, items, total = await benchmarks.transcripts(identity, result_id, limit, offset)
        return BenchmarkItems(result=result, items=items, total_items=total)

    @get(
        "/leaderboard",
        summary="Benchmark results on a dataset, ranked, with 95% intervals and paired comparisons",
        opt=errors(403, 404),
    )
    async def leaderboard(
        self,
        benchmarks: BenchmarkService,
        identity: Identity,
        dataset: str | None = None,
        top: Annotated[int, Parameter(ge=1, le=1000)] = 20,
    ) -> Leaderboard:
        return await benchmarks.leaderboard(identity, dataset, top)
