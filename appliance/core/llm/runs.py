"""Evaluations and suite runs: what a request asks, what it answers, and the transcript
kept of every case and trial (GET /api/v1/suite-runs/{id})."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from appliance.core.clock import utc_now
from appliance.core.llm.calls import ChatMessage, Parameters
from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.core.llm.prompts import Turn

RUN_ID_PREFIX = "srun_"


def new_run_id() -> str:
    return f"{RUN_ID_PREFIX}{utc_now().strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(4)}"


class EvaluateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/evaluate: the document's prompt, input and evaluators, and what the
    appliance adds (all optional)."""

    prompt: str | None = None
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    evaluators: list[GraderSpec] = msgspec.field(default_factory=list)
    version: str | None = None  # of the prompt; default its latest
    model: str | None = None  # a model registry entry: id, name or the provider's model name
    parameters: Parameters | None = None
    turns: list[Turn] = msgspec.field(default_factory=list)
    threshold: float | None = None
    cache: bool = True


class SuiteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/suite."""

    prompt: str | None = None  # default: the suite's own prompt
    suite: str | None = None
    trials: int = 1
    k: int = 1  # pass@k's k, at most `trials`
    version: str | None = None  # of the suite
    prompt_version: str | None = None
    model: str | None = None
    parameters: Parameters | None = None
    cases: list[str] | None = None  # only these case ids
    cache: bool = True
    # False: answer at once with the run's id; GET /api/v1/suite-runs/{id} follows it.
    wait: bool = True


class EvaluationResult(msgspec.Struct, kw_only=True):
    """The document's evaluate response, and the run it is kept as."""

    passed: bool
    score: float
    response: str
    evaluations: list[GraderResult]
    latency_ms: int
    tokens_used: int
    id: str
    model: str  # the registry entry's id
    cached: bool = False
    cost: float | None = None
    judge_tokens_used: int = 0


class CaseResult(msgspec.Struct, kw_only=True):
    case_id: str
    passed: bool  # more than half of its trials passed
    score: float  # the mean over its trials
    pass_at_k: float
    pass_hat_k: float  # pass^k: all of k trials pass
    trials: int
    passed_trials: int
    errors: int = 0  # trials the model's server failed (not counted in the above)
    latency_ms: int = 0  # mean over its trials
    tokens_used: int = 0
    error: str | None = None


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SuiteResult(msgspec.Struct, kw_only=True):
    """The document's suite response, and the run it is kept as."""

    suite: str
    total_cases: int
    passed_cases: int
    failed_cases: int
    pass_rate: float
    avg_score: float
    results: list[CaseResult]
    id: str
    status: str = RunStatus.COMPLETED.value
    prompt: str = ""
    model: str = ""
    trials: int = 1
    k: int = 1
    pass_at_k: float = 0.0  # the mean over cases
    pass_hat_k: float = 0.0
    latency_ms: int = 0  # mean per call
    tokens_used: int = 0
    cost: float | None = None
    errors: int = 0
    duration_ms: int = 0


class Exchange(msgspec.Struct, kw_only=True):
    """One call in a transcript: what was sent and what came back."""

    messages: list[ChatMessage]
    output: str
    latency_ms: float
    tokens_in: int
    tokens_out: int
    model: str = ""
    cost: float | None = None
    cached: bool = False
    attempts: int = 1
    temperature: float | None = None
    seed: int | None = None


class Transcript(msgspec.Struct, kw_only=True):
    case_id: str
    trial: int
    passed: bool
    score: float
    output: str
    exchanges: list[Exchange]
    graders: list[GraderResult]
    error: str | None = None


class Progress(msgspec.Struct, kw_only=True):
    done: int  # trials graded
    total: int  # cases x trials
    answered: int = 0  # trials the model answered (while the run is live)


class SuiteRun(msgspec.Struct, kw_only=True):
    """A kept run (an evaluate call is a run of kind `evaluate`, one case)."""

    id: str
    kind: str  # "suite" or "evaluate"
    owner: str
    status: str
    prompt: str
    suite: str | None
    model: str
    created_at: datetime
    finished_at: datetime | None = None
    progress: Progress
    error: str | None = None
    suite_result: SuiteResult | None = None
    evaluation: EvaluationResult | None = None
