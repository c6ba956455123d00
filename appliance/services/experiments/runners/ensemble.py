"""Type `ensemble`: several models asked the items of a dataset, their answers voted on
(experiments-api.md's example: `models`, `voting_strategy`, `dataset`, `sample_size`).

Everything `benchmark` takes (runners/benchmark.py), and `voting_strategy`: `majority`
(each model's extracted answer one vote) or `weighted` (each vote counts its model's
weight). The weights are `weights` (model reference -> a number >= 0), or, with
`held_out` (`{"dataset": ..., "sample_size": ..., "seed": ...}`, a split kept apart
from the one evaluated), each model's accuracy on that split, measured first in the same
run. Votes are counted as core/llm/voting.py says (ties to the model listed first).
Code datasets are not voted on (their answers are programs, judged by running them).

One run, whose result (provider `ensemble`) lands on the leaderboard beside the single
models; each item's transcript names every member's answer.
"""

from __future__ import annotations

import asyncio
import math
import time

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import AppError
from appliance.core.experiments import JsonObject, LogLevel, RunStatus
from appliance.core.identity import Identity
from appliance.core.llm.benchmarks import ItemTranscript, answer_correct, messages_for, sample_positions
from appliance.core.llm.datasets import DatasetItem, Kind, check_name
from appliance.core.llm.voting import VotingStrategy, accuracy_weights, vote
from appliance.core.models import Model
from appliance.services.experiments.config import BaseConfig, decode_config, invalid
from appliance.services.experiments.runners.base import Program, RunContext, RunResult
from appliance.services.experiments.runners.benchmark import (
    BenchmarkConfig,
    BenchmarkRunner,
    ResultItems,
    Tally,
    check_benchmark_fields,
    finish,
    model_label,
    with_accuracy_objective,
)
from appliance.services.experiments.search import PlannedPoint
from appliance.services.llm.benchmarking import in_pool, owner_identity


class HeldOut(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    dataset: str
    sample_size: int | None = None
    seed: int = 0


class EnsembleConfig(BenchmarkConfig, kw_only=True, forbid_unknown_fields=True):
    voting_strategy: VotingStrategy = VotingStrategy.MAJORITY
    weights: dict[str, float] | None = None
    held_out: HeldOut | None = None


class EnsembleRunner:
    type = "ensemble"
    runs_planned = True

    def __init__(self, benchmark: BenchmarkRunner) -> None:
        # The benchmark runner's datasets, model choice, asker, store and limits.
        self._bench = benchmark

    def validate(self, raw: JsonObject) -> EnsembleConfig:
        config = decode_config(raw, EnsembleConfig)
        check_benchmark_fields(config, self._bench.limits)
        if len(config.models) < 2:
            raise invalid("config.models", "config.models: an ensemble votes over at least 2 models")
        weighted = config.voting_strategy is VotingStrategy.WEIGHTED
        if not weighted and (config.weights is not None or config.held_out is not None):
            raise invalid("config.voting_strategy", "config.weights and config.held_out are for weighted voting")
        if weighted and (config.weights is None) == (config.held_out is None):
            raise invalid(
                "config.weights",
                "weighted voting takes its weights from config.weights or from accuracy on config.held_out "
                "(one of the two)",
            )
        if config.weights is not None:
            if set(config.weights) != set(config.models):
                raise invalid("config.weights", "config.weights must give a weight to each of config.models, by name")
            values = list(config.weights.values())
            if not all(math.isfinite(w) and w >= 0 for w in values) or not any(w > 0 for w in values):
                raise invalid("config.weights", "config.weights must be numbers >= 0, not all 0")
        if config.held_out is not None:
            problem = check_name(config.held_out.dataset)
            if problem:
                raise invalid("config.held_out.dataset", f"config.held_out.dataset: {problem}")
            if config.held_out.dataset == config.dataset:
                raise invalid(
                    "config.held_out.dataset", "config.held_out must be another dataset than the one voted on"
                )
            if config.held_out.sample_size is not None and config.held_out.sample_size < 1:
                raise invalid("config.held_out.sample_size", "config.held_out.sample_size must be at least 1")
        return with_accuracy_objective(config)

    async def check_access(self, identity: Identity, config: BaseConfig) -> None:
        c = _ensemble(config)
        await self._bench.check_access(identity, config)
        dataset = await self._bench.datasets.get(identity, c.dataset)
        if dataset.kind is Kind.CODE:
            raise invalid("config.dataset", f"dataset {c.dataset!r} is code: its answers are run, not voted on")
        if c.held_out is not None:
            await self._bench.datasets.get(identity, c.held_out.dataset)

    async def prepare(self, identity: Identity, config: BaseConfig) -> Program:
        await self.check_access(identity, config)
        return Program()

    def plan(self, config: BaseConfig) -> list[PlannedPoint]:
        c = _ensemble(config)
        return [PlannedPoint(hyperparameters={"voting_strategy": c.voting_strategy.value}, seed=c.seed)]

    async def execute(self, config: BaseConfig, context: RunContext) -> RunResult:
        c = _ensemble(config)
        run = context.run
        identity = owner_identity(run.owner, run.experiment_id)
        try:
            models = [
                await self._bench.model(identity, ref, c.provider, f"config.models.{i}")
                for i, ref in enumerate(c.models)
            ]
            items = await self._bench.datasets.items(identity, c.dataset)
            held = await self._bench.datasets.items(identity, c.held_out.dataset) if c.held_out else []
        except AppError as exc:
            context.log(LogLevel.ERROR, f"[appliance] {exc.detail}")
            return RunResult(status=RunStatus.FAILED, reason="not_found", error=exc.detail)
        if not await context.mark_started(None):
            return RunResult(status=RunStatus.FAILED, reason="stopped", error="[appliance] stopped before it started")
        weights = await self._weights(c, identity, models, held, context)
        shown = ", ".join(f"{ref} {w:.3g}" for ref, w in zip(c.models, weights, strict=True))
        context.log(LogLevel.INFO, f"[appliance] {c.voting_strategy.value} vote, weights: {shown}")
        chosen = [(p, items[p]) for p in sample_positions(len(items), c.sample_size, c.seed)]
        result = await self._bench.store.begin(
            experiment_id=run.experiment_id,
            run_id=run.id,
            owner=run.owner,
            dataset=c.dataset,
            provider="ensemble",
            model=f"{c.voting_strategy.value} vote of {', '.join(model_label(m) for m in models)}",
            total=len(chosen),
            now=utc_now(),
        )
        context.log(LogLevel.INFO, f"[appliance] benchmark result {result.id}: {len(chosen)} items of {c.dataset}")
        transcripts = ResultItems(self._bench.store, context, result.id, len(chosen))

        async def one(entry: tuple[int, DatasetItem]) -> None:
            position, item = entry
            members = await asyncio.gather(
                *(self._bench.asker.ask(identity, m, item, c.parameters, c.cache) for m in models)
            )
            await transcripts.add(position, voted(item, c.models, list(members), weights))

        started = time.monotonic()
        await in_pool(chosen, c.concurrency, one, lambda: context.stopping)
        await transcripts.flush()
        return await finish(self._bench.store, context, result.id, transcripts.tally, started)

    async def _weights(
        self, c: EnsembleConfig, identity: Identity, models: list[Model], held: list[DatasetItem], context: RunContext
    ) -> list[float]:
        if c.voting_strategy is VotingStrategy.MAJORITY:
            return [1.0] * len(models)
        if c.weights is not None:
            return [c.weights[ref] for ref in c.models]
        assert c.held_out is not None
        split = [(p, held[p]) for p in sample_positions(len(held), c.held_out.sample_size, c.held_out.seed)]
        accuracies = []
        for ref, model in zip(c.models, models, strict=True):
            tally = Tally(len(split))

            async def count(position: int, transcript: ItemTranscript, tally: Tally = tally) -> None:
                tally.add(transcript)

            await self._bench.asker.ask_all(
                identity, model, split, c.parameters, c.cache, c.concurrency, count, lambda: context.stopping
            )
            accuracy = tally.correct / tally.total if tally.total else 0.0
            accuracies.append(accuracy)
            context.log(
                LogLevel.INFO,
                f"[appliance] held-out {c.held_out.dataset}: {ref} {tally.correct}/{tally.total} right",
            )
        return accuracy_weights(accuracies)


def voted(item: DatasetItem, refs: list[str], members: list[ItemTranscript], weights: list[float]) -> ItemTranscript:
    answers = [m.extracted if m.error is None else None for m in members]
    winner = vote(answers, weights, item.kind)
    failed = [m.error for m in members if m.error is not None]
    return ItemTranscript(
        item_id=item.id,
        messages=messages_for(item),
        extracted=winner,
        expected=item.answer,
        correct=answer_correct(item, winner),
        latency_ms=max((m.latency_ms for m in members), default=0.0),
        tokens=sum(m.tokens for m in members),
        error=f"every model's call failed: {failed[0]}" if len(failed) == len(members) else None,
        details={
            ref: (m.extracted or "(no answer)") if m.error is None else "(failed)"
            for ref, m in zip(refs, members, strict=True)
        },
    )


def _ensemble(config: BaseConfig) -> EnsembleConfig:
    if not isinstance(config, EnsembleConfig):
        raise TypeError(f"the ensemble runner got a {type(config).__name__}")
    return config
