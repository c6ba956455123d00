"""The minimum detectable effect: the smallest effect that the sample sizes at hand would
detect with the asked power (default 0.8) at alpha. Beside a non-significant result it
says whether "no difference" means "no difference bigger than this" or only "too few
samples". It is computed for the design, not from the observed effect (post-hoc power
from the observed effect only restates the p-value: Hoenig & Heisey, 2001).

- t-tests: the exact power of the t-test under the noncentral t (Cohen, 1988, ch. 2),
  solved for d (two groups) or d_z (pairs).
- rank tests: the same with the sample sizes scaled by the asymptotic relative
  efficiency 3/π of the rank tests to the t-test under normality (Lehmann, 1975,
  Nonparametrics, ch. 2).
- one-way ANOVA: noncentral F with λ = f² N, reported as eta squared f² / (1 + f²)
  (Cohen, 1988, ch. 8); Kruskal-Wallis with N scaled by 3/π.
- proportions of independent groups: noncentral chi-square with λ = w² N, df = k - 1, in
  Cohen's w (Cohen, 1988, ch. 7); for two groups w equals the phi coefficient.
- McNemar: the difference of the paired proportions, at the observed share of
  discordant pairs ψ (Connor, 1987, Biometrics 43:207-211).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from appliance.core.statistics import Alternative, PowerAnalysis
from appliance.services.statistics.numeric import brentq, num, scipy_stats, z_quantile

RANK_EFFICIENCY = 3 / math.pi


def _smallest(power_at: Callable[[float], float], target: float, high: float) -> float:
    """The effect at which the increasing `power_at` reaches `target`."""
    while power_at(high) < target:
        high *= 2
        if high > 1e6:
            raise ArithmeticError("no detectable effect")
    found: float = brentq()(lambda e: power_at(e) - target, 1e-12, high, xtol=1e-8)
    return found


def _t_power(nc: float, df: float, alpha: float, alternative: Alternative) -> float:
    stats = scipy_stats()
    if alternative is Alternative.TWO_SIDED:
        critical = num(stats.t.ppf(1 - alpha / 2, df))
        return num(stats.nct.sf(critical, df, nc)) + num(stats.nct.cdf(-critical, df, nc))
    critical = num(stats.t.ppf(1 - alpha, df))
    return num(stats.nct.sf(critical, df, nc))


def two_sample_t(n1: float, n2: float, alpha: float, power: float, alternative: Alternative) -> float:
    """The smallest |d| two independent groups of n1 and n2 detect."""
    scale = math.sqrt(n1 * n2 / (n1 + n2))
    df = n1 + n2 - 2
    return _smallest(lambda d: _t_power(d * scale, df, alpha, alternative), power, 1.0)


def paired_t(n: float, alpha: float, power: float, alternative: Alternative) -> float:
    """The smallest |d_z| n pairs detect."""
    return _smallest(lambda d: _t_power(d * math.sqrt(n), n - 1, alpha, alternative), power, 1.0)


def anova(n: float, k: int, alpha: float, power: float) -> float:
    """The smallest eta squared k groups of n observations in all detect."""
    stats = scipy_stats()
    df1, df2 = k - 1, n - k
    critical = num(stats.f.ppf(1 - alpha, df1, df2))

    def power_at(f: float) -> float:
        return num(stats.ncf.sf(critical, df1, df2, f * f * n))

    f = _smallest(power_at, power, 0.5)
    return f * f / (1 + f * f)


def chi_square_w(n: float, df: int, alpha: float, power: float) -> float:
    stats = scipy_stats()
    critical = num(stats.chi2.ppf(1 - alpha, df))
    return _smallest(lambda w: num(stats.ncx2.sf(critical, df, w * w * n)), power, 0.5)


def mcnemar_difference(n: int, discordant_share: float, alpha: float, power: float, one_sided: bool) -> float:
    """The smallest |p10 - p01| n pairs detect when a share ψ of them is discordant
    (Connor's sample size formula solved for the difference; δ is below ψ)."""
    z_alpha = z_quantile(1 - (alpha if one_sided else alpha / 2))
    z_beta = z_quantile(power)
    psi = discordant_share

    def needed(delta: float) -> float:
        return (z_alpha * math.sqrt(psi) + z_beta * math.sqrt(max(psi - delta * delta, 0.0))) ** 2 / delta**2

    if needed(psi) > n:
        return psi  # no difference possible at this discordance is detectable
    found: float = brentq()(lambda d: needed(d) - n, 1e-9, psi, xtol=1e-10)
    return found


def analysis(effect: float, kind: str, alpha: float, power: float, method: str) -> PowerAnalysis:
    return PowerAnalysis(
        minimum_detectable_effect=effect, effect_size_type=kind, power=power, alpha=alpha, method=method
    )
