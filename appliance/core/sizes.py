"""Sizes written the way people write them: "256M", "1G", "512k", "1024"."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int | None:
    """Bytes in `text` ("256M", "1G", "1.5G", "64MiB", "1048576"), or None if it is not a
    size. Units are binary (M = 1024 * 1024), as Docker reads them."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if text >= 0 else None
    match = _SIZE.match(text or "")
    if match is None:
        return None
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_size(size: int) -> str:
    """The shortest exact-ish form: 268435456 -> "256M", 1536 -> "1.5K", 10 -> "10B"."""
    for unit in ("T", "G", "M", "K"):
        factor = _UNITS[unit]
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) or value >= 100 else f"{value:.1f}{unit}"
    return f"{size}B"
