"""Runs a test: checks the request against what the test takes, picks the test, and
adds the interpretation. Every number it answers is finite; data a test cannot speak
about (too few values, no variance) is a ValidationError naming the field, never a NaN."""

from __future__ import annotations

import math
from collections.abc import Callable

from appliance.core.errors import invalid_fields
from appliance.core.statistics import (
    MANY_GROUP_TESTS,
    MAX_GROUPS,
    MAX_RESAMPLES,
    MAX_VALUES,
    MIN_RESAMPLES,
    Alternative,
    EffectSizeType,
    GroupedValues,
    McNemarMethod,
    RankMethod,
    TestOutcome,
    TestSpec,
    TestType,
)
from appliance.services.statistics.bootstrap import independent_bootstrap, paired_bootstrap
from appliance.services.statistics.common import Computed, clean, is_finite_outcome
from appliance.services.statistics.interpretation import interpret
from appliance.services.statistics.k_groups import anova, kruskal_wallis
from appliance.services.statistics.numeric import degenerate
from appliance.services.statistics.paired import paired_t, wilcoxon
from appliance.services.statistics.proportions import chi_square, fisher_exact, mcnemar
from appliance.services.statistics.two_sample import mann_whitney, t_test

Test = Callable[[TestSpec, GroupedValues], Computed]

TESTS: dict[TestType, Test] = {
    TestType.TWO_SAMPLE_T: t_test,
    TestType.STUDENT_T: t_test,
    TestType.WELCH_T: t_test,
    TestType.MANN_WHITNEY: mann_whitney,
    TestType.FISHER_EXACT: fisher_exact,
    TestType.BOOTSTRAP: independent_bootstrap,
    TestType.PAIRED_T: paired_t,
    TestType.WILCOXON: wilcoxon,
    TestType.MCNEMAR: mcnemar,
    TestType.PAIRED_BOOTSTRAP: paired_bootstrap,
    TestType.ANOVA: anova,
    TestType.KRUSKAL_WALLIS: kruskal_wallis,
    TestType.CHI_SQUARE: chi_square,
}
T_TESTS = frozenset({TestType.TWO_SAMPLE_T, TestType.STUDENT_T, TestType.WELCH_T})
RANK_TESTS = frozenset({TestType.MANN_WHITNEY, TestType.WILCOXON})
BOOTSTRAPS = frozenset({TestType.BOOTSTRAP, TestType.PAIRED_BOOTSTRAP})
EFFECT_CHOICES: dict[TestType, frozenset[EffectSizeType]] = {
    **{t: frozenset({EffectSizeType.COHENS_D, EffectSizeType.HEDGES_G}) for t in T_TESTS},
    TestType.PAIRED_T: frozenset({EffectSizeType.COHENS_D_Z, EffectSizeType.HEDGES_G_Z}),
}


def _in_open_unit(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and 0 < value < 1)


def spec_problems(spec: TestSpec) -> dict[str, list[str]]:
    """Everything wrong with the request itself, before any value is looked at."""
    problems: dict[str, list[str]] = {}
    kind, options, groups = spec.test_type, spec.options, spec.groups
    most = MAX_GROUPS if kind in MANY_GROUP_TESTS else 2
    if not all(isinstance(g, str) and g.strip() for g in groups):
        problems["groups"] = ["group names must be non-empty text"]
    elif len(set(groups)) != len(groups):
        problems["groups"] = ["each group may be named once"]
    elif not 2 <= len(groups) <= most:
        wanted = "exactly 2" if most == 2 else f"2 to {most}"
        problems["groups"] = [f"{kind.value} compares {wanted} groups, not {len(groups)}"]
    if not (math.isfinite(options.alpha) and 0 < options.alpha <= 0.5):
        problems["options.alpha"] = ["must be more than 0 and at most 0.5"]
    if not _in_open_unit(options.confidence_level):
        problems["options.confidence_level"] = ["must be between 0 and 1 (0.95 for 95%)"]
    if not _in_open_unit(options.power):
        problems["options.power"] = ["must be between 0 and 1 (0.8 for 80%)"]
    if kind in MANY_GROUP_TESTS and options.alternative is not Alternative.TWO_SIDED:
        problems["options.alternative"] = [f"{kind.value} is two-sided only; a one-sided test compares two groups"]
    if options.equal_var is not None and kind not in (TestType.TWO_SAMPLE_T, TestType.ANOVA):
        problems["options.equal_var"] = ["only two_sample_t_test and one_way_anova (its pairwise tests) take it"]
    choices = EFFECT_CHOICES.get(kind, frozenset())
    if options.effect_size is not None and options.effect_size not in choices:
        allowed = ", ".join(sorted(c.value for c in choices)) or "none: its effect size is fixed"
        problems["options.effect_size"] = [f"{kind.value} takes {allowed}"]
    if options.method is not None:
        methods = McNemarMethod if kind is TestType.MCNEMAR else RankMethod if kind in RANK_TESTS else None
        if methods is None:
            problems["options.method"] = ["only mcnemar, mann_whitney_u and wilcoxon_signed_rank take a method"]
        elif options.method not in {m.value for m in methods}:
            problems["options.method"] = [f"must be one of {', '.join(m.value for m in methods)}"]
    if options.continuity and kind is not TestType.CHI_SQUARE:
        problems["options.continuity"] = ["only chi_square takes it (mcnemar's chi-square is always corrected)"]
    if kind in BOOTSTRAPS and not MIN_RESAMPLES <= options.resamples <= MAX_RESAMPLES:
        problems["options.resamples"] = [f"must be from {MIN_RESAMPLES} to {MAX_RESAMPLES}"]
    if not 0 <= options.seed < 2**63:
        problems["options.seed"] = ["must be a whole number from 0 to 2^63 - 1"]
    return problems


def check_spec(spec: TestSpec) -> None:
    problems = spec_problems(spec)
    if problems:
        raise invalid_fields(problems)


def check_values(data: GroupedValues) -> None:
    total = sum(len(v) for v in data.values)
    if total > MAX_VALUES:
        raise degenerate("data", f"{total} values; a test takes at most {MAX_VALUES:,}")
    for name, values in zip(data.groups, data.values, strict=True):
        if not all(math.isfinite(v) for v in values):
            raise degenerate("data", f"group {name!r} holds a value that is not a finite number")


def run_test(spec: TestSpec, data: GroupedValues, metric: str) -> TestOutcome:
    """The outcome of the test `spec` asks for on `data` (its groups in spec's order)."""
    check_spec(spec)
    check_values(data)
    computed = TESTS[spec.test_type](spec, data)
    outcome = computed.outcome
    outcome.statistic, outcome.effect_size = clean(outcome.statistic), clean(outcome.effect_size)
    outcome.p_value = min(1.0, max(0.0, outcome.p_value))
    if not is_finite_outcome(outcome):
        raise degenerate("data", "these values make the test's statistics undefined (not finite); it does not apply")
    outcome.interpretation = interpret(spec, computed, metric)
    return outcome
