"""What `appliance doctor` prints: a line per check with what to fix under it, or JSON."""

from __future__ import annotations

import msgspec

from appliance import __version__
from appliance.core.clock import iso_z, utc_now
from appliance.services.operations.doctor_check import FAIL, OK, WARN, Check, Status, worst

_COLOURS = {OK: "\x1b[32m", WARN: "\x1b[33m", FAIL: "\x1b[1;31m"}
_RESET = "\x1b[0m"


class DoctorReport(msgspec.Struct):
    version: str
    checked_at: str  # UTC, with Z
    status: Status  # the worst of the checks
    checks: list[Check]


def render_json(checks: list[Check]) -> str:
    report = DoctorReport(__version__, iso_z(utc_now()), worst(checks), checks)
    return msgspec.json.format(msgspec.json.encode(report).decode(), indent=2)


def render_text(checks: list[Check], *, colour: bool = False) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        status = f"{check.status:4}"
        if colour:
            status = f"{_COLOURS[check.status]}{status}{_RESET}"
        lines.append(f"{status}  {check.name:{width}}  {check.found}")
        if check.status != OK and check.fix:
            lines.append(f"{'':4}  {'':{width}}  fix: {check.fix}")
    counts = {status: sum(c.status == status for c in checks) for status in (FAIL, WARN, OK)}
    lines.append(
        ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        + (": nothing blocks the appliance" if not counts[FAIL] else ": fix the FAIL lines above")
    )
    return "\n".join(lines)
