"""A dataset's leaderboard: rank, model, accuracy with its 95% Wilson interval, and `≈`
on an entry that does not differ significantly from a neighbour (McNemar's test on
the items both answered), naming the neighbours' ranks.

    #  Model          Accuracy  95% interval     ≈ ranks  Correct  p vs next  Provider
    1  scripted-chat     93.8%  [71.7%, 98.9%]   ≈ 2        15/16      0.625  openai-compatible
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from appliance.tui.widgets.benchmark_table import percent
from appliance.tui.widgets.fitted_table import FittedDataTable

COLUMNS = ("#", "Model", "Accuracy", "95% interval", "≈ ranks", "Correct", "p vs next", "Provider")


def interval_text(bounds: list[float] | None) -> str:
    return f"[{percent(bounds[0])}, {percent(bounds[1])}]" if bounds else "—"


def similar_text(ranks: list[int]) -> Text:
    if not ranks:
        return Text("")
    return Text("≈ " + ", ".join(str(rank) for rank in ranks), style="yellow")


def entry_cells(entry: dict[str, Any]) -> tuple[str | Text, ...]:
    vs_next = entry.get("vs_next") or {}
    p_value = vs_next.get("p_value")
    return (
        Text(str(entry.get("rank", "")), justify="right", style="bold"),
        entry.get("model", ""),
        Text(percent(entry.get("accuracy")), justify="right"),
        interval_text(entry.get("confidence_interval")),
        similar_text(entry.get("not_significantly_different_from") or []),
        Text(f"{entry.get('correct', 0)}/{entry.get('total', 0)}", justify="right"),
        Text("—" if p_value is None else f"{p_value:.3g}", justify="right"),
        entry.get("provider", ""),
    )


class LeaderboardTable(FittedDataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for label in COLUMNS:
            self.add_column(label, key=label)

    def show(self, entries: Iterable[dict[str, Any]]) -> None:
        self.clear()
        for entry in entries:
            self.add_row(*entry_cells(entry), key=str(entry["rank"]))
