"""How the TUI writes the API's UTC timestamps: short, sortable, and always UTC."""

from __future__ import annotations

from appliance.core.clock import parse_iso

NEVER = "—"


def utc_text(iso: str | None, *, empty: str = NEVER) -> str:
    """`2025-06-29T12:34:56.123Z` -> `2025-06-29 12:34:56` (column headers say UTC)."""
    if not iso:
        return empty
    try:
        moment = parse_iso(str(iso))
    except ValueError:
        return str(iso)  # not ours to fix: show what the server sent
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else empty
