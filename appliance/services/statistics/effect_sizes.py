"""Effect sizes and their confidence intervals, which scipy does not compute.

- Cohen's d for two groups uses the pooled SD (Cohen, 1988, eq. 2.3.2); d_z for pairs is
  the mean difference over the SD of the differences (Cohen, 1988, eq. 2.3.5). Hedges' g
  multiplies by the exact small-sample factor J(df) = Γ(df/2) / (√(df/2) Γ((df-1)/2))
  (Hedges & Olkin, 1985, Statistical Methods for Meta-Analysis, eq. 5.4.10); their
  intervals invert the noncentral t distribution of the t statistic (Steiger & Fouladi,
  1997; Cumming & Finch, 2001), J scaling g's.
- rank-biserial r: 2U/(n1 n2) - 1 for two groups (Wendt, 1972), (T+ - T-)/(T+ + T-)
  for pairs (Kerby, 2014, the simple difference formula).
- eta squared: SS_between / SS_total, its interval from the noncentral F distribution
  (Steiger, 2004, Psychol. Methods 9:164-182), η² = λ / (λ + N).
- odds ratio (a d) / (b c) with Woolf's logit interval; a table with a zero cell gets
  0.5 added to every cell first (Haldane, 1956), as the result's notes say.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from appliance.services.statistics.numeric import Array, brentq, num, numpy, scipy_stats, z_quantile


def pooled_sd(x: Array, y: Array) -> float:
    n1, n2 = len(x), len(y)
    ss = num(numpy().var(x, ddof=1)) * (n1 - 1) + num(numpy().var(y, ddof=1)) * (n2 - 1)
    return math.sqrt(ss / (n1 + n2 - 2))


def hedges_j(df: float) -> float:
    """Hedges' exact bias correction J(df); 1 - 3/(4 df - 1) is its approximation."""
    return math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2))


def _root(f: Callable[[float], float], start: float, step: float = 2.0) -> float:
    """The root of a decreasing `f`, bracketed outward from `start`."""
    low, high, width = start - step, start + step, step
    for _ in range(60):
        if f(low) > 0 > f(high):
            found: float = brentq()(f, low, high, xtol=1e-10)
            return found
        width *= 2
        low, high = start - width, start + width
    raise ArithmeticError("no root found")


def noncentral_t_interval(t: float, df: float, level: float) -> tuple[float, float]:
    """The noncentrality parameters whose t distributions put `t` at the upper and lower
    (1 - level)/2 tails: the interval of the noncentrality behind `t`."""
    nct = scipy_stats().nct
    tail = (1 - level) / 2
    low = _root(lambda nc: num(nct.cdf(t, df, nc)) - (1 - tail), t)
    high = _root(lambda nc: num(nct.cdf(t, df, nc)) - tail, t)
    return low, high


def cohens_d_interval(t: float, n1: int, n2: int, level: float) -> list[float]:
    scale = math.sqrt(1 / n1 + 1 / n2)
    low, high = noncentral_t_interval(t, n1 + n2 - 2, level)
    return [low * scale, high * scale]


def cohens_d_z_interval(t: float, n: int, level: float) -> list[float]:
    low, high = noncentral_t_interval(t, n - 1, level)
    return [low / math.sqrt(n), high / math.sqrt(n)]


def rank_biserial_independent(u_first: float, n1: int, n2: int) -> float:
    """From the U of the first group (pairs where it is larger, ties counting half):
    positive when the first group tends to be larger."""
    return 2 * u_first / (n1 * n2) - 1


def signed_rank_sums(differences: Array) -> tuple[float, float]:
    """T+ and T-: the sums of the ranks of |d| (zeros left out) with d > 0 and d < 0."""
    np = numpy()
    nonzero = differences[differences != 0]
    ranks = scipy_stats().rankdata(np.abs(nonzero))
    return num(ranks[nonzero > 0].sum()), num(ranks[nonzero < 0].sum())


def rank_biserial_paired(differences: Array) -> float:
    plus, minus = signed_rank_sums(differences)
    return (plus - minus) / (plus + minus)


def eta_squared(groups: list[Array]) -> float:
    np = numpy()
    everything = np.concatenate(groups)
    grand = num(everything.mean())
    between = sum(len(g) * (num(g.mean()) - grand) ** 2 for g in groups)
    total = num(((everything - grand) ** 2).sum())
    return between / total


def eta_squared_interval(f: float, df1: int, df2: int, level: float) -> list[float]:
    """From the noncentral F distribution: the λ bounds whose distributions put `f` at
    the tails, as λ / (λ + N), with N = df1 + df2 + 1 observations."""
    ncf = scipy_stats().ncf
    tail = (1 - level) / 2
    n = df1 + df2 + 1

    def bound(target: float) -> float:
        def excess(lam: float) -> float:
            return num(ncf.cdf(f, df1, df2, lam)) - target

        if excess(0.0) <= 0:
            return 0.0
        high = max(10.0, f * df1 * 2)
        while excess(high) > 0:
            high *= 2
        found: float = brentq()(excess, 0.0, high, xtol=1e-10)
        return found

    low, high = bound(1 - tail), bound(tail)
    return [low / (low + n), high / (high + n)]


def odds_ratio(a: float, b: float, c: float, d: float, level: float) -> tuple[float, list[float], bool]:
    """(a d)/(b c), Woolf's interval, and whether Haldane's 0.5 was added (a zero cell)."""
    corrected = min(a, b, c, d) == 0
    if corrected:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    ratio = (a * d) / (b * c)
    spread = z_quantile(1 - (1 - level) / 2) * math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return ratio, [math.exp(math.log(ratio) - spread), math.exp(math.log(ratio) + spread)], corrected


def paired_odds_ratio(b: float, c: float, level: float) -> tuple[float, list[float], bool]:
    """b/c over the discordant pairs, with the interval exp(log(b/c) ± z √(1/b + 1/c))
    (Agresti, 2013, Categorical Data Analysis, 3rd ed., sec. 11.1.4)."""
    corrected = min(b, c) == 0
    if corrected:
        b, c = b + 0.5, c + 0.5
    ratio = b / c
    spread = z_quantile(1 - (1 - level) / 2) * math.sqrt(1 / b + 1 / c)
    return ratio, [math.exp(math.log(ratio) - spread), math.exp(math.log(ratio) + spread)], corrected


def cramers_v(chi2: float, n: int, rows: int, columns: int) -> float:
    return math.sqrt(chi2 / (n * (min(rows, columns) - 1)))
