"""The same items under two conditions: the paired t-test and the Wilcoxon signed-rank
test, on the differences first minus second."""

from __future__ import annotations

import math

from appliance.core.statistics import EffectSizeType, GroupedValues, Interval, RankMethod, TestOutcome, TestSpec
from appliance.services.statistics import effect_sizes, power
from appliance.services.statistics.common import SCIPY_ALTERNATIVE, Computed, arrays, described, two_sided_interval
from appliance.services.statistics.numeric import Array, degenerate, num, numpy, scipy_stats
from appliance.services.statistics.two_sample import has_ties, rank_method, rank_outcome, t_p_value


def differences(spec: TestSpec, data: GroupedValues, at_least: int) -> tuple[Array, Array, Array]:
    first, second = arrays(data)
    if len(first) < at_least:
        raise degenerate(
            "data",
            f"{len(first)} pair(s) of values; {spec.test_type.value} needs at least {at_least} items "
            "scored under both conditions",
        )
    return first, second, first - second


def paired_t(spec: TestSpec, data: GroupedValues) -> Computed:
    first, second, diff = differences(spec, data, 2)
    n = len(diff)
    sd = num(diff.std(ddof=1))
    mean = num(diff.mean())
    if sd == 0:
        raise degenerate(
            "data",
            f"every difference between the pairs is {mean:g}: the differences have no variance, so the t "
            "statistic is undefined (wilcoxon_signed_rank or paired_bootstrap still apply)",
        )
    standard_error = sd / math.sqrt(n)
    t = mean / standard_error
    df = n - 1
    level = spec.level
    critical = num(scipy_stats().t.ppf(1 - (1 - level) / 2, df))
    d_z = mean / sd
    interval = effect_sizes.cohens_d_z_interval(t, n, level)
    j = effect_sizes.hedges_j(df)
    use_g = spec.options.effect_size in (EffectSizeType.HEDGES_G, EffectSizeType.HEDGES_G_Z)
    mde = power.paired_t(n, spec.options.alpha, spec.options.power, spec.options.alternative)
    outcome = TestOutcome(
        method="paired t-test",
        statistic=t,
        statistic_name="t",
        degrees_of_freedom=[float(df)],
        p_value=t_p_value(t, df, spec.options.alternative),
        effect_size=d_z * j if use_g else d_z,
        effect_size_type=EffectSizeType.HEDGES_G_Z if use_g else EffectSizeType.COHENS_D_Z,
        confidence_interval=[b * j for b in interval] if use_g else interval,
        confidence_interval_method="noncentral t (Steiger & Fouladi, 1997)",
        confidence_level=level,
        summary=described([first, second]),
        difference=Interval(
            estimate=mean,
            confidence_interval=two_sided_interval(mean, standard_error, critical),
            type="mean_difference",
        ),
        effect_sizes={"cohens_d_z": d_z, "hedges_g_z": d_z * j},
        power=power.analysis(mde, "cohens_d_z", spec.options.alpha, spec.options.power, f"noncentral t, df {df}"),
    )
    return Computed(outcome=outcome, observed_for_power=d_z)


def wilcoxon(spec: TestSpec, data: GroupedValues) -> Computed:
    first, second, diff = differences(spec, data, 1)
    np = numpy()
    nonzero = diff[diff != 0]
    if len(nonzero) == 0:
        raise degenerate(
            "data",
            "every pair has the same value under both conditions: no difference to rank, so the signed-rank "
            "test is undefined",
        )
    zeros = len(diff) - len(nonzero)
    ties = has_ties(np.abs(nonzero)) or zeros > 0
    method = rank_method(spec, [len(nonzero)], ties)
    result = scipy_stats().wilcoxon(
        diff,
        zero_method="wilcox",
        correction=method is RankMethod.ASYMPTOTIC,
        alternative=SCIPY_ALTERNATIVE[spec.options.alternative],
        method="exact" if method is RankMethod.EXACT else "approx",
    )
    plus, _minus = effect_sizes.signed_rank_sums(diff)
    r = effect_sizes.rank_biserial_paired(diff)
    mde = power.paired_t(
        len(diff) * power.RANK_EFFICIENCY, spec.options.alpha, spec.options.power, spec.options.alternative
    )
    sd = num(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    outcome = rank_outcome(
        spec,
        "Wilcoxon signed-rank test",
        method,
        ("V", plus),
        num(result.pvalue),
        r,
        [first, second],
        (mde, "cohens_d_z", "the number of pairs"),
    )
    notes = [f"{zeros} pair(s) with no difference were left out of the ranking (Wilcoxon's method)"] if zeros else []
    return Computed(outcome=outcome, observed_for_power=num(diff.mean()) / sd if sd > 0 else None, notes=notes)
