"""A run's checkpoints, oldest first: name, size, epoch or step, and metrics."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from appliance.core.sizes import format_size


def checkpoints_text(checkpoints: list[dict[str, Any]]) -> Text:
    if not checkpoints:
        return Text("No checkpoints.", style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, c in enumerate(checkpoints):
        if i:
            text.append("\n")
        where = f"epoch {c['epoch']}" if c.get("epoch") is not None else f"step {c.get('step', '—')}"
        text.append(str(c.get("name", c.get("id", ""))) + " ", "bold")
        text.append(f"  {format_size(int(c.get('size', 0)))}  {where}")
        metrics = c.get("metrics") or {}
        if metrics:
            text.append("  " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), "dim")
    return text


class CheckpointList(Static):
    DEFAULT_CSS = """
    CheckpointList { height: auto; max-height: 5; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def show(self, checkpoints: list[dict[str, Any]]) -> None:
        self.update(checkpoints_text(checkpoints))
