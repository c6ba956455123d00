"""The statistics engine against worked textbook examples with published numbers.

Each test names its source. Where a source prints a value to a few digits, the check is
to those digits; effect sizes, which scipy does not compute, are checked against the
published value or against the formula worked by hand on the same data.
"""

from __future__ import annotations

import math

import msgspec
import pytest

from appliance.core import statistics as st
from appliance.core.errors import ValidationError
from appliance.services.statistics import power
from appliance.services.statistics.engine import run_test
from appliance.services.statistics.pairwise import adjust

# Student (1908), "The probable error of a mean", Biometrika 6:1-25: Cushny & Peebles'
# extra hours of sleep of 10 patients under two drugs (R's `sleep` data). R's t.test
# prints: paired t = -4.0621, df = 9, p = 0.002833, CI of the mean difference
# [-2.4598858, -0.7001142]; Welch t = -1.8608, df = 17.776, p = 0.07939, CI
# [-3.3654832, 0.2054832]; Student t = -1.8608, df = 18, p = 0.07919, CI [-3.363874, 0.203874].
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Lakens (2013), "Calculating and reporting effect sizes", Front. Psychol. 4:863, Table 1:
# two movies rated by the same 10 people. Published: t(18) = 2.52, p = 0.022, Cohen's
# d_s = 1.13, Hedges' g_s = 1.08; paired t(9) = 4.74, p = 0.001, Cohen's d_z = 1.50.
MOVIE_1 = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]
MOVIE_2 = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]

# Dobson (1983), An Introduction to Statistical Modelling, Table 7.1 (R's PlantGrowth):
# F(2, 27) = 4.846, p = 0.01591; SS between 3.76634, total 14.25843. Kruskal-Wallis
# chi-squared = 7.9882, df = 2, p = 0.01842.
PLANTS = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}


def run(test: str, groups: dict[str, list[float]], **options: object) -> st.TestOutcome:
    names = list(groups)
    spec = st.TestSpec(test_type=st.TestType(test), groups=names, options=msgspec.convert(options, st.TestOptions))
    return run_test(
        spec, st.GroupedValues(groups=names, values=[list(map(float, v)) for v in groups.values()]), "score"
    )


def refused(test: str, groups: dict[str, list[float]], *words: str, **options: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        run(test, groups, **options)
    for word in words:
        assert word in caught.value.detail, caught.value.detail
    assert caught.value.details, "a refusal names its field"
    return caught.value


def test_paired_t_on_students_sleep_data():
    out = run("paired_t_test", {"drug1": SLEEP_1, "drug2": SLEEP_2})
    assert out.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert out.degrees_of_freedom == [9.0]
    assert out.p_value == pytest.approx(0.002833, abs=1e-6)
    assert out.difference is not None and out.difference.estimate == pytest.approx(-1.58)
    assert out.difference.confidence_interval == pytest.approx([-2.4598858, -0.7001142], abs=1e-6)
    # d_z by hand: -1.58 / SD of the differences (1.229995)
    assert out.effect_size == pytest.approx(-1.58 / 1.229995, abs=1e-5)
    assert out.interpretation is not None and out.interpretation.significance == "significant"
    assert out.interpretation.effect_magnitude == "large"


def test_welch_and_student_t_on_students_sleep_data():
    welch = run("two_sample_t_test", {"drug1": SLEEP_1, "drug2": SLEEP_2})
    assert welch.method.startswith("Welch")
    assert welch.statistic == pytest.approx(-1.8608, abs=1e-4)
    assert welch.degrees_of_freedom is not None and welch.degrees_of_freedom[0] == pytest.approx(17.776, abs=1e-3)
    assert welch.p_value == pytest.approx(0.07939, abs=1e-5)
    assert welch.difference is not None
    assert welch.difference.confidence_interval == pytest.approx([-3.3654832, 0.2054832], abs=1e-6)
    student = run("student_t_test", {"drug1": SLEEP_1, "drug2": SLEEP_2})
    assert student.degrees_of_freedom == [18.0] and student.p_value == pytest.approx(0.07919, abs=1e-5)
    assert student.difference is not None
    assert student.difference.confidence_interval == pytest.approx([-3.363874, 0.203874], abs=1e-6)
    assert run("two_sample_t_test", {"a": SLEEP_1, "b": SLEEP_2}, equal_var=True).p_value == student.p_value
    assert welch.interpretation is not None and welch.interpretation.significance == "not_significant"
    # Not significant with a large observed d: the sentence says the samples were too few.
    assert "more samples are needed" in welch.interpretation.practical_significance


def test_effect_sizes_of_lakens_2013_table_1():
    independent = run("student_t_test", {"movie1": MOVIE_1, "movie2": MOVIE_2})
    assert independent.statistic == pytest.approx(2.52, abs=0.005)
    assert independent.p_value == pytest.approx(0.022, abs=0.0005)
    assert independent.effect_size == pytest.approx(1.13, abs=0.005)
    assert independent.effect_sizes["hedges_g"] == pytest.approx(1.08, abs=0.005)
    g = run("student_t_test", {"movie1": MOVIE_1, "movie2": MOVIE_2}, effect_size="hedges_g")
    assert g.effect_size_type == "hedges_g" and g.effect_size == pytest.approx(1.08, abs=0.005)
    paired = run("paired_t_test", {"movie1": MOVIE_1, "movie2": MOVIE_2})
    assert paired.statistic == pytest.approx(4.74, abs=0.005)
    assert paired.p_value == pytest.approx(0.001, abs=0.0005)
    assert paired.effect_size == pytest.approx(1.50, abs=0.005)


def test_cohens_d_interval_agrees_with_hedges_and_olkin():
    """The noncentral-t interval of d, against Hedges & Olkin's (1985, eq. 5.4.15)
    large-sample variance (n1 + n2)/(n1 n2) + d²/(2 (n1 + n2)) on 50 + 50 values."""
    first = [((i * 37) % 50) / 10 + 1.0 for i in range(50)]
    second = [((i * 23) % 50) / 10 for i in range(50)]
    out = run("student_t_test", {"a": first, "b": second})
    d = out.effect_size
    half = 1.959964 * math.sqrt(100 / 2500 + d * d / 200)
    assert out.confidence_interval == pytest.approx([d - half, d + half], abs=0.01)
    assert out.confidence_interval[0] < d < out.confidence_interval[1]


def test_mann_whitney_on_hollander_and_wolfe():
    """Hollander & Wolfe (1973), Nonparametric Statistical Methods, p. 69: permeability
    constants of the human chorioamnion at term (x) and at 12-26 weeks (y); R's
    wilcox.test(x, y, alternative = "greater"): W = 35, p = 0.1272 (exact)."""
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    out = run("mann_whitney_u", {"term": x, "early": y}, alternative="greater")
    assert out.statistic == 35
    assert out.p_value == pytest.approx(0.1272, abs=1e-4)
    assert "exact" in out.method
    # rank-biserial 2U/(n1 n2) - 1 (Wendt, 1972) = 70/50 - 1
    assert out.effect_size == pytest.approx(0.4) and out.effect_size_type == "rank_biserial"
    assert out.interpretation is not None and out.interpretation.effect_magnitude == "medium"


def test_wilcoxon_signed_rank_on_hollander_and_wolfe():
    """Hollander & Wolfe (1973), p. 29: Hamilton depression scale before (x) and after
    (y) tranquilizer; R's wilcox.test(x, y, paired = TRUE, alternative = "greater"):
    V = 40, p = 0.01953."""
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    out = run("wilcoxon_signed_rank", {"before": x, "after": y}, alternative="greater")
    assert out.statistic == 40
    assert out.p_value == pytest.approx(0.01953, abs=1e-5)
    # Kerby's (2014) simple difference: (T+ - T-) / (T+ + T-) = (40 - 5) / 45
    assert out.effect_size == pytest.approx(35 / 45)


def test_one_way_anova_and_kruskal_wallis_on_plant_growth():
    out = run("one_way_anova", PLANTS)
    assert out.statistic == pytest.approx(4.846, abs=1e-3)
    assert out.degrees_of_freedom == [2.0, 27.0]
    assert out.p_value == pytest.approx(0.01591, abs=1e-5)
    assert out.effect_size == pytest.approx(3.76634 / 14.25843, abs=1e-5)
    assert out.confidence_interval is not None and 0 < out.confidence_interval[0] < out.effect_size
    assert out.interpretation is not None and out.interpretation.effect_magnitude == "large"
    assert out.pairwise is not None and len(out.pairwise) == 3
    trt = next(p for p in out.pairwise if p.groups == ["trt1", "trt2"])
    assert trt.significant and trt.adjusted_p_value >= trt.p_value
    assert "trt2 has the highest mean" in out.interpretation.practical_significance
    kw = run("kruskal_wallis", PLANTS)
    assert kw.statistic == pytest.approx(7.9882, abs=1e-4) and kw.p_value == pytest.approx(0.01842, abs=1e-5)
    assert kw.effect_size == pytest.approx((7.9882 - 2) / 27, abs=1e-4)


def test_kruskal_wallis_on_hollander_and_wolfe():
    """Hollander & Wolfe (1973), p. 116: mucociliary efficiency; R's kruskal.test:
    chi-squared = 0.77143, df = 2, p = 0.68."""
    out = run(
        "kruskal_wallis",
        {"normal": [2.9, 3.0, 2.5, 2.6, 3.2], "oad": [3.8, 2.7, 4.0, 2.4], "asbestosis": [2.8, 3.4, 3.7, 2.2, 2.0]},
    )
    assert out.statistic == pytest.approx(0.77143, abs=1e-5)
    assert out.p_value == pytest.approx(0.68, abs=0.005)
    assert out.effect_size == 0.0  # (H - k + 1) < 0 is read as no effect


def binary(successes: int, failures: int) -> list[float]:
    return [1.0] * successes + [0.0] * failures


def test_chi_square_and_odds_ratio_on_the_aspirin_study():
    """Agresti (2007), An Introduction to Categorical Data Analysis, 2nd ed., Table 2.3:
    Physicians' Health Study, myocardial infarction under placebo 189/11034 and aspirin
    104/11037. X² = 25.01 (sec. 2.4.3); sample odds ratio 1.832, 95% CI (1.44, 2.33)
    (sec. 2.3.3)."""
    out = run("chi_square", {"placebo": binary(189, 10845), "aspirin": binary(104, 10933)})
    assert out.statistic == pytest.approx(25.01, abs=0.005)
    assert out.p_value < 1e-6
    assert out.effect_size == pytest.approx(1.832, abs=0.0005)
    assert out.confidence_interval == pytest.approx([1.44, 2.33], abs=0.005)
    assert out.interpretation is not None and out.interpretation.effect_magnitude == "small"


def test_fisher_exact_on_the_tea_tasting_lady():
    """Fisher (1935), The Design of Experiments, ch. 2; Agresti (2007) Table 2.8: of 4
    cups with milk poured first she called 3 so, of 4 with tea first 1. One-sided
    P = 0.243, two-sided 0.486."""
    cups = {"milk_first": binary(3, 1), "tea_first": binary(1, 3)}
    out = run("fisher_exact", cups, alternative="greater")
    assert out.p_value == pytest.approx(0.243, abs=5e-4)
    assert out.effect_size == pytest.approx(9.0)  # (3 x 3) / (1 x 1)
    assert run("fisher_exact", cups).p_value == pytest.approx(0.486, abs=5e-4)


def paired_binary(both: int, first_only: int, second_only: int, neither: int) -> dict[str, list[float]]:
    first = [1.0] * both + [1.0] * first_only + [0.0] * second_only + [0.0] * neither
    second = [1.0] * both + [0.0] * first_only + [1.0] * second_only + [0.0] * neither
    return {"first": first, "second": second}


def test_mcnemar_on_agrestis_presidential_approval():
    """Agresti (2007), sec. 8.1, Table 8.1: approval of the president by 1600 people in
    two surveys (794 both, 150 first only, 86 second only, 570 neither). R's
    mcnemar.test: chi-squared = 16.818 (continuity corrected), p = 4.115e-05; the
    difference .59 - .55 = .04 with SE .0095 (sec. 8.1.2)."""
    out = run("mcnemar", paired_binary(794, 150, 86, 570))
    assert "chi-square" in out.method  # 236 discordant pairs: the approximation
    assert out.statistic == pytest.approx(16.818, abs=5e-4)
    assert out.p_value == pytest.approx(4.115e-05, rel=1e-3)
    assert out.summary.means == pytest.approx([0.59, 0.55])
    assert out.difference is not None and out.difference.estimate == pytest.approx(0.04)
    half = out.difference.confidence_interval[1] - 0.04  # type: ignore[index]
    assert half / 1.959964 == pytest.approx(0.0095, abs=5e-5)
    assert out.effect_size == pytest.approx(150 / 86)


def test_mcnemar_exact_below_25_discordant_pairs():
    """Fagerland, Lydersen & Laake (2013), BMC Med. Res. Methodol. 13:91, Table 1:
    airway hyper-responsiveness of 21 children before and after stem cell
    transplantation, b = 1, c = 7: exact conditional p = 0.070; asymptotic McNemar
    (uncorrected) p = 0.034."""
    data = paired_binary(1, 1, 7, 12)
    exact = run("mcnemar", data)
    assert "exact" in exact.method
    assert exact.p_value == pytest.approx(0.0703, abs=5e-4)
    assert exact.interpretation is not None and "exact below 25" in exact.interpretation.notes[-1]
    corrected = run("mcnemar", data, method="chi_square")
    assert corrected.statistic == pytest.approx((6 - 1) ** 2 / 8)  # Edwards: (|b - c| - 1)² / (b + c)


def test_bootstraps_are_seeded_and_agree_with_theory():
    """Efron & Tibshirani (1993), An Introduction to the Bootstrap, Table 2.1: the mouse
    data; difference of means 30.63, standard error 28.93 by the formula."""
    treatment = [94, 197, 16, 38, 99, 141, 23]
    control = [52, 104, 146, 10, 51, 30, 40, 27, 46]
    out = run("bootstrap", {"treatment": treatment, "control": control}, resamples=20000, seed=7)
    assert out.effect_size == pytest.approx(30.63, abs=0.005)
    # the bootstrap SE uses n in place of n - 1: sqrt((n-1)/n) of the formula's, per group
    assert out.effect_sizes["standard_error"] == pytest.approx(28.93, rel=0.12)
    assert out.bootstrap is not None and (out.bootstrap.resamples, out.bootstrap.seed) == (20000, 7)
    again = run("bootstrap", {"treatment": treatment, "control": control}, resamples=20000, seed=7)
    assert again.confidence_interval == out.confidence_interval and again.p_value == out.p_value
    paired = run("paired_bootstrap", {"drug1": SLEEP_1, "drug2": SLEEP_2})
    # Same items, large effect: the paired t-test's conclusion; the percentile interval is
    # near the normal one with the plug-in SE (SD of the differences x sqrt((n-1)/n) / sqrt(n)).
    assert paired.p_value < 0.01 and paired.effect_size == pytest.approx(-1.58)
    plug_in = 1.229995 * math.sqrt(9 / 10) / math.sqrt(10)
    assert paired.effect_sizes["standard_error"] == pytest.approx(plug_in, rel=0.03)
    assert paired.confidence_interval == pytest.approx([-1.58 - 1.96 * plug_in, -1.58 + 1.96 * plug_in], abs=0.15)


def test_minimum_detectable_effects_match_cohens_tables():
    """Cohen (1988): two groups of 64 detect d = 0.5 with power 0.80 at alpha 0.05
    two-sided (Table 2.4.1); 3 groups of 52-53 detect f = 0.25 (Table 8.4.4); 87
    observations detect w = 0.3 at df 1 (Table 7.4.6)."""
    assert power.two_sample_t(64, 64, 0.05, 0.8, st.Alternative.TWO_SIDED) == pytest.approx(0.5, abs=0.005)
    eta = power.anova(159, 3, 0.05, 0.8)
    assert math.sqrt(eta / (1 - eta)) == pytest.approx(0.25, abs=0.005)
    assert power.chi_square_w(87, 1, 0.05, 0.8) == pytest.approx(0.30, abs=0.005)


def test_holm_and_bonferroni_adjustments():
    """Holm (1979): the i-th smallest of m p-values times (m - i + 1), kept monotone;
    worked by hand."""
    assert adjust([0.01, 0.04, 0.03, 0.005], st.Correction.HOLM) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust([0.01, 0.04, 0.03, 0.005], st.Correction.BONFERRONI) == pytest.approx([0.04, 0.16, 0.12, 0.02])


def test_one_sided_alternatives_follow_the_groups_order():
    greater = run("welch_t_test", {"a": SLEEP_2, "b": SLEEP_1}, alternative="greater")
    less = run("welch_t_test", {"a": SLEEP_2, "b": SLEEP_1}, alternative="less")
    two = run("welch_t_test", {"a": SLEEP_2, "b": SLEEP_1})
    assert greater.p_value == pytest.approx(two.p_value / 2)
    assert less.p_value == pytest.approx(1 - two.p_value / 2)


@pytest.mark.parametrize(
    ("test", "groups", "words"),
    [
        ("two_sample_t_test", {"a": [1.0], "b": [2.0, 3.0]}, ("at least 2",)),
        ("student_t_test", {"a": [1.0, 1.0], "b": [2.0, 2.0]}, ("no variance",)),
        ("paired_t_test", {"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.0]}, ("no variance",)),
        ("wilcoxon_signed_rank", {"a": [1.0, 2.0], "b": [1.0, 2.0]}, ("same value",)),
        ("mann_whitney_u", {"a": [3.0, 3.0], "b": [3.0]}, ("nothing to compare",)),
        ("one_way_anova", {"a": [1.0], "b": [2.0], "c": [3.0]}, ("more values than groups",)),
        ("mcnemar", {"a": [1.0, 0.0], "b": [1.0, 0.0]}, ("no discordant pair",)),
        ("chi_square", {"a": [1.0, 1.0], "b": [1.0]}, ("cannot differ",)),
        ("fisher_exact", {"a": [0.5, 1.0], "b": [1.0, 0.0]}, ("0 and 1",)),
        ("paired_bootstrap", {"a": [1.0, 2.0], "b": [0.0, 1.0]}, ("same mean",)),
    ],
)
def test_too_few_values_or_no_variance_is_refused_with_a_reason(test, groups, words):
    refused(test, groups, *words)


def test_requests_a_test_does_not_take_are_refused_naming_each_field():
    error = refused(
        "one_way_anova",
        {"a": [1.0, 2.0], "b": [2.0, 3.0]},
        alpha=1.5,
        alternative="greater",
        method="exact",
    )
    fields = error.details["fields"]  # type: ignore[index]
    assert {"options.alpha", "options.alternative", "options.method"} <= set(fields)  # type: ignore[arg-type]
    refused("mcnemar", {"a": [1.0], "b": [0.0], "c": [1.0]}, "exactly 2")
    refused("bootstrap", {"a": [1.0, 2.0] * 5000, "b": [2.0, 3.0] * 5000}, "resamples", resamples=100_000)
