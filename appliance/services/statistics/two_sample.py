"""Two independent groups: Student's and Welch's t-tests, the Mann-Whitney U test."""

from __future__ import annotations

import math

from appliance.core.statistics import (
    Alternative,
    EffectSizeType,
    GroupedValues,
    Interval,
    RankMethod,
    TestOutcome,
    TestSpec,
    TestType,
)
from appliance.services.statistics import effect_sizes, power
from appliance.services.statistics.common import (
    SCIPY_ALTERNATIVE,
    Computed,
    arrays,
    described,
    need_each,
    need_not_all_equal,
    need_variance,
    two_sided_interval,
)
from appliance.services.statistics.numeric import Array, degenerate, num, numpy, scipy_stats

EXACT_RANKS_BELOW = 50


def uses_equal_variances(spec: TestSpec) -> bool:
    if spec.test_type is TestType.STUDENT_T:
        return True
    if spec.test_type is TestType.WELCH_T:
        return False
    return bool(spec.options.equal_var)


def t_test(spec: TestSpec, data: GroupedValues) -> Computed:
    x, y = arrays(data)
    need_each(spec, [x, y], 2, "a variance needs two values")
    need_variance(spec, [x, y], "the t statistic")
    stats = scipy_stats()
    n1, n2 = len(x), len(y)
    v1, v2 = num(x.var(ddof=1)), num(y.var(ddof=1))
    difference = num(x.mean()) - num(y.mean())
    sd = effect_sizes.pooled_sd(x, y)
    student_t = difference / (sd * math.sqrt(1 / n1 + 1 / n2))
    equal = uses_equal_variances(spec)
    if equal:
        df, standard_error, t = float(n1 + n2 - 2), sd * math.sqrt(1 / n1 + 1 / n2), student_t
        method = "Student's two-sample t-test (equal variances)"
    else:
        standard_error = math.sqrt(v1 / n1 + v2 / n2)
        df = (v1 / n1 + v2 / n2) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
        t = difference / standard_error
        method = "Welch's two-sample t-test (unequal variances)"
    p = t_p_value(t, df, spec.options.alternative)
    level = spec.level
    critical = num(stats.t.ppf(1 - (1 - level) / 2, df))

    d = difference / sd
    d_interval = effect_sizes.cohens_d_interval(student_t, n1, n2, level)
    j = effect_sizes.hedges_j(n1 + n2 - 2)
    g, g_interval = d * j, [bound * j for bound in d_interval]
    use_g = spec.options.effect_size is EffectSizeType.HEDGES_G
    mde = power.two_sample_t(n1, n2, spec.options.alpha, spec.options.power, spec.options.alternative)
    outcome = TestOutcome(
        method=method,
        statistic=t,
        statistic_name="t",
        degrees_of_freedom=[df],
        p_value=p,
        effect_size=g if use_g else d,
        effect_size_type=EffectSizeType.HEDGES_G if use_g else EffectSizeType.COHENS_D,
        confidence_interval=g_interval if use_g else d_interval,
        confidence_interval_method="noncentral t (Steiger & Fouladi, 1997), pooled SD",
        confidence_level=level,
        difference=Interval(
            estimate=difference,
            confidence_interval=two_sided_interval(difference, standard_error, critical),
            type="mean_difference",
        ),
        effect_sizes={"cohens_d": d, "hedges_g": g},
        power=power.analysis(
            mde, "cohens_d", spec.options.alpha, spec.options.power, f"noncentral t, df {n1 + n2 - 2}"
        ),
        summary=described([x, y]),
    )
    notes = []
    if spec.test_type is TestType.TWO_SAMPLE_T:
        notes.append(
            "two_sample_t_test used Student's t (options.equal_var true)"
            if equal
            else "two_sample_t_test used Welch's t, which does not assume equal variances "
            "(options.equal_var: true for Student's)"
        )
    return Computed(outcome=outcome, observed_for_power=d, notes=notes)


def t_p_value(t: float, df: float, alternative: Alternative) -> float:
    dist = scipy_stats().t
    if alternative is Alternative.LESS:
        return num(dist.cdf(t, df))
    if alternative is Alternative.GREATER:
        return num(dist.sf(t, df))
    return min(1.0, 2 * num(dist.sf(abs(t), df)))


def rank_method(spec: TestSpec, sizes: list[int], ties: bool) -> RankMethod:
    """Exact while every sample is below 50 values and nothing is tied (R's rule in
    wilcox.test); the normal approximation with tie and continuity corrections else."""
    asked = RankMethod(spec.options.method or RankMethod.AUTO.value)
    if asked is not RankMethod.AUTO:
        if asked is RankMethod.EXACT and ties:
            raise degenerate("options.method", "the exact distribution assumes no tied values, and these have ties")
        return asked
    small = all(n < EXACT_RANKS_BELOW for n in sizes)
    return RankMethod.EXACT if small and not ties else RankMethod.ASYMPTOTIC


def has_ties(values: Array) -> bool:
    return len(numpy().unique(values)) < len(values)


def rank_outcome(
    spec: TestSpec,
    test: str,
    method: RankMethod,
    statistic: tuple[str, float],
    p: float,
    r: float,
    groups: list[Array],
    power_of: tuple[float, str, str],
) -> TestOutcome:
    """A rank test's outcome: its statistic (name, value), the rank-biserial r as its
    effect, no interval, and power as the t-test's with `power_of`'s sizes scaled by the
    rank test's efficiency (the smallest effect, its kind, and what was scaled)."""
    variant = "exact" if method is RankMethod.EXACT else "normal approximation, tie and continuity corrected"
    statistic_name, value = statistic
    mde, kind, scaled = power_of
    return TestOutcome(
        method=f"{test} ({variant})",
        statistic=value,
        statistic_name=statistic_name,
        degrees_of_freedom=None,
        p_value=p,
        effect_size=r,
        effect_size_type=EffectSizeType.RANK_BISERIAL,
        confidence_interval=None,
        confidence_interval_method=None,
        confidence_level=spec.level,
        summary=described(groups),
        power=power.analysis(
            mde,
            kind,
            spec.options.alpha,
            spec.options.power,
            f"noncentral t with {scaled} times 3/π (the rank test's efficiency under normality)",
        ),
    )


def mann_whitney(spec: TestSpec, data: GroupedValues) -> Computed:
    x, y = arrays(data)
    need_each(spec, [x, y], 1, "each group needs values to rank")
    need_not_all_equal(spec, [x, y])
    np = numpy()
    n1, n2 = len(x), len(y)
    method = rank_method(spec, [n1, n2], has_ties(np.concatenate([x, y])))
    result = scipy_stats().mannwhitneyu(
        x,
        y,
        alternative=SCIPY_ALTERNATIVE[spec.options.alternative],
        method=method.value,
        use_continuity=True,
    )
    u_first = num(result.statistic)
    r = effect_sizes.rank_biserial_independent(u_first, n1, n2)
    mde = power.two_sample_t(
        n1 * power.RANK_EFFICIENCY,
        n2 * power.RANK_EFFICIENCY,
        spec.options.alpha,
        spec.options.power,
        spec.options.alternative,
    )
    sd = effect_sizes.pooled_sd(x, y) if n1 + n2 > 2 else 0.0
    outcome = rank_outcome(
        spec,
        "Mann-Whitney U test",
        method,
        ("U", u_first),
        num(result.pvalue),
        r,
        [x, y],
        (mde, "cohens_d", "the sample sizes"),
    )
    observed = (num(x.mean()) - num(y.mean())) / sd if sd > 0 else None
    return Computed(outcome=outcome, observed_for_power=observed)
