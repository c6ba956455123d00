"""A synchronous execution (POST /api/execute, /ws/execute) as the sandbox API shows it.

An execution is a row of the evaluations table (kind "execute") run by the same queue;
this is how its stored state reads in sandbox-api.md's terms, the same for POST, GET,
DELETE and the WebSocket:

| status | when |
|---|---|
| `queued` | stored, waiting for a worker |
| `running` | in its container |
| `completed` | the program ran to its end and exited 0 |
| `failed` | it exited non-zero, hit a limit (memory, processes, disk, output), or could not run (`error` says which) |
| `timeout` | the wall-clock timeout passed; killed from outside |
| `cancelled` | DELETE /api/execute/{id}, or its WebSocket client left, before it ended |
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from appliance.core.clock import utc_now
from appliance.core.evaluations import EvalStatus, Evaluation


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self not in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)


CANCELLED_MESSAGE = "[appliance] cancelled before it ended"


def new_execution_id() -> str:
    """`exec_20250629_123456_abc123`: sortable by creation second, random tail."""
    return f"exec_{utc_now().strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"


def execution_status(e: Evaluation) -> ExecutionStatus:
    if e.status is EvalStatus.FAILED and e.reason == "killed":  # the queue's word for a kill
        return ExecutionStatus.CANCELLED
    if e.status is EvalStatus.COMPLETED and e.exit_code != 0:
        return ExecutionStatus.FAILED
    return ExecutionStatus(e.status.value)


def execution_error(e: Evaluation) -> str | None:
    """stderr, with a line per limit the run hit (memory, timeout, ...); None when empty."""
    text = e.error
    if text.startswith("\n[appliance]"):  # the queue's line after an empty stderr
        text = text[1:]
    if execution_status(e) is ExecutionStatus.CANCELLED and CANCELLED_MESSAGE not in text:
        text = f"{text}\n{CANCELLED_MESSAGE}" if text else CANCELLED_MESSAGE
    return text or None


def execution_progress(e: Evaluation, now: datetime | None = None) -> float:
    """0 while queued, the share of the timeout used while running (below 1), 1 at the end."""
    if e.status.is_terminal:
        return 1.0
    if e.status is EvalStatus.QUEUED or e.started_at is None:
        return 0.0
    elapsed = ((now or utc_now()) - e.started_at).total_seconds()
    return round(min(0.99, max(0.0, elapsed / e.timeout)), 3)
