"""Prompt optimisation (POST /api/v1/optimize): what a request asks and what it answers.

The document's request (`prompt`, `iterations`, `strategy`) and response
(`original_score`, `optimized_score`, `iterations`, `suggestions`,
`optimized_template`), and what the appliance adds: the suite the scores are of, the
models, and every candidate tried with the suite run that scored it.
"""

from __future__ import annotations

import msgspec

from appliance.core.llm.calls import Parameters

STRATEGIES = ("iterative",)
MAX_ITERATIONS = 10
MAX_CANDIDATES = 4


class OptimizeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prompt: str | None = None
    iterations: int = 3
    strategy: str = "iterative"
    # Default: the one suite whose prompt is `prompt` (several, or none: name it).
    suite: str | None = None
    version: str | None = None  # of the prompt; default its latest
    suite_version: str | None = None
    model: str | None = None  # the model the suite runs on (as POST /api/v1/suite)
    # The model that proposes templates: a registry entry; default the setting
    # judge_model, else the model under evaluation.
    judge_model: str | None = None
    candidates: int = 1  # templates the judge proposes per iteration
    trials: int = 1
    parameters: Parameters | None = None  # of the suite's calls
    cases: list[str] | None = None  # only these case ids
    cache: bool = True


class Candidate(msgspec.Struct, kw_only=True):
    """One template tried: its score is the suite's `avg_score` under it."""

    iteration: int  # 0: the original template
    template: str
    score: float | None = None  # None: not scored (see `error`)
    pass_rate: float | None = None
    run_id: str | None = None  # the suite run that scored it: GET /api/v1/suite-runs/{id}
    kept: bool = False  # it became the best so far
    suggestions: list[str] = msgspec.field(default_factory=list)
    error: str | None = None  # why it was not scored (the judge's answer held no usable template)


class OptimizeResult(msgspec.Struct, kw_only=True):
    original_score: float
    optimized_score: float
    iterations: int  # iterations run (fewer than asked when a template scored 1)
    suggestions: list[str]  # the judge's, behind the improvements kept, in order
    optimized_template: str  # the original when nothing scored higher
    prompt: str = ""
    prompt_version: str = ""
    suite: str = ""
    model: str = ""
    judge_model: str = ""
    strategy: str = "iterative"
    original_pass_rate: float = 0.0
    optimized_pass_rate: float = 0.0
    original_run_id: str = ""
    optimized_run_id: str = ""
    improved: bool = False
    candidates: list[Candidate] = msgspec.field(default_factory=list)
    judge_tokens_used: int = 0
    duration_ms: int = 0
