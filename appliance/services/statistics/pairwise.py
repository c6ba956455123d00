"""Pairwise comparisons after a test of more than two groups, their p-values adjusted
for the number of comparisons: Holm's step-down method (Holm, 1979, Scand. J. Statist.
6:65-70; never less powerful than Bonferroni, and as safe) or Bonferroni's."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import msgspec

from appliance.core.statistics import Correction, GroupedValues, PairwiseComparison, TestSpec, TestType
from appliance.services.statistics.common import Computed


def adjust(p_values: list[float], correction: Correction) -> list[float]:
    m = len(p_values)
    if correction is Correction.BONFERRONI:
        return [min(1.0, p * m) for p in p_values]
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare_pairs(
    spec: TestSpec, data: GroupedValues, test: Callable[[TestSpec, GroupedValues], Computed], pair_type: TestType
) -> list[PairwiseComparison]:
    """Every pair of groups by `test` (two-sided unless the caller said otherwise)."""
    found: list[tuple[list[str], Computed]] = []
    for i, j in combinations(range(len(data.groups)), 2):
        names = [data.groups[i], data.groups[j]]
        pair_spec = msgspec.structs.replace(spec, test_type=pair_type, groups=names)
        pair_data = GroupedValues(groups=names, values=[data.values[i], data.values[j]])
        found.append((names, test(pair_spec, pair_data)))
    adjusted = adjust([c.outcome.p_value for _, c in found], spec.options.correction)
    return [
        PairwiseComparison(
            groups=names,
            test_type=pair_type.value,
            statistic=computed.outcome.statistic,
            p_value=computed.outcome.p_value,
            adjusted_p_value=p,
            significant=p < spec.options.alpha,
            effect_size=computed.outcome.effect_size,
            effect_size_type=computed.outcome.effect_size_type.value,
            mean_difference=computed.outcome.summary.means[0] - computed.outcome.summary.means[1],
        )
        for (names, computed), p in zip(found, adjusted, strict=True)
    ]
