"""Bounds of the paging parameters every list takes (`limit`, `offset`)."""

from __future__ import annotations

# SQLite's INTEGER is a signed 64-bit number: a larger offset cannot even be asked for.
# Past it is a 400 (an offset that large can only be a mistake; no page is that far).
MAX_OFFSET = 2**63 - 1
# The largest rowid SQLite holds: an id past it names nothing (a 404, not an overflow).
MAX_ROWID = 2**63 - 1
