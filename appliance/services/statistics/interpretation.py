"""What a result means, in words: significance at alpha, the effect's magnitude by the
usual thresholds (core/effect_magnitude.py), and a sentence a reader can quote, which
says so when a non-significant result only reflects too few samples."""

from __future__ import annotations

from appliance.core.effect_magnitude import LABELS, THRESHOLDS, magnitude
from appliance.core.statistics import BINARY_TESTS, Alternative, EffectSizeType, Interpretation, TestSpec
from appliance.services.statistics.common import Computed

_STANDARDIZED = {"cohens_d": EffectSizeType.COHENS_D, "cohens_d_z": EffectSizeType.COHENS_D_Z}
_POWER_UNITS = {
    "cohens_d": "Cohen's d",
    "cohens_d_z": "Cohen's d_z",
    "eta_squared": "eta squared",
    "cohens_w": "Cohen's w",
    "proportion_difference": "a difference in success rate",
}


def number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.3e}"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _magnitude(computed: Computed) -> tuple[str, str]:
    outcome = computed.outcome
    if outcome.effect_size_type in THRESHOLDS:
        return magnitude(outcome.effect_size_type, outcome.effect_size)
    for name, kind in _STANDARDIZED.items():
        if name in outcome.effect_sizes:
            label, source = magnitude(kind, outcome.effect_sizes[name])
            return label, f"{LABELS[kind]} of the same comparison, {source}"
    raise ValueError(f"no magnitude for {outcome.effect_size_type}")


def _effect_text(computed: Computed, size: str) -> str:
    outcome = computed.outcome
    text = f"{LABELS[outcome.effect_size_type]} = {number(outcome.effect_size)}"
    if outcome.confidence_interval:
        low, high = outcome.confidence_interval
        text += f", {outcome.confidence_level:.0%} CI {number(low)} to {number(high)}"
    return f"a {size} effect ({text})"


def _power_text(spec: TestSpec, computed: Computed) -> str:
    found = computed.outcome.power
    if found is None:
        return ""
    unit = _POWER_UNITS.get(found.effect_size_type, found.effect_size_type)
    detectable = f"{unit} of at least {number(found.minimum_detectable_effect)}"
    observed = computed.observed_for_power
    if observed is not None and abs(observed) < found.minimum_detectable_effect:
        return (
            f" With these sample sizes only effects of {detectable} are detected with {found.power:.0%} power, and "
            f"the observed one ({number(abs(observed))}) is smaller: this does not show the groups are equivalent; "
            "more samples are needed to tell."
        )
    return f" These sample sizes detect effects of {detectable} with {found.power:.0%} power."


def interpret(spec: TestSpec, computed: Computed, metric: str) -> Interpretation:
    outcome = computed.outcome
    alpha = spec.options.alpha
    significant = outcome.p_value < alpha
    size, thresholds = _magnitude(computed)
    means = outcome.summary.means
    rates = spec.test_type in BINARY_TESTS
    what = "success rate" if rates else "mean"
    groups = spec.groups
    test = f"{outcome.method}, {p_text(outcome.p_value)}"
    if len(groups) == 2:
        a, b = groups
        levels = f"{what} {number(means[0])} vs {number(means[1])}"
        if significant:
            verb = "higher" if means[0] > means[1] else "lower"
            if spec.options.alternative is not Alternative.TWO_SIDED:
                verb = "higher" if spec.options.alternative is Alternative.GREATER else "lower"
            sentence = (
                f"{a} scores significantly {verb} than {b} on {metric} ({levels}; {test}, α = {alpha:g}), "
                f"{_effect_text(computed, size)}."
            )
        else:
            sentence = (
                f"No significant difference between {a} and {b} on {metric} at α = {alpha:g} ({levels}; {test}); "
                f"the observed difference is {_effect_text(computed, size)}."
            )
    else:
        best = max(range(len(groups)), key=lambda i: means[i])
        if significant:
            sentence = (
                f"The groups differ on {metric} ({test}, α = {alpha:g}), {_effect_text(computed, size)}; "
                f"{groups[best]} has the highest {what} ({number(means[best])})."
            )
            differing = [p for p in outcome.pairwise or [] if p.significant]
            if differing:
                pairs = "; ".join(
                    f"{p.groups[0]} {'>' if p.mean_difference > 0 else '<'} {p.groups[1]} "
                    f"(adjusted {p_text(p.adjusted_p_value)})"
                    for p in differing
                )
                sentence += f" Pairwise ({spec.options.correction.value}): {pairs}."
            else:
                sentence += " No single pair differs significantly after the correction."
        else:
            sentence = (
                f"No significant difference among {', '.join(groups)} on {metric} at α = {alpha:g} ({test}); "
                f"the observed spread is {_effect_text(computed, size)}."
            )
    if not significant:
        sentence += _power_text(spec, computed)
    return Interpretation(
        significance="significant" if significant else "not_significant",
        effect_magnitude=size,
        practical_significance=sentence,
        magnitude_thresholds=thresholds,
        notes=list(computed.notes),
    )
