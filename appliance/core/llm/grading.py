"""Graders as suites and requests name them, what each answers, and how answers add up:
a case's weighted score and pass, and over trials pass@k and pass^k.

Grader types are snake_case (`llm_judge`, as llm-eval-api.md writes it); promptfoo's
names are accepted for the same graders (`llm-rubric`, `starts-with`, `is-json`, ...),
and a `not-`/`not_` prefix on any of them inverts it, as in promptfoo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from appliance.core.errors import ValidationError


class GraderSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One grader of a case or of a request's `evaluators`. Which fields a type reads is
    in docs/llm-eval-api.md; string fields may use the case's `{{.variables}}`."""

    type: str
    # What is looked for: the document's `expected`, or promptfoo's `value`.
    expected: Any = None
    value: Any = None
    # llm_judge: the rubric, as the document's `criteria` or promptfoo's `rubric`/`value`.
    criteria: str | None = None
    rubric: str | None = None
    weight: float = 1.0
    # similarity, llm_judge, python: the score at which the grader passes.
    threshold: float | None = None
    negate: bool = False
    method: str | None = None  # similarity: token, character or embedding
    schema: dict[str, Any] | None = None  # json_schema, is_json, contains_json
    model: str | None = None  # llm_judge's judge, similarity's embedding model
    # code: the model's code runs in a sandbox with `prefix` before it and `tests` after
    # it, then `check(entry_point)` when an entry point is named.
    tests: str | None = None
    entry_point: str | None = None
    prefix: str | None = None
    language: str | None = None
    timeout: float | None = None
    extract_code: bool = True
    code: str | None = None  # python: the custom grader's source
    description: str | None = None

    @property
    def target(self) -> Any:
        return self.expected if self.expected is not None else self.value


class GraderResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    passed: bool
    score: float
    message: str
    weight: float = 1.0
    # What the grader saw or said beyond its message: a judge's reasoning, a program's
    # output; shown in transcripts.
    reasoning: str = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)


# --- names ---------------------------------------------------------------------------------

GRADER_TYPES = (
    "contains",
    "icontains",
    "contains_all",
    "contains_any",
    "icontains_all",
    "icontains_any",
    "equals",
    "regex",
    "starts_with",
    "is_json",
    "contains_json",
    "json_schema",
    "similarity",
    "llm_judge",
    "code",
    "python",
)
# promptfoo's names (after '-' became '_') and other spellings, for the types above.
ALIASES = {
    "similar": "similarity",
    "levenshtein": "similarity",
    "llm_rubric": "llm_judge",
    "model_graded_closedqa": "llm_judge",
    "g_eval": "llm_judge",
    "code_execution": "code",
    "execute_code": "code",
    "exact": "equals",
    "exact_match": "equals",
    "startswith": "starts_with",
    "isjson": "is_json",
}
# Names whose graders would run outside a sandbox or need a service this appliance does
# not have: refused with a reason rather than skipped.
UNSUPPORTED = {
    "javascript": "JavaScript assertions would run inside the server; write a `python` grader (it runs in a sandbox)",
    "webhook": "webhook assertions call out of the appliance; write a `python` grader",
    "moderation": "moderation needs OpenAI's moderation API; use llm_judge with a rubric",
}
# What the type `levenshtein` means when no method is given.
DEFAULT_METHODS = {"levenshtein": "character"}


def normalize_type(name: str) -> tuple[str, bool, str | None]:
    """(canonical type, negated, default method) of a grader name; ValidationError for a
    name no grader has."""
    text = name.strip().lower().replace("-", "_")
    negate = text.startswith("not_")
    if negate:
        text = text[len("not_") :]
    if text in UNSUPPORTED:
        raise ValidationError(f"grader type {name!r} is not supported: {UNSUPPORTED[text]}")
    canonical = ALIASES.get(text, text)
    if canonical not in GRADER_TYPES:
        raise ValidationError(
            f"unknown grader type {name!r}; known: {', '.join(GRADER_TYPES)} "
            "(promptfoo's names such as llm-rubric, starts-with, is-json, similar are accepted too)"
        )
    return canonical, negate, DEFAULT_METHODS.get(text)


def canonical_spec(spec: GraderSpec) -> GraderSpec:
    """`spec` with its type canonical and any `not-` prefix turned into `negate`."""
    canonical, negate, method = normalize_type(spec.type)
    return msgspec.structs.replace(spec, type=canonical, negate=spec.negate != negate, method=spec.method or method)


# --- adding up -----------------------------------------------------------------------------


def combine(results: Sequence[GraderResult], threshold: float | None) -> tuple[bool, float]:
    """A case's (passed, score): the score is the weighted mean of its graders' scores
    (weight 0: reported, not counted); without a threshold every counted grader must
    pass, with one the score must reach it. No grader: passed, score 1."""
    counted = [r for r in results if r.weight > 0]
    if not counted:
        return True, 1.0
    total = sum(r.weight for r in counted)
    score = sum(r.weight * r.score for r in counted) / total
    if threshold is None:
        return all(r.passed for r in counted), score
    return score >= threshold - 1e-12, score


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k (Chen et al. 2021): the chance that at least one
    of k trials drawn without replacement from n, of which c passed, passes:
    1 - C(n-c, k) / C(n, k)."""
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: the chance that all k trials drawn from n, of which c passed, pass:
    C(c, k) / C(n, k)."""
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_counts(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
