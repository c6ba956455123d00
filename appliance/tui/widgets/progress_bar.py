"""A progress bar as table-cell text: `████░░░░  45%`."""

from __future__ import annotations

from rich.text import Text

BAR_WIDTH = 10


def progress_text(fraction: float | None, width: int = BAR_WIDTH, style: str = "green") -> Text:
    """`fraction` 0..1 (None: not known, an empty bar and a dash)."""
    share = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
    filled = round(width * share)
    text = Text(no_wrap=True)
    text.append("█" * filled, style)
    text.append("░" * (width - filled), "dim")
    text.append(" —  " if fraction is None else f"{share * 100:4.0f}%")
    return text
