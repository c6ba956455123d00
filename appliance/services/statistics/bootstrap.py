"""Bootstrap tests of a difference of means, seeded so a stored result can be recomputed.

`paired_bootstrap` resamples the items (the same resample under both conditions), the
test NLP and ML papers use to compare two systems on one test set (Efron & Tibshirani,
1993, An Introduction to the Bootstrap, ch. 16; Koehn, 2004; Berg-Kirkpatrick et al.,
2012). `bootstrap` resamples each independent group on its own. Both give the percentile
interval of the difference, and a p-value from the resampled differences centred on the
observed one (the distribution under "no difference"): two-sided, the share of resamples
at least as far from the observed difference as the observed difference is from 0,
counted as (1 + hits) / (1 + resamples) so it is never 0 (Davison & Hinkley, 1997, eq. 4.11).
"""

from __future__ import annotations

from appliance.core.statistics import (
    Alternative,
    Bootstrap,
    EffectSizeType,
    GroupedValues,
    Interval,
    TestOutcome,
    TestSpec,
)
from appliance.services.statistics import effect_sizes, power
from appliance.services.statistics.common import Computed, arrays, described, need_each
from appliance.services.statistics.numeric import Array, degenerate, num, numpy

# Resamples times values, over which a request is refused: about two seconds of work.
MAX_WORK = 200_000_000
_CHUNK_CELLS = 4_000_000  # resample rows drawn at once, times values: bounds the memory


def check_budget(resamples: int, values: int) -> None:
    if resamples * values > MAX_WORK:
        most = max(1, MAX_WORK // values)
        raise degenerate(
            "options.resamples",
            f"{resamples} resamples of {values} values is more work than one request may ask "
            f"({MAX_WORK:,} resampled values); at most {most} resamples for this data",
        )


def _resampled_means(values: Array, resamples: int, rng: object) -> Array:
    """The mean of each of `resamples` resamples (with replacement) of `values`."""
    np = numpy()
    n = len(values)
    rows = max(1, _CHUNK_CELLS // n)
    means = []
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        picks = rng.integers(0, n, size=(count, n))  # type: ignore[attr-defined]
        means.append(values[picks].mean(axis=1))
    result: Array = np.concatenate(means)
    return result


def p_value(resampled: Array, observed: float, alternative: Alternative) -> float:
    centred = resampled - observed
    if alternative is Alternative.GREATER:
        hits = int((centred >= observed).sum())
    elif alternative is Alternative.LESS:
        hits = int((centred <= observed).sum())
    else:
        hits = int((numpy().abs(centred) >= abs(observed)).sum())
    return (1 + hits) / (1 + len(resampled))


def _percentile_interval(resampled: Array, level: float) -> list[float]:
    tail = (1 - level) / 2
    low, high = numpy().quantile(resampled, [tail, 1 - tail])
    return [num(low), num(high)]


def paired_bootstrap(spec: TestSpec, data: GroupedValues) -> Computed:
    first, second = arrays(data)
    n = len(first)
    if n < 2:
        raise degenerate(
            "data", f"{n} pair(s); the paired bootstrap needs at least 2 items scored under both conditions"
        )
    diff = first - second
    observed = num(diff.mean())
    if num(diff.max()) == num(diff.min()):
        raise degenerate(
            "data",
            f"every difference between the pairs is {observed:g}: every resample gives the same mean, so the "
            "bootstrap says nothing about its uncertainty",
        )
    options = spec.options
    check_budget(options.resamples, n)
    rng = numpy().random.default_rng(options.seed)
    resampled = _resampled_means(diff, options.resamples, rng)
    return _mean_difference(
        spec,
        f"paired bootstrap of the mean difference ({options.resamples} resamples of the {n} items)",
        [first, second],
        resampled,
        observed,
        ("cohens_d_z", observed / num(diff.std(ddof=1))),
        power.paired_t(n, options.alpha, options.power, options.alternative),
        f"noncentral t, df {n - 1}",
    )


def independent_bootstrap(spec: TestSpec, data: GroupedValues) -> Computed:
    x, y = arrays(data)
    need_each(spec, [x, y], 2, "a resample of one value has no spread")
    if num(x.max()) == num(x.min()) and num(y.max()) == num(y.min()):
        raise degenerate("data", "both groups hold one repeated value each: every resample gives the same difference")
    options = spec.options
    check_budget(options.resamples, len(x) + len(y))
    rng = numpy().random.default_rng(options.seed)
    resampled = _resampled_means(x, options.resamples, rng) - _resampled_means(y, options.resamples, rng)
    observed = num(x.mean()) - num(y.mean())
    return _mean_difference(
        spec,
        f"bootstrap of the difference of means ({options.resamples} resamples of each group)",
        [x, y],
        resampled,
        observed,
        ("cohens_d", observed / effect_sizes.pooled_sd(x, y)),
        power.two_sample_t(len(x), len(y), options.alpha, options.power, options.alternative),
        f"noncentral t, df {len(x) + len(y) - 2}",
    )


def _mean_difference(
    spec: TestSpec,
    method: str,
    groups: list[Array],
    resampled: Array,
    observed: float,
    standardised: tuple[str, float],
    mde: float,
    power_model: str,
) -> Computed:
    """A bootstrap's outcome: the observed mean difference, its percentile interval and
    p-value from the resampled ones, and the standardised effect (`standardised`, a name
    and its value) that power is judged by."""
    options = spec.options
    interval = _percentile_interval(resampled, spec.level)
    effect_name, effect = standardised
    outcome = TestOutcome(
        method=method,
        statistic=observed,
        statistic_name="mean difference",
        degrees_of_freedom=None,
        p_value=p_value(resampled, observed, options.alternative),
        effect_size=observed,
        effect_size_type=EffectSizeType.MEAN_DIFFERENCE,
        confidence_interval=interval,
        confidence_interval_method="bootstrap percentile",
        confidence_level=spec.level,
        summary=described(groups),
        difference=Interval(estimate=observed, confidence_interval=interval, type="mean_difference"),
        effect_sizes={effect_name: effect, "standard_error": num(resampled.std(ddof=1))},
        power=power.analysis(mde, effect_name, options.alpha, options.power, power_model),
        bootstrap=Bootstrap(resamples=options.resamples, seed=options.seed),
    )
    return Computed(outcome=outcome, observed_for_power=effect)
