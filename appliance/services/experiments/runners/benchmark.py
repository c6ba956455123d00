"""Type `benchmark`: models asked the items of a dataset, one run per model.

config: `dataset` (an imported dataset or a shipped demo), `models` (model registry
entries; `provider`, when given, each must be of), `sample_size` items drawn with `seed`
(default 0: every run of every experiment with the same size asks the same items, so
results pair up on the leaderboard), `parameters`, `concurrency` (calls at once per run),
`cache`. A run runs no sandbox (but code items, graded in one): it is marked running
when it begins, keeps a result (store/benchmarks.py, the document's integer id) with
each item's transcript and correctness, reports progress, and ends with the metrics
accuracy, correct, total, errors, total_tokens and total_time_ms. A run stopped by a
pause starts over when it runs again.
"""

from __future__ import annotations

import time
from typing import TypeVar

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import AppError
from appliance.core.experiments import JsonObject, LogLevel, Objective, RunStatus
from appliance.core.identity import Identity
from appliance.core.llm.benchmarks import ItemTranscript, sample_positions
from appliance.core.llm.calls import Parameters, parameter_problems
from appliance.core.llm.datasets import check_name
from appliance.core.models import Model
from appliance.services.experiments.config import BaseConfig, ExperimentLimits, check_common, decode_config, invalid
from appliance.services.experiments.runners.base import Program, RunContext, RunResult
from appliance.services.experiments.search import PlannedPoint
from appliance.services.llm.benchmarking import ItemAsker, owner_identity
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.datasets import DatasetService
from appliance.store.benchmarks import BenchmarkStore

B = TypeVar("B", bound="BenchmarkConfig")
MAX_MODELS = 50
MAX_CONCURRENCY = 256
FLUSH_EVERY = 50


class BenchmarkConfig(BaseConfig, kw_only=True, forbid_unknown_fields=True):
    dataset: str = ""
    models: list[str] = msgspec.field(default_factory=list)
    provider: str | None = None
    sample_size: int | None = None
    seed: int = 0
    parameters: Parameters | None = None
    concurrency: int = 8
    cache: bool = True


def check_benchmark_fields(config: BenchmarkConfig, limits: ExperimentLimits) -> None:
    """What benchmark and ensemble configs share."""
    check_common(config, limits)
    if not config.dataset:
        raise invalid("config.dataset", "config.dataset is required: a dataset's name (GET /api/v1/datasets)")
    problem = check_name(config.dataset)
    if problem:
        raise invalid("config.dataset", f"config.dataset: {problem}")
    if not config.models or len(config.models) > MAX_MODELS:
        raise invalid("config.models", f"config.models must name 1 to {MAX_MODELS} models of the model registry")
    if len(set(config.models)) != len(config.models) or not all(m.strip() for m in config.models):
        raise invalid("config.models", "config.models must name each model once, none blank")
    if config.sample_size is not None and config.sample_size < 1:
        raise invalid("config.sample_size", "config.sample_size must be at least 1")
    if not 0 <= config.seed <= 2**31 - 1:
        raise invalid("config.seed", "config.seed must be between 0 and 2147483647")
    if not 1 <= config.concurrency <= MAX_CONCURRENCY:
        raise invalid("config.concurrency", f"config.concurrency must be between 1 and {MAX_CONCURRENCY}")
    if config.parameters is not None:
        problems = parameter_problems(config.parameters, "config.parameters")
        if problems:
            field, messages = next(iter(problems.items()))
            raise invalid(field, f"{field} {messages[0]}")


def with_accuracy_objective(config: B) -> B:
    """Without an objective of its own, a benchmark's best run is its most accurate
    (results_summary's best_accuracy, as experiments-api.md shows)."""
    if config.objective is not None:
        return config
    return msgspec.structs.replace(config, objective=Objective(metric="accuracy"))


class BenchmarkRunner:
    type = "benchmark"
    runs_planned = True

    def __init__(
        self,
        datasets: DatasetService,
        choice: ModelChoice,
        asker: ItemAsker,
        store: BenchmarkStore,
        limits: ExperimentLimits,
    ) -> None:
        self.datasets = datasets
        self._choice = choice
        self.asker = asker
        self.store = store
        self.limits = limits

    def validate(self, raw: JsonObject) -> BenchmarkConfig:
        config = decode_config(raw, BenchmarkConfig)
        check_benchmark_fields(config, self.limits)
        return with_accuracy_objective(config)

    async def check_access(self, identity: Identity, config: BaseConfig) -> None:
        c = _benchmark(config)
        await self.datasets.get(identity, c.dataset)
        for index, reference in enumerate(c.models):
            await self.model(identity, reference, c.provider, f"config.models.{index}")

    async def model(self, identity: Identity, reference: str, provider: str | None, field: str) -> Model:
        try:
            model = await self._choice.model_for(identity, reference)
        except AppError as exc:
            if exc.status_code == 404:
                raise
            raise invalid(field, f"{field}: {exc.detail}") from None
        if provider and provider.strip().lower() != model.provider.lower():
            raise invalid(
                "config.provider" if field.startswith("config") else "provider",
                f"model {model.id} is of provider {model.provider!r}, not {provider!r}",
            )
        return model

    async def prepare(self, identity: Identity, config: BaseConfig) -> Program:
        await self.check_access(identity, config)
        return Program()

    def plan(self, config: BaseConfig) -> list[PlannedPoint]:
        c = _benchmark(config)
        return [PlannedPoint(hyperparameters={"model": reference}, seed=c.seed) for reference in c.models]

    async def execute(self, config: BaseConfig, context: RunContext) -> RunResult:
        c = _benchmark(config)
        run = context.run
        identity = owner_identity(run.owner, run.experiment_id)
        try:
            model = await self.model(identity, str(run.hyperparameters.get("model", "")), c.provider, "model")
            items = await self.datasets.items(identity, c.dataset)
        except AppError as exc:
            context.log(LogLevel.ERROR, f"[appliance] {exc.detail}")
            return RunResult(status=RunStatus.FAILED, reason="not_found", error=exc.detail)
        chosen = [(p, items[p]) for p in sample_positions(len(items), c.sample_size, c.seed)]
        if not await context.mark_started(None):
            return RunResult(status=RunStatus.FAILED, reason="stopped", error="[appliance] stopped before it started")
        result = await self.store.begin(
            experiment_id=run.experiment_id,
            run_id=run.id,
            owner=run.owner,
            dataset=c.dataset,
            provider=model.provider,
            model=model_label(model),
            total=len(chosen),
            now=utc_now(),
        )
        context.log(
            LogLevel.INFO,
            f"[appliance] benchmark result {result.id}: {len(chosen)} items of {c.dataset} asked to {model.id}",
        )
        transcripts = ResultItems(self.store, context, result.id, len(chosen))
        started = time.monotonic()
        await self.asker.ask_all(
            identity, model, chosen, c.parameters, c.cache, c.concurrency, transcripts.add, lambda: context.stopping
        )
        await transcripts.flush()
        return await finish(self.store, context, result.id, transcripts.tally, started)


class Tally:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.correct = 0
        self.errors = 0
        self.tokens = 0
        self.first_error: str | None = None

    def add(self, transcript: ItemTranscript) -> None:
        self.done += 1
        self.correct += transcript.correct
        self.tokens += transcript.tokens
        if transcript.error is not None:
            self.errors += 1
            self.first_error = self.first_error or transcript.error


class ResultItems:
    """A result's item transcripts as they come: tallied, reported as the run's progress,
    and stored FLUSH_EVERY at a time (`flush` stores the rest)."""

    def __init__(self, store: BenchmarkStore, context: RunContext, result_id: int, total: int) -> None:
        self.tally = Tally(total)
        self._store = store
        self._context = context
        self._result_id = result_id
        self._unsaved: list[tuple[int, ItemTranscript]] = []

    async def add(self, position: int, transcript: ItemTranscript) -> None:
        self.tally.add(transcript)
        self._unsaved.append((position, transcript))
        self._context.progress(self.tally.done / self.tally.total)
        if len(self._unsaved) >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        rows = self._unsaved[:]
        self._unsaved.clear()  # before the write: items that come meanwhile go in the next one
        await self._store.add_items(self._result_id, rows)


async def finish(store: BenchmarkStore, context: RunContext, result_id: int, tally: Tally, started: float) -> RunResult:
    """The result and run ended as the tally says (stopped, every call failed, or done)."""
    elapsed_ms = round((time.monotonic() - started) * 1000)
    if context.stopping:
        await store.finish(
            result_id,
            status="failed",
            correct=tally.correct,
            errors=tally.errors,
            total_time_ms=elapsed_ms,
            total_tokens=tally.tokens,
            now=utc_now(),
            error="stopped",
        )
        return RunResult(status=RunStatus.FAILED, reason="stopped", error="[appliance] stopped")
    all_failed = tally.total > 0 and tally.errors == tally.total
    accuracy = tally.correct / tally.total if tally.total else 0.0
    context.metrics(
        {
            "accuracy": accuracy,
            "correct": tally.correct,
            "total": tally.total,
            "errors": tally.errors,
            "total_tokens": tally.tokens,
            "total_time_ms": elapsed_ms,
        },
        None,
    )
    error = f"every model call failed: {tally.first_error}" if all_failed else None
    await store.finish(
        result_id,
        status="failed" if all_failed else "completed",
        correct=tally.correct,
        errors=tally.errors,
        total_time_ms=elapsed_ms,
        total_tokens=tally.tokens,
        now=utc_now(),
        error=error,
    )
    if tally.errors:
        context.log(LogLevel.WARNING, f"[appliance] {tally.errors} item(s) got no answer: {tally.first_error}")
    if all_failed:
        return RunResult(status=RunStatus.FAILED, reason="provider_error", error=error)
    return RunResult(status=RunStatus.COMPLETED)


def model_label(model: Model) -> str:
    """The model as results show it: the provider's name of it when the entry has one."""
    named = model.config.get("model")
    return named if isinstance(named, str) and named else model.name


def _benchmark(config: BaseConfig) -> BenchmarkConfig:
    if not isinstance(config, BenchmarkConfig):
        raise TypeError(f"the benchmark runner got a {type(config).__name__}")
    return config
