"""GET /api/v1/leaderboard: benchmark results on one dataset, ranked by accuracy.

One entry per model (provider and model name): its latest completed result on the dataset
(an ensemble is an entry of provider `ensemble`). Each accuracy comes with its 95% Wilson
score interval (Wilson, 1927), which stays inside [0, 1] and keeps its coverage on small
samples and at accuracies near 0 or 1, where the normal interval does not. Neighbours in
the ranking are compared on the items both answered (paired by item id) with McNemar's
test from the statistics engine (services/statistics: exact below 25 discordant items,
chi-square with continuity correction from there); a difference with p >= 0.05 (or no
discordant item at all) is not significant, and both entries say so.
"""

from __future__ import annotations

import math

import msgspec

from appliance.core.errors import AppError
from appliance.core.llm.benchmarks import BenchmarkResult
from appliance.core.statistics import GroupedValues, TestOptions, TestSpec, TestType
from appliance.services.statistics.engine import run_test

Z_95 = 1.959963984540054
ALPHA = 0.05
INTERVAL_METHOD = "Wilson score interval, 95%"
COMPARISON_METHOD = "McNemar's test on the items both results answered, paired by item id, alpha 0.05"


class NeighbourComparison(msgspec.Struct, kw_only=True):
    rank: int  # the next entry's rank
    model: str
    provider: str
    paired_items: int
    p_value: float
    significant: bool
    method: str


class LeaderboardEntry(msgspec.Struct, kw_only=True):
    rank: int
    model: str
    provider: str
    score: float
    accuracy: float
    latency_ms: int  # the run's mean wall time per item
    date: str | None
    confidence_interval: list[float]
    correct: int
    total: int
    id: int  # the benchmark result
    experiment_id: str
    vs_next: NeighbourComparison | None = None
    # Ranks of the neighbours (above, below) this entry does not differ from significantly.
    not_significantly_different_from: list[int] = msgspec.field(default_factory=list)


class Leaderboard(msgspec.Struct, kw_only=True):
    dataset: str
    entries: list[LeaderboardEntry]
    interval_method: str = INTERVAL_METHOD
    comparison_method: str = COMPARISON_METHOD


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def latest_per_model(results: list[BenchmarkResult]) -> list[BenchmarkResult]:
    latest: dict[tuple[str, str], BenchmarkResult] = {}
    for result in results:  # in id order: a later one replaces
        latest[(result.provider, result.model)] = result
    return list(latest.values())


def ranked(results: list[BenchmarkResult]) -> list[BenchmarkResult]:
    return sorted(results, key=lambda r: (-r.accuracy, r.total_time_ms / max(r.total, 1), r.id))


def compare(first: dict[str, bool], second: dict[str, bool]) -> tuple[int, float, str]:
    """(paired items, McNemar's p, how) of two results' correctness by item id."""
    shared = sorted(first.keys() & second.keys())
    if not shared:
        return 0, 1.0, "no item in common: not comparable"
    data = GroupedValues(
        groups=["first", "second"],
        values=[[float(first[i]) for i in shared], [float(second[i]) for i in shared]],
        pair_ids=[shared, shared],
    )
    spec = TestSpec(test_type=TestType.MCNEMAR, groups=["first", "second"], options=TestOptions(alpha=ALPHA))
    try:
        outcome = run_test(spec, data, "correct")
    except AppError:  # no discordant item: the two answered the shared items alike
        return len(shared), 1.0, "no discordant item: identical on the shared items"
    return len(shared), outcome.p_value, outcome.method


def entries(ordered: list[BenchmarkResult], correctness: list[dict[str, bool]]) -> list[LeaderboardEntry]:
    made = []
    for place, result in enumerate(ordered):
        low, high = wilson_interval(result.correct, result.total)
        made.append(
            LeaderboardEntry(
                rank=place + 1,
                model=result.model,
                provider=result.provider,
                score=result.score,
                accuracy=result.accuracy,
                latency_ms=round(result.total_time_ms / max(result.total, 1)),
                date=result.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ") if result.finished_at else None,
                confidence_interval=[low, high],
                correct=result.correct,
                total=result.total,
                id=result.id,
                experiment_id=result.experiment_id,
            )
        )
    for place in range(len(made) - 1):
        paired, p_value, method = compare(correctness[place], correctness[place + 1])
        significant = paired > 0 and p_value < ALPHA
        below = made[place + 1]
        made[place].vs_next = NeighbourComparison(
            rank=below.rank,
            model=below.model,
            provider=below.provider,
            paired_items=paired,
            p_value=p_value,
            significant=significant,
            method=method,
        )
        if not significant:
            made[place].not_significantly_different_from.append(below.rank)
            below.not_significantly_different_from.append(made[place].rank)
    return made
