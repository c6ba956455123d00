"""The selected alert in full: its figures, and who acknowledged and resolved it, when
and with what comment."""

from __future__ import annotations

from typing import Any

from textual.content import Content

from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.detail_panel import DetailPanel

# Theme variables, so the light theme gets readable colours too.
SEVERITY_STYLE = {
    "info": "$primary",
    "warning": "$warning",
    "critical": "bold $error",
    "emergency": "bold reverse $error",
}
STATUS_STYLE = {"active": "bold $error", "acknowledged": "$warning", "resolved": "$success"}


def _figure(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def alert_content(alert: dict[str, Any]) -> Content:
    status, severity = alert.get("status", "?"), alert.get("severity", "?")
    parts = [
        Content.assemble(
            (alert.get("alert_id", "?"), "bold"),
            "  ",
            (severity, SEVERITY_STYLE.get(severity, "")),
            "  ",
            (status, STATUS_STYLE.get(status, "")),
            "  ",
            f"{alert.get('rule_name', '')} ({alert.get('rule', '')})",
        ),
        Content(alert.get("message", "")),
        Content.from_markup(
            "[dim]value[/] $value  [dim]threshold[/] $threshold  [dim]opened[/] $opened UTC",
            value=_figure(alert.get("value")),
            threshold=_figure(alert.get("threshold")),
            opened=utc_text(alert.get("triggered_at")),
        ),
    ]
    for step, label in (("acknowledged", "Acknowledged"), ("resolved", "Resolved")):
        if alert.get(f"{step}_at"):
            parts.append(
                Content.from_markup(
                    "[b]$label[/b] $at UTC by $by",
                    label=label,
                    at=utc_text(alert.get(f"{step}_at")),
                    by=alert.get(f"{step}_by") or "?",
                )
            )
            comment = alert.get(f"{step}_comment")
            parts.append(
                Content.from_markup("  [dim]comment:[/] $comment", comment=comment)
                if comment
                else Content.from_markup("  [dim]no comment[/]")
            )
    return Content("\n").join(parts)


class AlertDetail(DetailPanel):
    """`show(alert)`, or `show(None)` when nothing is selected."""

    NOTHING_SELECTED = "No alert selected."

    def show(self, alert: dict[str, Any] | None) -> None:
        self.show_content(alert_content(alert) if alert else None)
