"""UTC timestamps, always written with a trailing `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utc_now() -> datetime:
    return datetime.now(UTC)


@overload
def iso_z(moment: datetime) -> str: ...
@overload
def iso_z(moment: None) -> None: ...
@overload
def iso_z(moment: datetime | None) -> str | None: ...


def iso_z(moment: datetime | None) -> str | None:
    """`2025-06-29T12:34:56.123Z` for an aware datetime; None stays None."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
