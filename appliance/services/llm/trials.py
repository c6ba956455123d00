"""One trial of a case (its conversation with the model, then its grading) and how
trials add up into a case's and a suite's results.

A conversation is the plan's opening, then its turns; a user turn that follows a user
turn is preceded by the model's answer to the conversation so far, so a multi-turn case
replays a dialogue. The last answer is graded. Each trial is a separate call (its trial
number is part of the cache key, and offsets a configured seed)."""

from __future__ import annotations

import statistics
from typing import Any

from appliance.core.identity import Identity
from appliance.core.llm.calls import ChatMessage, Completion, Parameters
from appliance.core.llm.grading import combine, pass_at_k, pass_hat_k
from appliance.core.llm.runs import CaseResult, Exchange, Transcript
from appliance.core.models import Model
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.graders.base import Grading, GradingContext
from appliance.services.llm.planning import Plan, exchange


class Answer:
    """A trial after its calls: the conversation and exchanges, or the call's error."""

    def __init__(self, plan: Plan, trial: int) -> None:
        self.plan = plan
        self.trial = trial
        self.messages: list[ChatMessage] = []
        self.exchanges: list[Exchange] = []
        self.output = ""
        self.error: str | None = None
        self.error_kind: type[Exception] | None = None


async def converse(
    calls: ModelCalls, model: Model, plan: Plan, parameters: Parameters | None, trial: int, use_cache: bool
) -> Answer:
    """The model's answers of one trial; ProviderFailed/ProviderTimedOut propagate."""
    answer = Answer(plan, trial)
    messages = list(plan.opening)

    async def ask() -> Completion:
        completion = await calls.complete(model, messages, parameters, trial=trial, use_cache=use_cache)
        answer.exchanges.append(exchange(messages, completion))
        return completion

    for turn in plan.turns:
        if turn.role == "user" and messages and messages[-1].role == "user":
            messages.append(ChatMessage("assistant", (await ask()).text))
        messages.append(turn)
    answer.output = (await ask()).text
    answer.messages = messages
    return answer


async def grade(grading: Grading, identity: Identity, model: Model, answer: Answer, use_cache: bool) -> Transcript:
    plan = answer.plan
    if answer.error is not None:
        return Transcript(
            case_id=plan.case_id,
            trial=answer.trial,
            passed=False,
            score=0.0,
            output="",
            exchanges=answer.exchanges,
            graders=[],
            error=answer.error,
        )
    context = GradingContext(
        identity=identity,
        output=answer.output,
        values=plan.values,
        messages=answer.messages,
        case_id=plan.case_id,
        model=model,
        use_cache=use_cache,
    )
    results = await grading.grade(plan.graders, context)
    passed, score = combine(results, plan.threshold)
    return Transcript(
        case_id=plan.case_id,
        trial=answer.trial,
        passed=passed,
        score=round(score, 6),
        output=answer.output,
        exchanges=answer.exchanges,
        graders=results,
    )


def latency(transcript: Transcript) -> float:
    return sum(e.latency_ms for e in transcript.exchanges)


def tokens(transcript: Transcript) -> int:
    return sum(e.tokens_in + e.tokens_out for e in transcript.exchanges)


def judge_tokens(transcript: Transcript) -> int:
    return sum(int(g.details.get("tokens_used", 0)) for g in transcript.graders if g.type == "llm_judge")


def cost(transcripts: list[Transcript]) -> float | None:
    costs = [e.cost for t in transcripts for e in t.exchanges if e.cost is not None]
    return round(sum(costs), 10) if costs else None


def case_result(case_id: str, transcripts: list[Transcript], k: int) -> CaseResult:
    """pass@k and pass^k over the trials that got an answer (a trial the model's server
    failed is counted in `errors`, not as a failure of the model); k is capped at the
    trials that count."""
    counted = [t for t in transcripts if t.error is None]
    errors = len(transcripts) - len(counted)
    tokens_used = sum(tokens(t) for t in transcripts)
    if not counted:
        return CaseResult(
            case_id=case_id,
            passed=False,
            score=0.0,
            pass_at_k=0.0,
            pass_hat_k=0.0,
            trials=len(transcripts),
            passed_trials=0,
            errors=errors,
            tokens_used=tokens_used,
            error=transcripts[0].error if transcripts else None,
        )
    n, c = len(counted), sum(t.passed for t in counted)
    used_k = min(k, n)
    return CaseResult(
        case_id=case_id,
        passed=c * 2 > n,
        score=round(statistics.fmean(t.score for t in counted), 6),
        pass_at_k=pass_at_k(n, c, used_k),
        pass_hat_k=pass_hat_k(n, c, used_k),
        trials=len(transcripts),
        passed_trials=c,
        errors=errors,
        latency_ms=round(statistics.fmean(latency(t) for t in counted)),
        tokens_used=tokens_used,
    )


def suite_numbers(results: list[CaseResult], transcripts: list[Transcript]) -> dict[str, Any]:
    """The suite's figures from its cases' results (keyword arguments of SuiteResult)."""
    total = len(results)
    passed = sum(r.passed for r in results)
    answered = [t for t in transcripts if t.error is None]
    return {
        "total_cases": total,
        "passed_cases": passed,
        "failed_cases": total - passed,
        "pass_rate": round(passed / total, 6) if total else 0.0,
        "avg_score": round(statistics.fmean(r.score for r in results), 6) if results else 0.0,
        "pass_at_k": round(statistics.fmean(r.pass_at_k for r in results), 6) if results else 0.0,
        "pass_hat_k": round(statistics.fmean(r.pass_hat_k for r in results), 6) if results else 0.0,
        "latency_ms": round(statistics.fmean(latency(t) for t in answered)) if answered else 0,
        "tokens_used": sum(tokens(t) for t in transcripts),
        "cost": cost(transcripts),
        "errors": sum(r.errors for r in results),
    }
