"""The plug-in point: one `ExperimentRunner` per `config.type`.

A runner says what its config is and checks it, plans the runs a started experiment
has, fixes what they share when it starts (the program of type `code`), and executes one
run at a time through a `RunContext` the scheduler gives it. Everything a run reports
(metrics with steps, progress, log lines, checkpoint files) goes through the context,
which holds the run to its caps and stores it; the scheduler decides what happens to
the run afterwards (its final status, back in line after a pause, ...).

Types `benchmark` and `ensemble` (the LLM issues) plug in here the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from appliance.core.errors import ValidationError
from appliance.core.evaluations import CollectedFile, ExecutionOutcome
from appliance.core.experiments import Experiment, JsonObject, LogLevel, Run, RunStatus
from appliance.core.identity import Identity
from appliance.runtime.executor import ExecutionRequest, OutputCallback
from appliance.services.experiments.config import BaseConfig
from appliance.services.experiments.search import PlannedPoint


class Program(msgspec.Struct, frozen=True, kw_only=True):
    """What every run of a started experiment executes, fixed at start."""

    code: str | None = None
    sha256: str | None = None


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    status: RunStatus  # completed or failed
    exit_code: int | None = None
    reason: str | None = None
    error: str | None = None


class SandboxInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a run records about where it ran."""

    image: str
    engine: str
    language: str
    code_sha256: str | None


class RunContext(Protocol):
    """What a runner gets to execute one run."""

    @property
    def run(self) -> Run: ...

    @property
    def experiment(self) -> Experiment: ...

    @property
    def program(self) -> Program: ...

    @property
    def stopping(self) -> bool:
        """The scheduler is stopping this run (cancel, pause, shutdown): end soon."""
        ...

    async def execute(
        self, request: ExecutionRequest, on_output: OutputCallback, sandbox: SandboxInfo
    ) -> ExecutionOutcome | None:
        """Run a sandbox request on the evaluation queue's workers, behind interactive
        evaluations; the run counts as started when a worker takes it. None: the run
        was stopped before it started."""
        ...

    def metrics(self, values: dict[str, float], step: int | None, checkpoint: str | None = None) -> None:
        """One metrics line; `checkpoint` names the checkpoint file these metrics are of."""
        ...

    def progress(self, value: float) -> None: ...

    def tags(self, tags: list[Any]) -> None:
        """Tags the program adds to its run."""
        ...

    def log(self, level: LogLevel, message: str) -> None: ...

    @property
    def metrics_full(self) -> bool:
        """The run's cap on metric points is reached: metrics lines are dropped."""
        ...

    @property
    def logs_full(self) -> bool:
        """The run's cap on log lines (or bytes) is reached: log lines are dropped."""
        ...

    def staging_dir(self) -> Path:
        """Where files copied out of the sandbox go before they become checkpoints."""
        ...

    async def add_checkpoints(self, files: list[CollectedFile]) -> None: ...


class ExperimentRunner(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def runs_planned(self) -> bool:
        """Whether starting an experiment of this type plans runs for the scheduler (an
        `external` experiment has only runs reported from outside)."""
        ...

    def validate(self, raw: JsonObject) -> BaseConfig:
        """The typed, normalized config, or a ValidationError naming the field."""
        ...

    async def check_access(self, identity: Identity, config: BaseConfig) -> None:
        """At create and update: what the config refers to is there for this caller."""
        ...

    async def prepare(self, identity: Identity, config: BaseConfig) -> Program:
        """At start, as the caller who starts it."""
        ...

    def plan(self, config: BaseConfig) -> list[PlannedPoint]: ...

    async def execute(self, config: BaseConfig, context: RunContext) -> RunResult: ...


class RunnerRegistry:
    def __init__(self, runners: Iterable[ExperimentRunner]) -> None:
        self._runners = {runner.type: runner for runner in runners}

    @property
    def known_types(self) -> list[str]:
        return sorted(self._runners)

    def get(self, config_type: object) -> ExperimentRunner:
        runner = self._runners.get(config_type) if isinstance(config_type, str) else None
        if runner is None:
            known = ", ".join(self.known_types)
            shown = repr(config_type) if config_type is not None else "missing"
            raise ValidationError(
                f"config.type {shown} is not an experiment type this appliance runs; known types: {known}",
                details={"field": "config.type", "reason": "unknown type", "known_types": self.known_types},
            )
        return runner

    def validate(self, raw: object) -> tuple[ExperimentRunner, BaseConfig]:
        if not isinstance(raw, dict):
            raise ValidationError(
                'config must be an object with a "type"', details={"field": "config", "reason": "not an object"}
            )
        runner = self.get(raw.get("type"))
        return runner, runner.validate(raw)
