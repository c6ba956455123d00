"""Statistical tests on an experiment's results: what a caller asks for, the values a test
runs on, and what it answers (experiments-api.md, Statistical Results).

A test compares groups of values of one metric. Which values form each group is always
explicit: given inline (`data`), or picked from what the appliance holds by `metric` and
`group_field` (a run's hyperparameter, or a telemetry event's metadata key), with a
`pair_field` (a dataset item id, a seed) that matches values across groups for the
paired tests. The arithmetic lives in services/statistics; this module holds the types
and the rules that need no numbers library.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

import msgspec

from appliance.core.clock import iso_z

STAT_ID_PREFIX = "stat_"

MAX_GROUPS = 20
MAX_VALUES = 1_000_000  # over all groups
MIN_RESAMPLES, MAX_RESAMPLES = 100, 100_000
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8


def new_stat_id() -> str:
    return f"{STAT_ID_PREFIX}{secrets.token_hex(6)}"


class TestType(StrEnum):
    # two independent groups
    TWO_SAMPLE_T = "two_sample_t_test"  # Welch's unless options.equal_var is true
    STUDENT_T = "student_t_test"
    WELCH_T = "welch_t_test"
    MANN_WHITNEY = "mann_whitney_u"
    FISHER_EXACT = "fisher_exact"
    BOOTSTRAP = "bootstrap"  # difference of means, percentile CI and a bootstrap p-value
    # the same items under two conditions
    PAIRED_T = "paired_t_test"
    WILCOXON = "wilcoxon_signed_rank"
    MCNEMAR = "mcnemar"
    PAIRED_BOOTSTRAP = "paired_bootstrap"
    # two or more independent groups
    ANOVA = "one_way_anova"
    KRUSKAL_WALLIS = "kruskal_wallis"
    CHI_SQUARE = "chi_square"


PAIRED_TESTS = frozenset({TestType.PAIRED_T, TestType.WILCOXON, TestType.MCNEMAR, TestType.PAIRED_BOOTSTRAP})
MANY_GROUP_TESTS = frozenset({TestType.ANOVA, TestType.KRUSKAL_WALLIS, TestType.CHI_SQUARE})
BINARY_TESTS = frozenset({TestType.CHI_SQUARE, TestType.FISHER_EXACT, TestType.MCNEMAR})
TEST_TYPES = tuple(t.value for t in TestType)


class Alternative(StrEnum):
    """For two groups A, B (in `groups` order): `less` is A below B, `greater` A above B."""

    TWO_SIDED = "two_sided"
    LESS = "less"
    GREATER = "greater"


class Correction(StrEnum):
    HOLM = "holm"
    BONFERRONI = "bonferroni"


class McNemarMethod(StrEnum):
    AUTO = "auto"  # exact below EXACT_MCNEMAR_BELOW discordant pairs, else chi_square
    EXACT = "exact"  # binomial test on the discordant pairs
    CHI_SQUARE = "chi_square"  # with Edwards' continuity correction


class RankMethod(StrEnum):
    AUTO = "auto"  # exact below 50 values and without ties (as R's wilcox.test)
    EXACT = "exact"
    ASYMPTOTIC = "asymptotic"  # normal approximation, tie and continuity corrected


# McNemar's exact test while fewer discordant pairs than this; the chi-square
# approximation (with continuity correction) from here on.
EXACT_MCNEMAR_BELOW = 25


class EffectSizeType(StrEnum):
    COHENS_D = "cohens_d"
    HEDGES_G = "hedges_g"
    COHENS_D_Z = "cohens_d_z"  # paired: mean difference over the differences' SD
    HEDGES_G_Z = "hedges_g_z"
    RANK_BISERIAL = "rank_biserial"
    ETA_SQUARED = "eta_squared"  # ANOVA: SS_between / SS_total
    ETA_SQUARED_H = "eta_squared_h"  # Kruskal-Wallis: (H - k + 1) / (n - k)
    ODDS_RATIO = "odds_ratio"
    CRAMERS_V = "cramers_v"
    MEAN_DIFFERENCE = "mean_difference"


class TestOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    alpha: float = DEFAULT_ALPHA
    alternative: Alternative = Alternative.TWO_SIDED
    # Two-sided confidence level of every interval; default 1 - alpha.
    confidence_level: float | None = None
    equal_var: bool | None = None  # two_sample_t_test: Student's t when true
    effect_size: EffectSizeType | None = None  # t-tests: cohens_d (default) or hedges_g
    correction: Correction = Correction.HOLM  # pairwise comparisons of > 2 groups
    method: str | None = None  # mcnemar: McNemarMethod; rank tests: RankMethod
    continuity: bool = False  # chi_square on 2 groups: Yates' correction
    resamples: int = DEFAULT_RESAMPLES  # bootstrap tests and bootstrap intervals
    seed: int = DEFAULT_SEED
    power: float = DEFAULT_POWER  # the power the minimum detectable effect is for


class TestSpec(msgspec.Struct, kw_only=True):
    """A test as checked by the service: what to compute, on which groups."""

    test_type: TestType
    groups: list[str]
    options: TestOptions

    @property
    def paired(self) -> bool:
        return self.test_type in PAIRED_TESTS

    @property
    def level(self) -> float:
        return self.options.confidence_level or 1 - self.options.alpha


class GroupedValues(msgspec.Struct, kw_only=True):
    """The values of each group, in `groups` order. For a paired test `pair_ids[i][j]`
    names the item of `values[i][j]`, and the groups hold the same items in the same
    order (a MetricSource lines them up and leaves out items missing from a group)."""

    groups: list[str]
    values: list[list[float]]
    pair_ids: list[list[str]] | None = None
    unpaired_dropped: int = 0  # items left out because a group lacked them


class MetricQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The values of `metric` in an experiment, grouped by `group_field`."""

    experiment_id: str
    metric: str
    group_field: str
    pair_field: str | None
    groups: tuple[str, ...] | None  # None: every value group_field takes


class KeyedValue(msgspec.Struct, frozen=True):
    """One value, its group (the value of group_field, as text) and its pair key (the
    value of pair_field, as text; None without one)."""

    group: str
    value: float
    pair: str | None


class DataSource(StrEnum):
    INLINE = "inline"
    RUNS = "runs"
    TELEMETRY = "telemetry"


class Interval(msgspec.Struct, kw_only=True):
    estimate: float
    confidence_interval: list[float] | None
    type: str  # "mean_difference", "proportion_difference", ...


class PowerAnalysis(msgspec.Struct, kw_only=True):
    """The smallest effect these sample sizes detect with `power` at `alpha`: a
    non-significant result with an observed effect below it says little."""

    minimum_detectable_effect: float
    effect_size_type: str
    power: float
    alpha: float
    method: str


class Bootstrap(msgspec.Struct, kw_only=True):
    resamples: int
    seed: int


class PairwiseComparison(msgspec.Struct, kw_only=True):
    groups: list[str]
    test_type: str
    statistic: float
    p_value: float
    adjusted_p_value: float
    significant: bool
    effect_size: float
    effect_size_type: str
    mean_difference: float


class Interpretation(msgspec.Struct, kw_only=True):
    significance: str  # "significant" or "not_significant" at alpha
    effect_magnitude: str  # "negligible", "small", "medium", "large"
    practical_significance: str  # one or two sentences
    magnitude_thresholds: str  # whose thresholds, and what they are
    notes: list[str] = []


class GroupSummary(msgspec.Struct, kw_only=True):
    """Each group's size, mean, SD (n - 1) and median, in `groups` order; for 0/1 values
    the mean is the proportion."""

    sample_sizes: list[int]
    means: list[float]
    std_devs: list[float]
    medians: list[float]


class TestOutcome(msgspec.Struct, kw_only=True):
    """What a test computed, before it is stored."""

    method: str  # "Welch's two-sample t-test", "McNemar's exact test", ...
    statistic: float
    statistic_name: str
    degrees_of_freedom: list[float] | None
    p_value: float
    effect_size: float
    effect_size_type: EffectSizeType
    confidence_interval: list[float] | None  # of the effect size
    confidence_interval_method: str | None
    confidence_level: float
    summary: GroupSummary
    difference: Interval | None = None
    effect_sizes: dict[str, float] = {}  # the other effect sizes the test yields
    pairwise: list[PairwiseComparison] | None = None
    power: PowerAnalysis | None = None
    bootstrap: Bootstrap | None = None
    interpretation: Interpretation | None = None


class StatisticalResult(msgspec.Struct, kw_only=True):
    """A stored test result."""

    id: str
    owner: str
    experiment_id: str | None
    test_type: TestType
    groups: list[str]
    metric: str | None
    group_field: str | None
    pair_field: str | None
    source: DataSource
    alpha: float
    alternative: Alternative
    options: TestOptions
    outcome: TestOutcome
    pairs: int | None  # paired tests: the pairs compared
    unpaired_dropped: int
    created_at: datetime


class StatisticalResultView(msgspec.Struct, kw_only=True):
    """A result as experiments-api.md shows it (its fields and more): the API's body, and
    what exports and reports hold."""

    id: str
    experiment_id: str | None
    test_type: str
    groups: list[str]
    metric: str | None
    group_field: str | None
    pair_field: str | None
    source: str  # inline, runs or telemetry
    method: str
    statistic: float
    statistic_name: str
    degrees_of_freedom: list[float] | None
    p_value: float
    alpha: float
    alternative: str
    effect_size: float
    effect_size_type: str
    confidence_interval: list[float] | None  # of the effect size
    confidence_level: float
    confidence_interval_method: str | None
    sample_sizes: list[int]
    means: list[float]
    std_devs: list[float]
    medians: list[float]
    difference: Interval | None
    effect_sizes: dict[str, float]
    pairwise: list[PairwiseComparison] | None
    power: PowerAnalysis | None
    bootstrap: Bootstrap | None
    pairs: int | None
    unpaired_dropped: int
    options: TestOptions
    interpretation: Interpretation | None
    created_at: str  # iso_z: always milliseconds and Z, as every time of experiments-api.md


def result_view(result: StatisticalResult) -> StatisticalResultView:
    outcome = result.outcome
    return StatisticalResultView(
        id=result.id,
        experiment_id=result.experiment_id,
        test_type=result.test_type.value,
        groups=result.groups,
        metric=result.metric,
        group_field=result.group_field,
        pair_field=result.pair_field,
        source=result.source.value,
        method=outcome.method,
        statistic=outcome.statistic,
        statistic_name=outcome.statistic_name,
        degrees_of_freedom=outcome.degrees_of_freedom,
        p_value=outcome.p_value,
        alpha=result.alpha,
        alternative=result.alternative.value,
        effect_size=outcome.effect_size,
        effect_size_type=outcome.effect_size_type.value,
        confidence_interval=outcome.confidence_interval,
        confidence_level=outcome.confidence_level,
        confidence_interval_method=outcome.confidence_interval_method,
        sample_sizes=outcome.summary.sample_sizes,
        means=outcome.summary.means,
        std_devs=outcome.summary.std_devs,
        medians=outcome.summary.medians,
        difference=outcome.difference,
        effect_sizes=outcome.effect_sizes,
        pairwise=outcome.pairwise,
        power=outcome.power,
        bootstrap=outcome.bootstrap,
        pairs=result.pairs,
        unpaired_dropped=result.unpaired_dropped,
        options=result.options,
        interpretation=outcome.interpretation,
        created_at=iso_z(result.created_at),
    )
