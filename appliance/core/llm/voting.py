"""Voting of an ensemble: each model's extracted answer to an item is a vote; majority
counts them, weighted sums the models' weights. An answer that could not be extracted
(or a failed call) does not vote. A tie goes to the tied answer of the model listed
first, so the outcome does not depend on the order answers arrive in."""

from __future__ import annotations

import math
from enum import StrEnum

from appliance.core.llm.datasets import Kind


class VotingStrategy(StrEnum):
    MAJORITY = "majority"
    WEIGHTED = "weighted"


def ballot_key(kind: Kind, answer: str | None) -> str | None:
    """The form in which two answers that mean the same count as one."""
    if answer is None or not answer.strip():
        return None
    if kind is Kind.NUMBER:
        try:
            value = float(answer)
        except ValueError:
            return None
        return repr(value) if math.isfinite(value) else None
    if kind is Kind.TEXT:
        return " ".join(answer.strip().strip(".").lower().split())
    return answer.strip().upper()


def vote(answers: list[str | None], weights: list[float], kind: Kind) -> str | None:
    """The winning answer (as one of `answers` wrote it), or None when nobody voted.
    `answers[i]` is the answer of the model listed i-th, `weights[i]` its weight."""
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for place, (answer, weight) in enumerate(zip(answers, weights, strict=True)):
        key = ballot_key(kind, answer)
        if key is None:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        first.setdefault(key, place)
    if not totals:
        return None
    winner = max(totals, key=lambda key: (totals[key], -first[key]))
    return answers[first[winner]]


def accuracy_weights(accuracies: list[float]) -> list[float]:
    """Weights from accuracies on a held-out split: the accuracies themselves, or equal
    weights when every model scored 0 there."""
    if not any(a > 0 for a in accuracies):
        return [1.0] * len(accuracies)
    return list(accuracies)
