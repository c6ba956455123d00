"""Success rates (values 0 or 1): Pearson's chi-square test and Fisher's exact test for
independent groups, McNemar's test for the same items under two conditions (the usual
case of two models answering one benchmark).

McNemar's test looks only at the discordant items: b, right under the first condition
and wrong under the second, and c, the reverse. With fewer than 25 discordant items it is
the exact binomial test of b out of b + c at 1/2; from 25 on, the chi-square statistic
(|b - c| - 1)² / (b + c) with Edwards' continuity correction (McNemar, 1947; Edwards,
1948; the threshold as in Rosner, Fundamentals of Biostatistics). `options.method` picks
one of them regardless.
"""

from __future__ import annotations

import math

from appliance.core.statistics import (
    EXACT_MCNEMAR_BELOW,
    Alternative,
    EffectSizeType,
    GroupedValues,
    Interval,
    McNemarMethod,
    TestOutcome,
    TestSpec,
    TestType,
)
from appliance.services.statistics import effect_sizes, power
from appliance.services.statistics.common import SCIPY_ALTERNATIVE, Computed, arrays, described, normal_critical
from appliance.services.statistics.numeric import Array, degenerate, num, numpy, scipy_stats
from appliance.services.statistics.pairwise import compare_pairs


def binary(spec: TestSpec, groups: list[Array]) -> None:
    for name, values in zip(spec.groups, groups, strict=True):
        if len(values) == 0:
            raise degenerate("data", f"group {name!r} has no values")
        if not bool(numpy().isin(values, (0.0, 1.0)).all()):
            raise degenerate(
                "data",
                f"group {name!r} holds values other than 0 and 1; {spec.test_type.value} compares success "
                "rates, one 0 (failure) or 1 (success) per item",
            )


def _table(spec: TestSpec, groups: list[Array]) -> list[list[float]]:
    binary(spec, groups)
    table = [[num(g.sum()), len(g) - num(g.sum())] for g in groups]
    if all(row[0] == 0 for row in table) or all(row[1] == 0 for row in table):
        everything = "failures (0)" if all(row[0] == 0 for row in table) else "successes (1)"
        raise degenerate("data", f"every value in every group is a {everything[:-4]}: the rates cannot differ")
    return table


def _proportion_difference(table: list[list[float]], level: float) -> Interval:
    (a, b), (c, d) = table
    p1, p2 = a / (a + b), c / (c + d)
    se = math.sqrt(p1 * (1 - p1) / (a + b) + p2 * (1 - p2) / (c + d))
    half = normal_critical(level) * se
    return Interval(
        estimate=p1 - p2, confidence_interval=[p1 - p2 - half, p1 - p2 + half], type="proportion_difference"
    )


def _odds_ratio_fields(table: list[list[float]], level: float, notes: list[str]) -> tuple[float, list[float]]:
    (a, b), (c, d) = table
    ratio, interval, corrected = effect_sizes.odds_ratio(a, b, c, d, level)
    if corrected:
        notes.append("a cell of the 2 x 2 table is 0: the odds ratio and its interval add 0.5 to every cell (Haldane)")
    return ratio, interval


def chi_square(spec: TestSpec, data: GroupedValues) -> Computed:
    groups = arrays(data)
    table = _table(spec, groups)
    result = scipy_stats().chi2_contingency(table, correction=spec.options.continuity)
    chi2, n, k = num(result.statistic), sum(len(g) for g in groups), len(groups)
    notes: list[str] = []
    if bool((result.expected_freq < 5).any()):
        notes.append("some expected counts are below 5, where the chi-square approximation is rough")
    w = math.sqrt(chi2 / n)
    mde = power.chi_square_w(n, k - 1, spec.options.alpha, spec.options.power)
    corrected = spec.options.continuity and k == 2
    outcome = TestOutcome(
        method="Pearson's chi-square test" + (" with Yates' continuity correction" if corrected else ""),
        statistic=chi2,
        statistic_name="chi2",
        degrees_of_freedom=[float(k - 1)],
        p_value=num(result.pvalue),
        effect_size=0.0,
        effect_size_type=EffectSizeType.ODDS_RATIO,
        confidence_interval=None,
        confidence_interval_method=None,
        confidence_level=spec.level,
        summary=described(groups),
        power=power.analysis(
            mde, "cohens_w", spec.options.alpha, spec.options.power, f"noncentral chi-square, df {k - 1}"
        ),
    )
    if k == 2:
        outcome.effect_size, outcome.confidence_interval = _odds_ratio_fields(table, spec.level, notes)
        outcome.confidence_interval_method = "Woolf's logit interval"
        outcome.difference = _proportion_difference(table, spec.level)
        outcome.effect_sizes = {"cramers_v": w}
    else:
        outcome.effect_size = effect_sizes.cramers_v(chi2, n, k, 2)
        outcome.effect_size_type = EffectSizeType.CRAMERS_V
        outcome.pairwise = compare_pairs(spec, data, chi_square, TestType.CHI_SQUARE)
        notes.append(f"pairwise: chi_square on each pair, p-values adjusted by {spec.options.correction.value}")
    return Computed(outcome=outcome, observed_for_power=w, notes=notes)


def fisher_exact(spec: TestSpec, data: GroupedValues) -> Computed:
    groups = arrays(data)
    table = _table(spec, groups)
    result = scipy_stats().fisher_exact(table, alternative=SCIPY_ALTERNATIVE[spec.options.alternative])
    n = sum(len(g) for g in groups)
    notes: list[str] = []
    ratio, interval = _odds_ratio_fields(table, spec.level, notes)
    chi2 = num(scipy_stats().chi2_contingency(table, correction=False).statistic)
    mde = power.chi_square_w(n, 1, spec.options.alpha, spec.options.power)
    outcome = TestOutcome(
        method="Fisher's exact test",
        statistic=table[0][0],
        statistic_name="successes in the first group",
        degrees_of_freedom=None,
        p_value=num(result.pvalue),
        effect_size=ratio,
        effect_size_type=EffectSizeType.ODDS_RATIO,
        confidence_interval=interval,
        confidence_interval_method="Woolf's logit interval",
        confidence_level=spec.level,
        summary=described(groups),
        difference=_proportion_difference(table, spec.level),
        power=power.analysis(
            mde, "cohens_w", spec.options.alpha, spec.options.power, "noncentral chi-square, df 1 (approximation)"
        ),
    )
    return Computed(outcome=outcome, observed_for_power=math.sqrt(chi2 / n), notes=notes)


def mcnemar_method(spec: TestSpec, discordant: int) -> McNemarMethod:
    asked = McNemarMethod(spec.options.method or McNemarMethod.AUTO.value)
    if asked is not McNemarMethod.AUTO:
        return asked
    return McNemarMethod.EXACT if discordant < EXACT_MCNEMAR_BELOW else McNemarMethod.CHI_SQUARE


def mcnemar(spec: TestSpec, data: GroupedValues) -> Computed:
    first, second = arrays(data)
    binary(spec, [first, second])
    n = len(first)
    b = int(((first == 1) & (second == 0)).sum())
    c = int(((first == 0) & (second == 1)).sum())
    if b + c == 0:
        raise degenerate(
            "data",
            f"the two conditions agree on all {n} items (no discordant pair): McNemar's test has nothing to compare",
        )
    method = mcnemar_method(spec, b + c)
    stats = scipy_stats()
    alternative = spec.options.alternative
    if method is McNemarMethod.EXACT:
        p = num(stats.binomtest(b, b + c, 0.5, alternative=SCIPY_ALTERNATIVE[alternative]).pvalue)
        statistic, name, df, label = float(b), "b (discordant pairs favouring the first)", None, "exact binomial"
    else:
        statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
        z = math.copysign(math.sqrt(statistic), b - c)
        p = {
            Alternative.TWO_SIDED: num(stats.chi2.sf(statistic, 1)),
            Alternative.GREATER: num(stats.norm.sf(z)),
            Alternative.LESS: num(stats.norm.cdf(z)),
        }[alternative]
        name, df, label = "chi2", [1.0], "chi-square with Edwards' continuity correction"
    notes: list[str] = []
    ratio, interval, corrected = effect_sizes.paired_odds_ratio(b, c, spec.level)
    if corrected:
        notes.append("b or c is 0: the odds ratio and its interval add 0.5 to both")
    difference = (b - c) / n
    se = math.sqrt(max((b + c) - (b - c) ** 2 / n, 0.0)) / n
    half = normal_critical(spec.level) * se
    one_sided = alternative is not Alternative.TWO_SIDED
    mde = power.mcnemar_difference(n, (b + c) / n, spec.options.alpha, spec.options.power, one_sided)
    outcome = TestOutcome(
        method=f"McNemar's test ({label}; {b + c} discordant pairs)",
        statistic=statistic,
        statistic_name=name,
        degrees_of_freedom=df,
        p_value=p,
        effect_size=ratio,
        effect_size_type=EffectSizeType.ODDS_RATIO,
        confidence_interval=interval,
        confidence_interval_method="exp(log(b/c) ± z √(1/b + 1/c)) (Agresti, 2013)",
        confidence_level=spec.level,
        summary=described([first, second]),
        difference=Interval(
            estimate=difference,
            confidence_interval=[difference - half, difference + half],
            type="proportion_difference",
        ),
        effect_sizes={"b": float(b), "c": float(c)},
        power=power.analysis(
            mde,
            "proportion_difference",
            spec.options.alpha,
            spec.options.power,
            f"Connor (1987) at the observed discordant share {(b + c) / n:.3f}",
        ),
    )
    rule = f"exact below {EXACT_MCNEMAR_BELOW} discordant pairs, chi-square with continuity correction from there"
    notes.append(f"{label} ({rule})" if spec.options.method in (None, "auto") else f"{label}, as options.method asked")
    return Computed(outcome=outcome, observed_for_power=difference, notes=notes)
