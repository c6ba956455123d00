"""UTC timestamps, always written with a trailing `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_now_ms() -> datetime:
    """`utc_now()` to the millisecond, as `iso_z` stores it: what a create returns is
    then what a later read of the same row returns."""
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


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
    """The moment `text` names; None for None or an empty string."""
    if not text:
        return None
    return parse_iso_required(text)


def parse_iso_required(text: str) -> datetime:
    """The moment `text` names, for a time that is always there (a NOT NULL column)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
