"""The evaluation: one piece of user code submitted to run once in a sandbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class EvalStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self not in (EvalStatus.QUEUED, EvalStatus.RUNNING)


TERMINAL_STATUSES = frozenset(s for s in EvalStatus if s.is_terminal)

# What a row of the evaluations table is: a platform evaluation (POST /api/eval) or a
# synchronous execution of the sandbox API (POST /api/execute, /ws/execute).
KIND_EVALUATION = "eval"
KIND_EXECUTION = "execute"


class CreatedFile(msgspec.Struct, frozen=True):
    """A regular file the run left in the work dir, path relative to it."""

    name: str
    size: int


class CollectedFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file copied out of the sandbox's work dir after the run (an experiment run's
    checkpoints), stored on the host at `stored_path`."""

    name: str  # relative to the directory collected
    size: int
    sha256: str
    modified_at: datetime  # its mtime in the sandbox
    stored_path: str


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
    # Why it ended the way it did when that is not just "the program exited": a limit
    # it hit (timeout, memory_limit, pids_limit, work_dir_full, file_size_limit,
    # output_limit, output_truncated), killed, engine_error or appliance_restart.
    reason: str | None = None
    output_truncated: bool = False
    error_truncated: bool = False
    execution_time: float | None = None
    memory_used: int | None = None
    # Every sandbox limit the run ran into; `reason` names the most telling one.
    limits_hit: list[str] = []
    # Placed in the work dir before the run: relative name -> text.
    files: dict[str, str] = {}
    # Set for items of POST /api/eval-batch: the batch lane runs them in one sandbox.
    batch_id: str | None = None
    kind: str = KIND_EVALUATION
    # Executions only: limits asked for (None: the appliance's default) and network.
    memory_limit_mb: int | None = None
    cpu_limit: float | None = None
    network_access: bool = False
    # Executions only: every regular file in the work dir after the run (inputs too).
    files_created: list[CreatedFile] = []

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
    # The pids limit refused a fork or clone (counted by the cgroup).
    pids_limited: bool = False
    # A writable mount (the work dir, /tmp or /dev/shm) was full when the program ended.
    disk_full: bool = False
    # Killed by SIGXFSZ: a file grew past the file-size limit.
    file_too_large: bool = False
    execution_time: float = 0.0
    memory_used: int | None = None
    # The work dir's regular files after the run, when they were asked for.
    files_created: list[CreatedFile] | None = None
    # Files copied out of the work dir after the run (ExecutionRequest.collect), and what
    # was left behind and why (past a cap, not a regular file, a bad name).
    collected: list[CollectedFile] = []
    collect_problems: list[str] = []
