"""How the facts of an evaluation read on screen: statuses, times, durations, sizes,
and what resubmitting one sends.

Shared by the evaluations table and the detail screen, so both say the same thing the
same way. Times are shown in UTC, as the API gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

STATUSES = ("queued", "running", "completed", "failed", "timeout")
TERMINAL_STATUSES = frozenset({"completed", "failed", "timeout"})
# The order a status moves in; a stale answer never moves a row back.
STATUS_RANK = {"queued": 0, "running": 1, "completed": 2, "failed": 2, "timeout": 2}

# GET /api/evaluations cuts `code_preview` at this many characters and adds "...".
CODE_PREVIEW_CHARS = 100
PREVIEW_ELLIPSIS = "..."

_STATUS_STYLES = {"queued": "dim", "running": "bold cyan", "failed": "bold red", "timeout": "bold red"}


def status_text(status: str, success: bool | None = None) -> Text:
    """`completed ✓` in green, `completed ✗` (non-zero exit) in yellow, failures in red."""
    if status == "completed":
        ok = success is not False
        return Text(f"completed {'✓' if ok else '✗'}", style="bold green" if ok else "bold yellow")
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def is_newer_status(new: str | None, old: str | None) -> bool:
    """True when `new` may replace `old`: statuses only move forward."""
    if not new:
        return False
    return STATUS_RANK.get(new, 0) >= STATUS_RANK.get(old or "", 0)


def utc_time(iso: str | None) -> str:
    """`12:34:56` from `2025-06-29T12:34:56.123Z` (the time of day, UTC)."""
    if not iso or "T" not in iso:
        return "—"
    return iso.split("T", 1)[1][:8]


def utc_stamp(iso: str | None) -> str:
    """`2025-06-29 12:34:56` (UTC) from an ISO 8601 UTC timestamp."""
    if not iso or "T" not in iso:
        return "—"
    day, rest = iso.split("T", 1)
    return f"{day} {rest[:8]}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def code_line(code: str) -> str:
    """A program on one line, for a table cell."""
    return " ⏎ ".join(part.strip() for part in code.strip().splitlines() if part.strip())


def full_code(status: Mapping[str, Any] | None, preview: str | None) -> str | None:
    """The whole program when the API told it: `code` in the status body when the server
    sends it, else a list preview that was not cut. None when only a cut preview is known."""
    if status and isinstance(status.get("code"), str):
        return status["code"]
    if preview is None:
        return None
    cut = len(preview) == CODE_PREVIEW_CHARS + len(PREVIEW_ELLIPSIS) and preview.endswith(PREVIEW_ELLIPSIS)
    return None if cut else preview


def resubmission(status: Mapping[str, Any], code: str) -> dict[str, Any]:
    """The POST /api/eval body that runs this evaluation again: same language, code,
    engine and timeout (and files, when the server reports them)."""
    body: dict[str, Any] = {"language": status["language"], "code": code}
    for option in ("engine", "timeout", "files"):
        if status.get(option) not in (None, {}):
            body[option] = status[option]
    return body
