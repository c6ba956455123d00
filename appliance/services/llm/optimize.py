"""PromptOptimizer: POST /api/v1/optimize, iterative prompt improvement with a judge model.

The original template is scored on the suite; then each iteration shows the judge the
best template so far with the cases it fails and asks for `candidates` improved
templates; each is scored on the suite and the best is kept (a candidate must score
strictly higher to replace it). A score is the suite's `avg_score` as POST
/api/v1/suite computes it: each candidate runs as a real suite run (the same plans,
model calls and graders, kept and visible in GET /api/v1/suite-runs while it runs),
only its prompt is the candidate instead of a library version. It stops early once a
template scores 1. Everything a request can get wrong is checked before the first
model call; a judge whose answer holds no usable template costs its candidate, not the
request; a judge or model server that fails (after its retries) fails the request
with PROVIDER_ERROR or TIMEOUT, the suite runs made so far kept.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

from appliance.core.errors import ValidationError, invalid_fields
from appliance.core.identity import EXECUTE, Identity
from appliance.core.llm.calls import Parameters
from appliance.core.llm.optimize import (
    MAX_CANDIDATES,
    MAX_ITERATIONS,
    STRATEGIES,
    Candidate,
    OptimizeRequest,
    OptimizeResult,
)
from appliance.core.llm.prompts import Prompt, Suite
from appliance.core.llm.runs import SuiteRequest, SuiteResult
from appliance.services.access.auth import require_permission
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.evaluate import LlmEvaluationService
from appliance.services.llm.keys import provider_key
from appliance.services.llm.optimize_judge import (
    Failure,
    Proposal,
    Tried,
    failure_of,
    judge_messages,
    proposal_problem,
    read_proposal,
)
from appliance.store.llm_runs import LlmRunStore

log = logging.getLogger(__name__)

FAILURES_SHOWN = 8
TRIED_SHOWN = 6
PERFECT = 1.0 - 1e-9


class _Scored(msgspec.Struct, kw_only=True):
    template: str
    result: SuiteResult


class PromptOptimizer:
    def __init__(
        self, llm: LlmEvaluationService, calls: ModelCalls, choice: ModelChoice, runs: LlmRunStore, max_trials: int
    ) -> None:
        self._llm = llm
        self._calls = calls
        self._choice = choice
        self._runs = runs
        self._max_trials = max_trials

    async def optimize(self, identity: Identity, request: OptimizeRequest) -> OptimizeResult:
        require_permission(identity, EXECUTE)
        _check_request(request, self._max_trials)
        assert request.prompt is not None
        prompt = await self._llm.library.prompt(request.prompt, request.version)
        if prompt.messages:
            raise ValidationError(
                f"prompt {prompt.name} {prompt.version} is a chat prompt of messages: optimisation rewrites a text "
                "`template`",
                details={"field": "prompt", "reason": "chat prompt"},
            )
        suite = await self._suite_for(identity, request)
        model = await self._choice.model_for(identity, request.model, suite.model)
        judge = await self._choice.judge_for(identity, request.judge_model, model)
        provider_key(self._calls.endpoint(judge))  # a missing key is said now, not after the first suite run
        began = time.monotonic()
        suite_request = SuiteRequest(
            prompt=prompt.name,
            suite=suite.name,
            version=suite.version,
            trials=request.trials,
            model=request.model,
            parameters=request.parameters,
            cases=request.cases,
            cache=request.cache,
        )
        # The original first, as a suite run of the library's prompt: every check of a
        # suite request is made before its first call.
        original = await self._llm.run_suite(identity, suite_request, prompt=prompt)
        inputs = {case.id: case.input for case in suite.cases}
        first = Candidate(
            iteration=0,
            template=prompt.template,
            score=original.avg_score,
            pass_rate=original.pass_rate,
            run_id=original.id,
            kept=True,
        )
        history = [first]
        best = _Scored(template=prompt.template, result=original)
        kept_suggestions: list[str] = []
        judge_tokens = 0
        done = 0
        tag = f"optimize {prompt.name} on {suite.name}"
        log.info("%s: original template scored %.4f (run %s)", tag, original.avg_score, original.id)
        for iteration in range(1, request.iterations + 1):
            if best.result.avg_score >= PERFECT:
                break
            done = iteration
            failures = await self._failures(best.result, inputs)
            for number in range(request.candidates):
                messages = judge_messages(best.template, best.result.avg_score, failures, _tried(history))
                answer = await self._calls.complete(
                    judge,
                    messages,
                    Parameters(temperature=0.8) if request.candidates > 1 else None,
                    trial=iteration * MAX_CANDIDATES + number,
                    use_cache=request.cache,
                )
                judge_tokens += answer.tokens
                candidate, scored = await self._try(
                    identity, suite_request, prompt, best.template, history, answer.text
                )
                candidate.iteration = iteration
                history.append(candidate)
                if scored is not None and scored.avg_score > best.result.avg_score:
                    best = _Scored(template=candidate.template, result=scored)
                    candidate.kept = True
                    kept_suggestions += candidate.suggestions
                log.info(
                    "%s: iteration %d/%d, candidate %d: %s (best %.4f)",
                    tag,
                    iteration,
                    request.iterations,
                    number + 1,
                    candidate.error or f"scored {candidate.score:.4f}",
                    best.result.avg_score,
                )
        return OptimizeResult(
            original_score=original.avg_score,
            optimized_score=best.result.avg_score,
            iterations=done,
            suggestions=kept_suggestions,
            optimized_template=best.template,
            prompt=prompt.name,
            prompt_version=prompt.version,
            suite=suite.name,
            model=original.model,
            judge_model=judge.id,
            strategy=request.strategy,
            original_pass_rate=original.pass_rate,
            optimized_pass_rate=best.result.pass_rate,
            original_run_id=original.id,
            optimized_run_id=best.result.id,
            improved=best.result.id != original.id,
            candidates=history,
            judge_tokens_used=judge_tokens,
            duration_ms=round((time.monotonic() - began) * 1000),
        )

    async def _suite_for(self, identity: Identity, request: OptimizeRequest) -> Suite:
        if request.suite:
            return await self._llm.library.suite(request.suite, request.suite_version)
        using = [s.name for s in await self._llm.library.list_suites(identity) if s.prompt == request.prompt]
        if len(using) == 1:
            return await self._llm.library.suite(using[0], request.suite_version)
        if not using:
            raise ValidationError(
                f"no suite runs the prompt {request.prompt}: name the suite to score it on with `suite`",
                details={"field": "suite", "reason": "missing"},
            )
        raise ValidationError(
            f"several suites run the prompt {request.prompt} ({', '.join(sorted(using))}): name one with `suite`",
            details={"field": "suite", "reason": "ambiguous"},
        )

    async def _failures(self, result: SuiteResult, inputs: dict[str, dict[str, Any]]) -> list[Failure]:
        """The worst cases of a run (lowest score first), each with its first failing trial."""
        failing = sorted((r for r in result.results if not r.passed or r.score < 1), key=lambda r: r.score)
        shown: list[Failure] = []
        for case in failing[:FAILURES_SHOWN]:
            transcripts, _ = await self._runs.transcripts(result.id, case.case_id, 100, 0)
            worst = min(transcripts, key=lambda t: (t.passed, t.score), default=None)
            if worst is not None:
                shown.append(failure_of(worst, inputs.get(case.case_id, {})))
        return shown

    async def _try(
        self,
        identity: Identity,
        suite_request: SuiteRequest,
        prompt: Prompt,
        current: str,
        history: list[Candidate],
        answer: str,
    ) -> tuple[Candidate, SuiteResult | None]:
        """The candidate in the judge's answer, and its suite result if it was scored."""
        proposal = read_proposal(answer)
        if not isinstance(proposal, Proposal):
            return Candidate(iteration=0, template="", error=proposal), None
        problem = proposal_problem(proposal.template, current, [c.template for c in history])
        candidate = Candidate(iteration=0, template=proposal.template, suggestions=proposal.suggestions)
        if problem is not None:
            candidate.error = problem
            return candidate, None
        trying = msgspec.structs.replace(prompt, template=proposal.template)
        try:
            result = await self._llm.run_suite(identity, suite_request, prompt=trying)
        except ValidationError as exc:  # e.g. a placeholder no case's input gives
            candidate.error = f"the template cannot run on the suite: {exc.detail}"
            return candidate, None
        candidate.score, candidate.pass_rate, candidate.run_id = result.avg_score, result.pass_rate, result.id
        return candidate, result


def _tried(history: list[Candidate]) -> list[Tried]:
    """The most recent candidates tried (the original aside: it is the template shown, or was)."""
    return [
        Tried(template=c.template, score=c.score, note=c.error or "") for c in history[1:][-TRIED_SHOWN:] if c.template
    ]


def _check_request(request: OptimizeRequest, max_trials: int) -> None:
    if not request.prompt:
        raise ValidationError("Missing required field: prompt", details={"field": "prompt", "reason": "missing"})
    problems: dict[str, list[str]] = {}
    if request.strategy not in STRATEGIES:
        problems["strategy"] = [f"unknown strategy {request.strategy!r}; known: {', '.join(STRATEGIES)}"]
    if not 1 <= request.iterations <= MAX_ITERATIONS:
        problems["iterations"] = [f"must be from 1 to {MAX_ITERATIONS}"]
    if not 1 <= request.candidates <= MAX_CANDIDATES:
        problems["candidates"] = [f"must be from 1 to {MAX_CANDIDATES}"]
    if not 1 <= request.trials <= max_trials:
        problems["trials"] = [f"must be from 1 to {max_trials} (setting llm_max_trials)"]
    if problems:
        raise invalid_fields(problems)
