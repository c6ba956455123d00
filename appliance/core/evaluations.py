"""The evaluation: one piece of user code submitted to run once in a sandbox."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import msgspec


class EvalStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self not in (EvalStatus.QUEUED, EvalStatus.RUNNING)


TERMINAL_STATUSES = frozenset(s for s in EvalStatus if s.is_terminal)


class Evaluation(msgspec.Struct, kw_only=True):
    eval_id: str
    owner: str
    language: str
    engine: str
    code: str
    timeout: float
    status: EvalStatus = EvalStatus.QUEUED
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: str = ""
    error: str = ""
    exit_code: int | None = None
    # Why it ended the way it did when that is not just "the program exited": timeout,
    # killed, output_truncated, engine_error, appliance_restart ...
    reason: str | None = None
    output_truncated: bool = False
    error_truncated: bool = False
    execution_time: float | None = None
    memory_used: int | None = None

    @property
    def success(self) -> bool:
        return self.status is EvalStatus.COMPLETED and self.exit_code == 0


class ExecutionOutcome(msgspec.Struct, kw_only=True):
    """What the runtime reports after one execution ends."""

    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    killed: bool = False
    oom_killed: bool = False
    # Killed because it kept writing far past the output limit.
    flooded: bool = False
    execution_time: float = 0.0
    memory_used: int | None = None
