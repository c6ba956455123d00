"""similarity: how close the output is to `expected`, from 0 to 1, passing at the
threshold (default 0.75, promptfoo's `similar`). Methods:

- `token`: the cosine of the two texts' word counts (words: lower-cased runs of letters
  and digits); word order does not count, repetition does a little;
- `character`: difflib's ratio, 2*M/T over matching characters (`levenshtein` names it);
- `embedding`: the cosine of the two texts' embeddings from an embedding model (the
  spec's `model`, or the setting `embedding_model`).

Without a method, `embedding` when an embedding model is configured, else `token`.
"""

from __future__ import annotations

import collections
import difflib
import math
import re

from appliance.core.errors import ValidationError
from appliance.core.llm.grading import GraderResult, GraderSpec
from appliance.core.llm.templates import as_text
from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.graders.base import GradingContext, result

DEFAULT_THRESHOLD = 0.75
METHODS = ("token", "character", "embedding")
WORD = re.compile(r"\w+")


def token_similarity(a: str, b: str) -> float:
    left = collections.Counter(WORD.findall(a.lower()))
    right = collections.Counter(WORD.findall(b.lower()))
    if not left or not right:
        return 1.0 if not left and not right else 0.0
    dot = sum(count * right[word] for word, count in left.items())
    return dot / (math.sqrt(sum(c * c for c in left.values())) * math.sqrt(sum(c * c for c in right.values())))


def character_similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0 else sum(x * y for x, y in zip(a, b, strict=False)) / norm


class Similarity:
    def __init__(self, calls: ModelCalls, choice: ModelChoice) -> None:
        self._calls = calls
        self._choice = choice

    def problems(self, spec: GraderSpec) -> list[str]:
        found: list[str] = []
        if spec.target is None or isinstance(spec.target, dict | list):
            found.append("similarity needs `expected` (or `value`): the text to compare with")
        if spec.method is not None and spec.method not in METHODS:
            found.append(f"method must be one of {', '.join(METHODS)}")
        if spec.method == "embedding" and not (spec.model or self._choice.has_embedding_model):
            found.append("method embedding needs an embedding model: name one with `model` or set embedding_model")
        return found

    async def grade(self, spec: GraderSpec, context: GradingContext) -> GraderResult:
        expected = as_text(spec.target)
        threshold = DEFAULT_THRESHOLD if spec.threshold is None else spec.threshold
        method = spec.method or ("embedding" if spec.model or self._choice.has_embedding_model else "token")
        if method == "embedding":
            model = await self._choice.embedding_model(context.identity, spec.model)
            if model is None:
                raise ValidationError("no embedding model is configured")
            left, right = await self._calls.embed(model, [context.output, expected])
            score = cosine(left, right)
        elif method == "character":
            score = character_similarity(context.output, expected)
        else:
            score = token_similarity(context.output, expected)
        passed = score >= threshold
        verb = "at least" if passed else "below"
        return result(
            spec,
            passed,
            score,
            f"{method} similarity {score:.3f}, {verb} the threshold {threshold:g}",
            details={"method": method, "similarity": score},
        )
