"""What one check of `appliance doctor` found: a status, one line, and the fix."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

Status = Literal["OK", "WARN", "FAIL"]
OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"
_SEVERITY: dict[Status, int] = {OK: 0, WARN: 1, FAIL: 2}


class Check(msgspec.Struct, frozen=True):
    name: str
    status: Status
    found: str  # one line: what the check saw
    fix: str | None = None  # one line: what to do, a command where there is one


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_SEVERITY.__getitem__, default=OK)


def combine(name: str, problems: list[tuple[Status, str, str | None]], fine: str) -> Check:
    """One check from several findings, each (status, found, fix): the worst status, the
    findings and fixes of everything not OK, or `fine` when all is OK."""
    bad = [p for p in problems if p[0] != OK]
    if not bad:
        return Check(name, OK, fine)
    status = max((p[0] for p in bad), key=_SEVERITY.__getitem__)
    return Check(name, status, "; ".join(p[1] for p in bad), "; ".join(p[2] for p in bad if p[2]))
