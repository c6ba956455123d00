"""Two or more independent groups: one-way ANOVA and the Kruskal-Wallis H test, with
pairwise comparisons when there are more than two groups."""

from __future__ import annotations

from appliance.core.statistics import EffectSizeType, GroupedValues, TestOutcome, TestSpec, TestType
from appliance.services.statistics import effect_sizes, power
from appliance.services.statistics.common import (
    Computed,
    arrays,
    described,
    need_each,
    need_not_all_equal,
    need_variance,
)
from appliance.services.statistics.numeric import degenerate, num, numpy, scipy_stats
from appliance.services.statistics.pairwise import compare_pairs
from appliance.services.statistics.two_sample import mann_whitney, t_test


def anova(spec: TestSpec, data: GroupedValues) -> Computed:
    groups = arrays(data)
    need_each(spec, groups, 1, "an empty group has no mean")
    n, k = sum(len(g) for g in groups), len(groups)
    if n <= k:
        raise degenerate(
            "data", f"{n} values in {k} groups: one-way ANOVA needs more values than groups (a within-group variance)"
        )
    need_variance(spec, groups, "the F statistic")
    if all(len(g) < 2 or num(g.max()) == num(g.min()) for g in groups):
        raise degenerate("data", "no group varies within itself: the F statistic is undefined")
    result = scipy_stats().f_oneway(*groups)
    f = num(result.statistic)
    df1, df2 = k - 1, n - k
    eta = effect_sizes.eta_squared(groups)
    mde = power.anova(n, k, spec.options.alpha, spec.options.power)
    outcome = TestOutcome(
        method="one-way ANOVA",
        statistic=f,
        statistic_name="F",
        degrees_of_freedom=[float(df1), float(df2)],
        p_value=num(result.pvalue),
        effect_size=eta,
        effect_size_type=EffectSizeType.ETA_SQUARED,
        confidence_interval=effect_sizes.eta_squared_interval(f, df1, df2, spec.level),
        confidence_interval_method="noncentral F (Steiger, 2004)",
        confidence_level=spec.level,
        summary=described(groups),
        power=power.analysis(
            mde, "eta_squared", spec.options.alpha, spec.options.power, f"noncentral F, df {df1} and {df2}"
        ),
    )
    notes = []
    if k > 2:
        pair_type = TestType.STUDENT_T if spec.options.equal_var else TestType.WELCH_T
        outcome.pairwise = compare_pairs(spec, data, t_test, pair_type)
        notes.append(f"pairwise: {pair_type.value} on each pair, p-values adjusted by {spec.options.correction.value}")
    return Computed(outcome=outcome, observed_for_power=eta, notes=notes)


def kruskal_wallis(spec: TestSpec, data: GroupedValues) -> Computed:
    groups = arrays(data)
    need_each(spec, groups, 1, "an empty group has no ranks")
    need_not_all_equal(spec, groups)
    n, k = sum(len(g) for g in groups), len(groups)
    if n <= k:
        raise degenerate("data", f"{n} values in {k} groups: Kruskal-Wallis needs more values than groups")
    result = scipy_stats().kruskal(*groups)
    h = num(result.statistic)
    eta_h = max(0.0, (h - k + 1) / (n - k))
    mde = power.anova(n * power.RANK_EFFICIENCY, k, spec.options.alpha, spec.options.power)
    outcome = TestOutcome(
        method="Kruskal-Wallis H test (chi-square approximation, tie corrected)",
        statistic=h,
        statistic_name="H",
        degrees_of_freedom=[float(k - 1)],
        p_value=num(result.pvalue),
        effect_size=eta_h,
        effect_size_type=EffectSizeType.ETA_SQUARED_H,
        confidence_interval=None,
        confidence_interval_method=None,
        confidence_level=spec.level,
        summary=described(groups),
        power=power.analysis(
            mde,
            "eta_squared",
            spec.options.alpha,
            spec.options.power,
            "noncentral F with the sample size times 3/π (the rank test's efficiency under normality)",
        ),
    )
    notes = ["eta squared H = (H - k + 1) / (n - k) (Tomczak & Tomczak, 2014), 0 when H < k - 1"]
    if k > 2:
        outcome.pairwise = compare_pairs(spec, data, mann_whitney, TestType.MANN_WHITNEY)
        notes.append(f"pairwise: mann_whitney_u on each pair, p-values adjusted by {spec.options.correction.value}")
    observed = effect_sizes.eta_squared(groups) if numpy().concatenate(groups).std() > 0 else None
    return Computed(outcome=outcome, observed_for_power=observed, notes=notes)
