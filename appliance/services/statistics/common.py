"""What every test shares: the groups' descriptive statistics, the checks that refuse data
a test cannot speak about, and the outcome a test hands to the interpretation."""

from __future__ import annotations

import math

import msgspec

from appliance.core.statistics import Alternative, GroupedValues, GroupSummary, TestOutcome, TestSpec
from appliance.services.statistics.numeric import Array, array, degenerate, num, numpy, z_quantile

SCIPY_ALTERNATIVE = {
    Alternative.TWO_SIDED: "two-sided",
    Alternative.LESS: "less",
    Alternative.GREATER: "greater",
}


class Computed(msgspec.Struct, kw_only=True):
    """A test's outcome, the observed effect in the units of its minimum detectable
    effect (to say whether a non-significant result had the power to be otherwise), and
    the notes the interpretation carries (which variant was used and why)."""

    outcome: TestOutcome
    observed_for_power: float | None = None
    notes: list[str] = []


def arrays(data: GroupedValues) -> list[Array]:
    return [array(values) for values in data.values]


def described(groups: list[Array]) -> GroupSummary:
    np = numpy()
    return GroupSummary(
        sample_sizes=[len(g) for g in groups],
        means=[num(g.mean()) for g in groups],
        std_devs=[num(g.std(ddof=1)) if len(g) > 1 else 0.0 for g in groups],
        medians=[num(np.median(g)) for g in groups],
    )


def need_each(spec: TestSpec, groups: list[Array], at_least: int, why: str) -> None:
    for name, values in zip(spec.groups, groups, strict=True):
        if len(values) < at_least:
            raise degenerate(
                "data",
                f"group {name!r} has {len(values)} value(s); {spec.test_type.value} needs at least {at_least} "
                f"in each group ({why})",
            )


def need_variance(spec: TestSpec, groups: list[Array], what: str) -> None:
    if all(num(g.max()) == num(g.min()) for g in groups if len(g)):
        joined = ", ".join(spec.groups)
        raise degenerate(
            "data",
            f"every group ({joined}) holds one repeated value: there is no variance, so {what} is undefined",
        )


def need_not_all_equal(spec: TestSpec, groups: list[Array]) -> None:
    everything = numpy().concatenate(groups)
    if num(everything.max()) == num(everything.min()):
        raise degenerate(
            "data",
            f"every value in every group is {num(everything[0]):g}: there is nothing to compare "
            f"({spec.test_type.value} is undefined)",
        )


def two_sided_interval(estimate: float, standard_error: float, critical: float) -> list[float]:
    return [estimate - critical * standard_error, estimate + critical * standard_error]


def normal_critical(level: float) -> float:
    return z_quantile(1 - (1 - level) / 2)


def clean(value: float) -> float:
    """-0.0 as 0.0, so a JSON body never shows a negative zero."""
    return 0.0 if value == 0 else value


def is_finite_outcome(outcome: TestOutcome) -> bool:
    numbers = [
        outcome.statistic,
        outcome.p_value,
        outcome.effect_size,
        *outcome.summary.means,
        *outcome.summary.std_devs,
    ]
    numbers += list(outcome.confidence_interval or [])
    if outcome.difference is not None:
        numbers += [outcome.difference.estimate, *(outcome.difference.confidence_interval or [])]
    numbers += list(outcome.effect_sizes.values())
    for item in outcome.pairwise or []:
        numbers += [item.statistic, item.p_value, item.adjusted_p_value, item.effect_size]
    if outcome.power is not None:
        numbers.append(outcome.power.minimum_detectable_effect)
    return all(math.isfinite(n) for n in numbers)
