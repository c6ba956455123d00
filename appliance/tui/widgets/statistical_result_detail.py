"""The selected statistical result in full: the test and its figures, each group's
summary, the interpretation's sentence, the smallest effect the samples could detect,
and the pairwise comparisons of more than two groups."""

from __future__ import annotations

from typing import Any

from textual.content import Content

from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.detail_panel import DetailPanel

SIGNIFICANCE_STYLE = {"significant": "bold $success", "not_significant": "$warning"}


def figure(value: Any) -> str:
    """A number as a reader wants it: 4 significant digits, small p-values in e-notation."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def interval(values: list[float] | None) -> str:
    return f"[{figure(values[0])}, {figure(values[1])}]" if values else "—"


def result_content(result: dict[str, Any]) -> Content:
    interpretation = result.get("interpretation") or {}
    significance = interpretation.get("significance", "")
    level = result.get("confidence_level") or 0.95
    parts = [
        Content.assemble(
            (result.get("id", "?"), "bold"),
            "  ",
            (significance.replace("_", " "), SIGNIFICANCE_STYLE.get(significance, "")),
            "  ",
            f"{interpretation.get('effect_magnitude', '')} effect",
        ),
        Content.from_markup(
            "$method · [dim]metric[/] $metric · [dim]experiment[/] $experiment · $created UTC",
            method=result.get("method", result.get("test_type", "")),
            metric=result.get("metric") or "—",
            experiment=result.get("experiment_id") or "inline data",
            created=utc_text(result.get("created_at")),
        ),
        Content.from_markup(
            "$name = $statistic  [dim]p[/] = $p ($alternative, alpha $alpha)  "
            "[dim]$effect_type[/] = $effect  $level% CI $ci",
            name=result.get("statistic_name", "statistic"),
            statistic=figure(result.get("statistic")),
            p=figure(result.get("p_value")),
            alternative=str(result.get("alternative", "")).replace("_", "-"),
            alpha=figure(result.get("alpha")),
            effect_type=result.get("effect_size_type", "effect size"),
            effect=figure(result.get("effect_size")),
            level=figure(level * 100),
            ci=interval(result.get("confidence_interval")),
        ),
    ]
    sizes, means, sds = result.get("sample_sizes", []), result.get("means", []), result.get("std_devs", [])
    for index, group in enumerate(result.get("groups", [])):
        parts.append(
            Content.from_markup(
                "  [b]$group[/b]  n $n  mean $mean  SD $sd",
                group=group,
                n=figure(sizes[index] if index < len(sizes) else None),
                mean=figure(means[index] if index < len(means) else None),
                sd=figure(sds[index] if index < len(sds) else None),
            )
        )
    if interpretation.get("practical_significance"):
        parts.append(Content(interpretation["practical_significance"]))
    power = result.get("power")
    if power:
        parts.append(
            Content.from_markup(
                "[dim]smallest effect these samples detect with $power% power:[/] $type $mde",
                power=figure(power.get("power", 0) * 100),
                type=power.get("effect_size_type", ""),
                mde=figure(power.get("minimum_detectable_effect")),
            )
        )
    for comparison in result.get("pairwise") or []:
        parts.append(
            Content.from_markup(
                "  $a vs $b  p $p (adjusted $adjusted)  $type $effect",
                a=comparison["groups"][0],
                b=comparison["groups"][1],
                p=figure(comparison.get("p_value")),
                adjusted=figure(comparison.get("adjusted_p_value")),
                type=comparison.get("effect_size_type", ""),
                effect=figure(comparison.get("effect_size")),
            )
        )
    for note in interpretation.get("notes") or []:
        parts.append(Content.from_markup("[dim]note:[/] $note", note=note))
    return Content("\n").join(parts)


class StatisticalResultDetail(DetailPanel):
    """`show(result)`, or `show(None)` when nothing is selected."""

    NOTHING_SELECTED = "No statistical result selected."

    def show(self, result: dict[str, Any] | None) -> None:
        self.show_content(result_content(result) if result else None)
