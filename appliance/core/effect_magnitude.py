"""How large an effect is, by the conventions readers know, each with its source.

- Cohen's d, Hedges' g (and their paired forms d_z, g_z): 0.2 small, 0.5 medium, 0.8
  large (Cohen, 1988, Statistical Power Analysis for the Behavioral Sciences, ch. 2).
- rank-biserial correlation: as a correlation, 0.1 small, 0.3 medium, 0.5 large (Cohen,
  1988, ch. 3, the convention used for r_rb; Kerby, 2014).
- eta squared (and the Kruskal-Wallis eta squared H): 0.01 small, 0.06 medium, 0.14
  large (Cohen, 1988, ch. 8).
- odds ratio: 1.68 small, 3.47 medium, 6.71 large, a ratio below 1 read as its inverse
  (Chen, Cohen & Chen, 2010, Commun. Stat. Simul. Comput. 39:860-864; the equivalents
  of d = 0.2, 0.5, 0.8 at a 1% base rate).
- Cramér's V on a 2 x k table: Cohen's w, 0.1 small, 0.3 medium, 0.5 large (Cohen,
  1988, ch. 7).
A mean difference has no scale of its own: its magnitude is read from the standardized
effect of the same comparison (d for independent groups, d_z for pairs).
"""

from __future__ import annotations

from appliance.core.statistics import EffectSizeType

NEGLIGIBLE, SMALL, MEDIUM, LARGE = "negligible", "small", "medium", "large"

_D = ((0.2, 0.5, 0.8), "Cohen (1988): |d| 0.2 small, 0.5 medium, 0.8 large")
_R = ((0.1, 0.3, 0.5), "Cohen (1988) for correlations: |r| 0.1 small, 0.3 medium, 0.5 large")
_ETA = ((0.01, 0.06, 0.14), "Cohen (1988): eta squared 0.01 small, 0.06 medium, 0.14 large")
_OR = (
    (1.68, 3.47, 6.71),
    "Chen, Cohen & Chen (2010): odds ratio 1.68 small, 3.47 medium, 6.71 large (below 1: its inverse)",
)
_W = ((0.1, 0.3, 0.5), "Cohen (1988) for w: V 0.1 small, 0.3 medium, 0.5 large")

THRESHOLDS: dict[EffectSizeType, tuple[tuple[float, float, float], str]] = {
    EffectSizeType.COHENS_D: _D,
    EffectSizeType.HEDGES_G: _D,
    EffectSizeType.COHENS_D_Z: _D,
    EffectSizeType.HEDGES_G_Z: _D,
    EffectSizeType.RANK_BISERIAL: _R,
    EffectSizeType.ETA_SQUARED: _ETA,
    EffectSizeType.ETA_SQUARED_H: _ETA,
    EffectSizeType.ODDS_RATIO: _OR,
    EffectSizeType.CRAMERS_V: _W,
}

LABELS = {
    EffectSizeType.COHENS_D: "Cohen's d",
    EffectSizeType.HEDGES_G: "Hedges' g",
    EffectSizeType.COHENS_D_Z: "Cohen's d_z",
    EffectSizeType.HEDGES_G_Z: "Hedges' g_z",
    EffectSizeType.RANK_BISERIAL: "rank-biserial r",
    EffectSizeType.ETA_SQUARED: "eta squared",
    EffectSizeType.ETA_SQUARED_H: "eta squared (H)",
    EffectSizeType.ODDS_RATIO: "odds ratio",
    EffectSizeType.CRAMERS_V: "Cramér's V",
    EffectSizeType.MEAN_DIFFERENCE: "mean difference",
}


def magnitude(kind: EffectSizeType, value: float) -> tuple[str, str]:
    """The label of `value` ("negligible" to "large") and the thresholds it was read by."""
    if kind not in THRESHOLDS:
        raise ValueError(f"{kind} has no magnitude scale of its own")
    (small, medium, large), source = THRESHOLDS[kind]
    size = abs(value)
    if kind is EffectSizeType.ODDS_RATIO:
        if value <= 0:
            raise ValueError("an odds ratio is positive")
        size = value if value >= 1 else 1 / value
    if size >= large:
        return LARGE, source
    if size >= medium:
        return MEDIUM, source
    if size >= small:
        return SMALL, source
    return NEGLIGIBLE, source
