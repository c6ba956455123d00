"""BenchmarkService: POST /api/v1/benchmark, its results and the leaderboard.

A benchmark request becomes an experiment of type `benchmark` (one model, one run), so
its progress, run, log lines and metrics are the experiments API's while it runs; the
answer is the run's result (store/benchmarks.py), when it ends, or at once with
`wait: false`. Everything the request can get wrong is checked before the experiment is
made: a bad request stores nothing.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from appliance.core.errors import NotFound, ValidationError
from appliance.core.experiments import ExperimentStatus
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.llm.benchmarks import BenchmarkRequest, BenchmarkResult, ItemTranscript
from appliance.core.llm.calls import ProviderFailed, parameter_problems
from appliance.core.llm.datasets import check_name
from appliance.core.paging import MAX_ROWID
from appliance.services.access.auth import require_permission
from appliance.services.experiments.experiments import ExperimentCreate, ExperimentService
from appliance.services.experiments.runners.benchmark import MAX_CONCURRENCY, BenchmarkRunner
from appliance.services.llm.datasets import DatasetService, not_found
from appliance.services.llm.leaderboard import Leaderboard, entries, latest_per_model, ranked
from appliance.store.benchmarks import BenchmarkStore

POLL_SECONDS = 0.1
FIRST_RESULT_SECONDS = 60.0
ENDED = (ExperimentStatus.COMPLETED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


def _missing(field: str) -> ValidationError:
    return ValidationError(f"Missing required field: {field}", details={"field": field, "reason": "missing"})


class BenchmarkService:
    def __init__(
        self,
        store: BenchmarkStore,
        datasets: DatasetService,
        experiments: ExperimentService,
        runner: BenchmarkRunner,
    ) -> None:
        self._store = store
        self._datasets = datasets
        self._experiments = experiments
        self._runner = runner

    async def run(self, identity: Identity, request: BenchmarkRequest) -> BenchmarkResult:
        require_permission(identity, EXECUTE)
        if not request.dataset:
            raise _missing("dataset")
        problem = check_name(request.dataset)
        if problem:
            raise ValidationError(f"dataset: {problem}", details={"field": "dataset", "reason": problem})
        if request.sample_size is not None and request.sample_size < 1:
            raise ValidationError("sample_size must be at least 1", details={"field": "sample_size"})
        if not 1 <= request.concurrency <= MAX_CONCURRENCY:
            raise ValidationError(
                f"concurrency must be between 1 and {MAX_CONCURRENCY}", details={"field": "concurrency"}
            )
        if not 0 <= request.seed <= 2**31 - 1:
            raise ValidationError("seed must be between 0 and 2147483647", details={"field": "seed"})
        if request.parameters is not None and parameter_problems(request.parameters):
            field, messages = next(iter(parameter_problems(request.parameters).items()))
            raise ValidationError(f"{field} {messages[0]}", details={"field": field})
        dataset = await self._datasets.get(identity, request.dataset)
        model = await self._runner.model(identity, request.model or "", request.provider, "model")
        config = {
            "type": "benchmark",
            "dataset": dataset.name,
            "models": [model.id],
            "provider": request.provider,
            "sample_size": request.sample_size,
            "seed": request.seed,
            "parameters": None if request.parameters is None else msgspec.to_builtins(request.parameters),
            "concurrency": request.concurrency,
            "cache": request.cache,
        }
        created = await self._experiments.create(
            identity,
            ExperimentCreate(
                name=f"benchmark {dataset.name} on {model.id}",
                description="POST /api/v1/benchmark",
                config={k: v for k, v in config.items() if v is not None},
                tags=["benchmark"],
            ),
        )
        await self._experiments.start(identity, created.id)
        result = await self._first_result(identity, created.id)
        if not request.wait:
            return result
        return await self._finished(identity, result)

    async def _first_result(self, identity: Identity, experiment_id: str) -> BenchmarkResult:
        deadline = time.monotonic() + FIRST_RESULT_SECONDS
        while True:
            found = await self._store.of_experiment(experiment_id)
            if found:
                return found[0]
            experiment = await self._experiments.get(identity, experiment_id)
            if experiment.status in ENDED or time.monotonic() > deadline:
                raise ProviderFailed(
                    f"benchmark experiment {experiment_id} ended before its run began; its run's logs say why "
                    f"(GET /api/v1/experiments/{experiment_id}/runs)",
                    details={"experiment_id": experiment_id},
                )
            await asyncio.sleep(POLL_SECONDS / 2)

    async def _finished(self, identity: Identity, result: BenchmarkResult) -> BenchmarkResult:
        while result.status == "running":
            await asyncio.sleep(POLL_SECONDS)
            experiment = await self._experiments.get(identity, result.experiment_id)
            latest = await self._store.get(result.id)
            if latest is None:  # its experiment was deleted meanwhile
                raise NotFound(f"benchmark result {result.id} is gone", details={"id": result.id})
            result = latest
            if result.status == "running" and experiment.status in ENDED:
                break
        if result.status == "failed" and result.error and result.error.startswith("every model call failed"):
            raise ProviderFailed(result.error, details={"id": result.id, "experiment_id": result.experiment_id})
        return result

    # --- reading ---------------------------------------------------------------------------

    async def get(self, identity: Identity, result_id: int) -> BenchmarkResult:
        require_permission(identity, READ)
        result = await self._store.get(result_id) if 0 < result_id <= MAX_ROWID else None
        if result is None or not identity.may_see(result.owner):
            raise NotFound(f"benchmark result {result_id} not found", details={"id": result_id})
        return result

    async def newest(
        self, identity: Identity, dataset: str | None, limit: int, offset: int
    ) -> tuple[list[BenchmarkResult], int]:
        """The results the key may see (its own; an admin's, all), newest first."""
        require_permission(identity, READ)
        if not identity.is_admin and identity.is_anonymous:
            return [], 0
        return await self._store.newest(None if identity.is_admin else identity.owner, dataset or None, limit, offset)

    async def transcripts(
        self, identity: Identity, result_id: int, limit: int, offset: int
    ) -> tuple[BenchmarkResult, list[ItemTranscript], int]:
        result = await self.get(identity, result_id)
        items, total = await self._store.transcripts(result_id, limit, offset)
        return result, items, total

    async def leaderboard(self, identity: Identity, dataset: str | None, top: int) -> Leaderboard:
        require_permission(identity, READ)
        if not dataset:
            raise _missing("dataset")
        results = [r for r in await self._store.completed(dataset) if identity.may_see(r.owner)]
        if not results:
            try:
                await self._datasets.get(identity, dataset)
            except NotFound:
                raise not_found(dataset) from None
            return Leaderboard(dataset=dataset, entries=[])
        ordered = ranked(latest_per_model(results))
        # The entry after the last shown is read too: the last shown compares with it.
        ordered = ordered[: top + 1]
        correctness = [await self._store.correctness(r.id) for r in ordered]
        return Leaderboard(dataset=dataset, entries=entries(ordered, correctness)[:top])
