"""LlmEvaluationService: POST /api/v1/evaluate and /api/v1/suite, and the runs they
keep (GET /api/v1/suite-runs).

Everything a request can get wrong is checked before the first model call, and a bad
request stores nothing. A suite runs in two phases: every trial's conversation first
(at most `suite_concurrency` at once, each server's own limits beneath), then every
grading at once, so the programs of `code` and `python` graders reach the sandboxes
together and run as a few large batches. A trial whose model server failed (after
retries) is kept with its error and counted apart; a suite where every call failed
fails with the provider's error. A run is kept with one transcript per case and trial.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import msgspec

from appliance.core.clock import utc_now, utc_now_ms
from appliance.core.errors import AppError, Conflict, NotFound, ValidationError, invalid_fields
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.llm.calls import Parameters, ProviderFailed, ProviderTimedOut, parameter_problems
from appliance.core.llm.prompts import Case, ImportedSuites, Prompt, PromptfooImport, SuiteFields, SuiteSummary
from appliance.core.llm.runs import (
    EvaluateRequest,
    EvaluationResult,
    Progress,
    RunStatus,
    SuiteRequest,
    SuiteResult,
    SuiteRun,
    Transcript,
    new_run_id,
)
from appliance.core.models import Model
from appliance.services.access.auth import require_permission
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.graders.base import Grading
from appliance.services.llm.keys import provider_key
from appliance.services.llm.library import PromptLibrary
from appliance.services.llm.planning import Plan, plan_case, plan_cases
from appliance.services.llm.promptfoo import from_promptfoo
from appliance.services.llm.trials import Answer, case_result, converse, grade, judge_tokens, suite_numbers, tokens
from appliance.store.llm_runs import LlmRunStore

log = logging.getLogger(__name__)

T = TypeVar("T")
FLUSH_SECONDS = 1.0
GRADING_CONCURRENCY = 4096


class LlmLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_trials: int = 100
    suite_concurrency: int = 32


class SuiteRunView(msgspec.Struct, kw_only=True):
    """GET /api/v1/suite-runs/{id}: the run and a page of its transcripts."""

    run: SuiteRun
    transcripts: list[Transcript]
    total_transcripts: int


class _Live:
    """A running suite: what is done, and transcripts not yet stored."""

    def __init__(self, run: SuiteRun) -> None:
        self.run = run
        self.answered = 0
        self.graded = 0
        self.unsaved: list[tuple[int, Transcript]] = []


async def _pool(items: Iterable[T], concurrency: int, work: Callable[[T], Awaitable[None]]) -> None:
    """`work` on every item, at most `concurrency` at once."""
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class LlmEvaluationService:
    def __init__(
        self,
        library: PromptLibrary,
        choice: ModelChoice,
        calls: ModelCalls,
        grading: Grading,
        runs: LlmRunStore,
        limits: LlmLimits,
    ) -> None:
        self.library = library
        self._choice = choice
        self._calls = calls
        self._grading = grading
        self._runs = runs
        self._limits = limits
        self._live: dict[str, _Live] = {}
        self._tasks: dict[str, asyncio.Task[SuiteResult]] = {}

    async def start(self) -> None:
        failed = await self._runs.fail_interrupted("appliance_restart", utc_now())
        if failed:
            log.warning("%d suite run(s) were running when the appliance stopped: marked failed", failed)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._calls.close()

    # --- evaluate ---------------------------------------------------------------------------

    async def evaluate(self, identity: Identity, request: EvaluateRequest) -> EvaluationResult:
        require_permission(identity, EXECUTE)
        if not request.prompt:
            raise ValidationError("Missing required field: prompt", details={"field": "prompt", "reason": "missing"})
        _check_numbers(request.parameters, request.threshold)
        prompt = await self.library.prompt(request.prompt, request.version)
        case = Case(id="evaluate", input=request.input, turns=request.turns, threshold=request.threshold)
        plan = plan_case(prompt, case, 0, request.evaluators, self._grading, "")
        model = await self._runnable_model(identity, request.model, None)
        answer = await converse(self._calls, model, plan, request.parameters, 0, request.cache)
        transcript = await grade(self._grading, identity, model, answer, request.cache)
        result = EvaluationResult(
            passed=transcript.passed,
            score=transcript.score,
            response=transcript.output,
            evaluations=transcript.graders,
            latency_ms=round(sum(e.latency_ms for e in transcript.exchanges)),
            tokens_used=tokens(transcript),
            id=new_run_id(),
            model=model.id,
            cached=all(e.cached for e in transcript.exchanges),
            cost=sum(e.cost for e in transcript.exchanges if e.cost is not None) or None,
            judge_tokens_used=judge_tokens(transcript),
        )
        now = utc_now_ms()
        run = SuiteRun(
            id=result.id,
            kind="evaluate",
            owner=identity.owner,
            status=RunStatus.COMPLETED.value,
            prompt=prompt.name,
            suite=None,
            model=model.id,
            created_at=now,
            progress=Progress(done=0, total=1),
        )
        await self._runs.insert(run)
        await self._runs.add_transcripts(run.id, [(0, transcript)])
        await self._runs.finish(run.id, RunStatus.COMPLETED, now, 1, result)
        return result

    async def _runnable_model(self, identity: Identity, asked: str | None, suite_model: str | None) -> Model:
        model = await self._choice.model_for(identity, asked, suite_model)
        provider_key(self._calls.endpoint(model))  # a missing key is said now, not per case
        return model

    # --- suites -----------------------------------------------------------------------------

    async def run_suite(
        self, identity: Identity, request: SuiteRequest, *, prompt: Prompt | None = None
    ) -> SuiteResult:
        """With `wait` (the default) the finished result; else the running run at once.
        `prompt`: a prompt not in the library (an optimiser's candidate) instead of the
        request's."""
        require_permission(identity, EXECUTE)
        run, plans, model = await self._prepare(identity, request, prompt)
        await self._runs.insert(run)
        live = _Live(run)
        self._live[run.id] = live
        task = asyncio.create_task(self._execute(identity, live, plans, model, request), name=f"suite-{run.id}")
        self._tasks[run.id] = task

        def forget(done: asyncio.Task[SuiteResult]) -> None:
            self._tasks.pop(run.id, None)
            if not done.cancelled():
                done.exception()  # kept in the run; nobody may be waiting for it

        task.add_done_callback(forget)
        if not request.wait:
            return _running_result(run, request)
        return await asyncio.shield(task)

    async def _prepare(
        self, identity: Identity, request: SuiteRequest, given: Prompt | None = None
    ) -> tuple[SuiteRun, list[Plan], Model]:
        if not request.suite:
            raise ValidationError("Missing required field: suite", details={"field": "suite", "reason": "missing"})
        if not 1 <= request.trials <= self._limits.max_trials:
            raise invalid_fields({"trials": [f"must be from 1 to {self._limits.max_trials} (setting llm_max_trials)"]})
        if not 1 <= request.k <= request.trials:
            raise invalid_fields({"k": [f"must be from 1 to trials ({request.trials})"]})
        _check_numbers(request.parameters, None)
        suite = await self.library.suite(request.suite, request.version)
        prompt_name = request.prompt or suite.prompt
        version = request.prompt_version or (suite.prompt_version if prompt_name == suite.prompt else None)
        prompt = given or await self.library.prompt(prompt_name, version)
        cases = suite.cases
        if request.cases is not None:
            known = {c.id for c in cases}
            unknown = [c for c in request.cases if c not in known]
            if unknown or not request.cases:
                raise invalid_fields(
                    {
                        "cases": [
                            f"no such case in {suite.name}: {', '.join(unknown)}"
                            if unknown
                            else "name at least one case, or leave cases out"
                        ]
                    }
                )
            wanted = set(request.cases)
            cases = [c for c in cases if c.id in wanted]
        plans = plan_cases(prompt, cases, suite.evaluators, self._grading)
        model = await self._runnable_model(identity, request.model, suite.model)
        run = SuiteRun(
            id=new_run_id(),
            kind="suite",
            owner=identity.owner,
            status=RunStatus.RUNNING.value,
            prompt=prompt.name,
            suite=suite.name,
            model=model.id,
            created_at=utc_now_ms(),
            progress=Progress(done=0, total=len(plans) * request.trials),
        )
        return run, plans, model

    async def _execute(
        self, identity: Identity, live: _Live, plans: list[Plan], model: Model, request: SuiteRequest
    ) -> SuiteResult:
        began = time.monotonic()
        flusher = asyncio.create_task(self._flush_periodically(live))
        try:
            answers = await self._answers(live, plans, model, request)
            transcripts = await self._graded(identity, live, answers, model, request.cache)
            flusher.cancel()
            await self._flush(live)
            by_case: dict[int, list[Transcript]] = {}
            for answer, transcript in zip(answers, transcripts, strict=True):
                by_case.setdefault(answer.plan.index, []).append(transcript)
            results = [case_result(p.case_id, by_case[p.index], request.k) for p in plans]
            failed = [a for a in answers if a.error is not None]
            result = SuiteResult(
                suite=live.run.suite or "",
                results=results,
                id=live.run.id,
                prompt=live.run.prompt,
                model=model.id,
                trials=request.trials,
                k=request.k,
                duration_ms=round((time.monotonic() - began) * 1000),
                **suite_numbers(results, transcripts),
            )
            if len(failed) == len(answers):
                error = _provider_error(failed[0])
                error.details = {"run_id": live.run.id}
                await self._runs.finish(live.run.id, RunStatus.FAILED, utc_now(), live.graded, result, error.detail)
                raise error
            await self._runs.finish(live.run.id, RunStatus.COMPLETED, utc_now(), live.graded, result)
            return result
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(live, "cancelled"))
            raise
        except AppError:
            raise
        except Exception as exc:
            log.exception("suite run %s failed", live.run.id)
            await self._abandon(live, f"internal error: {type(exc).__name__}")
            raise
        finally:
            flusher.cancel()
            self._live.pop(live.run.id, None)

    async def _answers(self, live: _Live, plans: list[Plan], model: Model, request: SuiteRequest) -> list[Answer]:
        jobs = [(plan, trial) for plan in plans for trial in range(request.trials)]
        answers: dict[tuple[int, int], Answer] = {}

        async def ask(job: tuple[Plan, int]) -> None:
            plan, trial = job
            try:
                answer = await converse(self._calls, model, plan, request.parameters, trial, request.cache)
            except (ProviderFailed, ProviderTimedOut) as exc:
                answer = Answer(plan, trial)
                answer.error, answer.error_kind = exc.detail, type(exc)
            answers[(plan.index, trial)] = answer
            live.answered += 1

        await _pool(jobs, self._limits.suite_concurrency, ask)
        return [answers[(plan.index, trial)] for plan, trial in jobs]

    async def _graded(
        self, identity: Identity, live: _Live, answers: list[Answer], model: Model, use_cache: bool
    ) -> list[Transcript]:
        graded: list[Transcript | None] = [None] * len(answers)

        async def one(place: int) -> None:
            transcript = await grade(self._grading, identity, model, answers[place], use_cache)
            graded[place] = transcript
            live.unsaved.append((answers[place].plan.index, transcript))
            live.graded += 1

        await _pool(range(len(answers)), GRADING_CONCURRENCY, one)
        return [t for t in graded if t is not None]

    async def _flush(self, live: _Live) -> None:
        rows, live.unsaved = live.unsaved, []
        await self._runs.add_transcripts(live.run.id, rows)
        await self._runs.progress(live.run.id, live.graded)

    async def _flush_periodically(self, live: _Live) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self._flush(live)
            except Exception:
                log.exception("could not save the progress of %s", live.run.id)

    async def _abandon(self, live: _Live, reason: str) -> None:
        try:
            await self._flush(live)
            await self._runs.finish(live.run.id, RunStatus.FAILED, utc_now(), live.graded, None, reason)
        except Exception:
            log.exception("could not mark %s failed", live.run.id)

    async def cancel(self, identity: Identity, run_id: str) -> SuiteRun:
        require_permission(identity, EXECUTE)
        run = await self._visible(identity, run_id)
        task = self._tasks.get(run_id)
        if task is None or run.status != RunStatus.RUNNING.value:
            raise Conflict(
                f"run {run_id} is {run.status}; only a running suite can be cancelled", details={"status": run.status}
            )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return await self._visible(identity, run_id)

    # --- reading runs -----------------------------------------------------------------------

    async def _visible(self, identity: Identity, run_id: str) -> SuiteRun:
        run = await self._runs.get(run_id)
        if run is None or not identity.may_see(run.owner):
            raise NotFound(f"no suite run {run_id}")
        live = self._live.get(run_id)
        if live is not None:
            run.progress = Progress(done=live.graded, total=run.progress.total, answered=live.answered)
        return run

    async def get_run(
        self, identity: Identity, run_id: str, *, case_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> SuiteRunView:
        require_permission(identity, READ)
        if not 0 <= limit <= 10_000 or offset < 0:
            raise invalid_fields({"limit": ["must be from 0 to 10000; offset 0 or more"]})
        run = await self._visible(identity, run_id)
        transcripts, total = await self._runs.transcripts(run_id, case_id, limit, offset)
        return SuiteRunView(run=run, transcripts=transcripts, total_transcripts=total)

    async def list_runs(self, identity: Identity, limit: int = 50, offset: int = 0) -> tuple[list[SuiteRun], int]:
        require_permission(identity, READ)
        if not 1 <= limit <= 1000 or offset < 0:
            raise invalid_fields({"limit": ["must be from 1 to 1000; offset 0 or more"]})
        runs, total = await self._runs.list_runs(None if identity.is_admin else identity.owner, limit, offset)
        for run in runs:
            live = self._live.get(run.id)
            if live is not None:
                run.progress = Progress(done=live.graded, total=run.progress.total, answered=live.answered)
        return runs, total

    # --- the library, with graders checked --------------------------------------------------

    async def save_suite(self, identity: Identity, fields: SuiteFields) -> tuple[SuiteSummary, bool]:
        require_permission(identity, EXECUTE)
        await self._check_suite(fields)
        return await self.library.save_suite(identity, fields)

    async def _check_suite(self, fields: SuiteFields) -> None:
        """The graders of every case are checked as a run would check them (their types,
        the fields each needs, the variables their texts use)."""
        problems: dict[str, list[str]] = {}
        for index, case in enumerate(fields.cases):
            try:
                self._grading.prepare([*fields.evaluators, *case.evaluators], case.input, f"cases[{index}].evaluators")
            except ValidationError as exc:
                found = (exc.details or {}).get("fields")
                if isinstance(found, dict):
                    problems.update({str(k): [str(m) for m in v] for k, v in found.items() if isinstance(v, list)})
        if problems:
            raise invalid_fields(problems)

    async def import_promptfoo(self, identity: Identity, request: PromptfooImport) -> ImportedSuites:
        require_permission(identity, EXECUTE)
        prompts, suites, notes = from_promptfoo(request.name.strip(), request.config)
        for suite in suites:
            await self._check_suite(suite)
        made_prompts, made_suites = await self.library.save_suites(identity, prompts, suites)
        return ImportedSuites(suites=[s for s, _ in made_suites], prompts=[p for p, _ in made_prompts], notes=notes)


def _check_numbers(parameters: Parameters | None, threshold: float | None) -> None:
    problems = parameter_problems(parameters) if parameters is not None else {}
    if threshold is not None and not 0 <= threshold <= 1:
        problems["threshold"] = ["must be a number from 0 to 1"]
    if problems:
        raise invalid_fields(problems)


def _provider_error(answer: Answer) -> ProviderFailed | ProviderTimedOut:
    text = f"every call of the suite failed; the first: {answer.error}"
    return ProviderTimedOut(text) if answer.error_kind is ProviderTimedOut else ProviderFailed(text)


def _running_result(run: SuiteRun, request: SuiteRequest) -> SuiteResult:
    return SuiteResult(
        suite=run.suite or "",
        total_cases=run.progress.total // request.trials,
        passed_cases=0,
        failed_cases=0,
        pass_rate=0.0,
        avg_score=0.0,
        results=[],
        id=run.id,
        status=RunStatus.RUNNING.value,
        prompt=run.prompt,
        model=run.model,
        trials=request.trials,
        k=request.k,
    )
