"""Type `code`: a program run once per hyperparameter point, each run in a fresh sandbox.

The program is inline (`code` + `language`) or a file of a persistent sandbox
(`sandbox_id` + `entrypoint`, read with the identity of whoever starts the experiment,
at start: every run executes those same bytes, whose sha256 each run records). A run
goes through the evaluation queue like any evaluation, in a container of the usual
profile and limits, with its own timeout (`timeout`, default the setting
experiment_run_timeout_default, at most experiment_run_timeout_max). It gets its
hyperparameters as JSON in the environment variable APPLIANCE_HYPERPARAMETERS and in
the file hyperparameters.json of its work dir, and also APPLIANCE_RUN_ID,
APPLIANCE_EXPERIMENT_ID, APPLIANCE_SEED and APPLIANCE_ATTEMPT. What it prints becomes
metrics, progress and log lines (services/experiments/output.py); the files it leaves
under checkpoints/ in the work dir become its checkpoints when it ends by itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import msgspec

from appliance.core.errors import AppError
from appliance.core.evaluations import EvalStatus, ExecutionOutcome
from appliance.core.experiments import JsonObject, LogLevel, RunStatus
from appliance.core.identity import Identity
from appliance.core.languages import find_language, supported_names
from appliance.runtime.executor import CollectSpec, ExecutionRequest
from appliance.services.engines.readiness import EnginePolicy
from appliance.services.engines.specs import SandboxSpecs
from appliance.services.evaluation.queue import LIMIT_MESSAGES, limits_hit, outcome_status
from appliance.services.experiments.config import (
    BaseConfig,
    ExperimentLimits,
    check_common,
    decode_config,
    invalid,
)
from appliance.services.experiments.output import RunOutputParser
from appliance.services.experiments.run_tags import check_patterns
from appliance.services.experiments.runners.base import Program, RunContext, RunResult, SandboxInfo
from appliance.services.experiments.search import PlannedPoint, RandomSearch, check_search, new_seed, plan_points
from appliance.services.sandboxes.files import SandboxFileService

CHECKPOINT_DIR = "checkpoints"
HYPERPARAMETERS_FILE = "hyperparameters.json"
HYPERPARAMETERS_VARIABLE = "APPLIANCE_HYPERPARAMETERS"


class CodeConfig(BaseConfig, kw_only=True, forbid_unknown_fields=True):
    language: str = "python"
    code: str | None = None
    sandbox_id: str | None = None
    entrypoint: str | None = None
    engine: str | None = None
    timeout: float | None = None
    grid: dict[str, list[Any]] | None = None
    points: list[JsonObject] | None = msgspec.field(default=None, name="list")
    random: RandomSearch | None = None
    seed: int | None = None
    # Tag patterns every planned run gets, `{name}` its value of a hyperparameter (run_tags.py).
    run_tags: list[str] | None = None


class CodeRunner:
    type = "code"
    runs_planned = True

    def __init__(
        self, specs: SandboxSpecs, policy: EnginePolicy, files: SandboxFileService, limits: ExperimentLimits
    ) -> None:
        self._specs = specs
        self._policy = policy
        self._files = files
        self._limits = limits

    # --- the config -------------------------------------------------------------------

    def validate(self, raw: JsonObject) -> CodeConfig:
        config = decode_config(raw, CodeConfig)
        check_common(config, self._limits)
        language = find_language(config.language)
        if language is None:
            raise invalid(
                "config.language",
                f"config.language {config.language!r} is unknown; supported: {', '.join(supported_names())}",
            )
        inline, from_sandbox = config.code is not None, config.sandbox_id is not None or config.entrypoint is not None
        if inline == from_sandbox:
            raise invalid("config.code", "config: give the program as code, or as sandbox_id and entrypoint")
        if inline:
            assert config.code is not None
            if not config.code.strip():
                raise invalid("config.code", "config.code is empty")
            if len(config.code.encode()) > self._limits.max_code_bytes:
                raise invalid("config.code", f"config.code is larger than {self._limits.max_code_bytes} bytes")
        elif not config.sandbox_id or not config.entrypoint:
            missing = "config.sandbox_id" if not config.sandbox_id else "config.entrypoint"
            raise invalid(missing, f"{missing} is required with a program from a sandbox")
        engine = (config.engine or self._policy.default).strip().lower()
        if engine not in self._policy.offered:
            raise invalid(
                "config.engine",
                f"config.engine {engine!r} is not available; enabled: {', '.join(self._policy.offered)}",
            )
        timeout = self._limits.run_timeout_default if config.timeout is None else config.timeout
        if not math.isfinite(timeout) or not 0 < timeout <= self._limits.run_timeout_max:
            raise invalid(
                "config.timeout",
                f"config.timeout must be more than 0 and at most {self._limits.run_timeout_max:g} seconds "
                "(setting experiment_run_timeout_max)",
            )
        check_search(config.grid, config.points, config.random, self._limits.max_runs)
        seed = config.seed if config.seed is not None else new_seed()
        if not 0 <= seed <= 2**31 - 1:
            raise invalid("config.seed", "config.seed must be between 0 and 2147483647")
        if config.run_tags is not None:
            points = plan_points(config.grid, config.points, config.random, seed)
            check_patterns(config.run_tags, [p.hyperparameters for p in points])
        return msgspec.structs.replace(config, language=language.name, engine=engine, timeout=float(timeout), seed=seed)

    async def check_access(self, identity: Identity, config: BaseConfig) -> None:
        await self._read_program(identity, _code(config))

    async def prepare(self, identity: Identity, config: BaseConfig) -> Program:
        code = await self._read_program(identity, _code(config))
        return Program(code=code, sha256=hashlib.sha256(code.encode()).hexdigest())

    def plan(self, config: BaseConfig) -> list[PlannedPoint]:
        c = _code(config)
        assert c.seed is not None
        return plan_points(c.grid, c.points, c.random, c.seed, c.run_tags)

    async def _read_program(self, identity: Identity, config: CodeConfig) -> str:
        if config.code is not None:
            return config.code
        assert config.sandbox_id is not None and config.entrypoint is not None
        try:
            download = await self._files.download(identity, config.sandbox_id, config.entrypoint)
        except AppError as exc:
            # Refused, or no such sandbox for this caller (SandboxService.owned names the
            # sandbox_id): the sandbox is at fault; otherwise the path in it.
            about_sandbox = exc.status_code in (401, 403) or "sandbox_id" in (exc.details or {})
            field = "config.sandbox_id" if about_sandbox else "config.entrypoint"
            raise invalid(field, f"{field}: {exc.detail}") from None
        data = bytearray()
        too_large = False
        chunks = download.chunks
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > self._limits.max_code_bytes:
                    too_large = True
                    break
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if too_large:
            raise invalid("config.entrypoint", f"config.entrypoint is larger than {self._limits.max_code_bytes} bytes")
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise invalid("config.entrypoint", "config.entrypoint is not UTF-8 text") from None

    # --- a run ------------------------------------------------------------------------

    async def execute(self, config: BaseConfig, context: RunContext) -> RunResult:
        c = _code(config)
        run = context.run
        assert c.engine is not None and c.timeout is not None and context.program.code is not None
        spec = self._specs.run_spec(c.language, c.engine)
        hyperparameters = json.dumps(run.hyperparameters)
        files_left, bytes_left = self._limits.run_max_checkpoints, self._limits.run_checkpoints_max_bytes
        request = ExecutionRequest(
            spec=spec,
            code=context.program.code,
            timeout=c.timeout,
            files={HYPERPARAMETERS_FILE: hyperparameters},
            environment={
                HYPERPARAMETERS_VARIABLE: hyperparameters,
                "APPLIANCE_RUN_ID": run.id,
                "APPLIANCE_EXPERIMENT_ID": run.experiment_id,
                "APPLIANCE_SEED": str(run.seed if run.seed is not None else 0),
                "APPLIANCE_ATTEMPT": str(run.attempt),
            },
            stream_output=True,
            max_output_bytes=self._limits.run_max_output_bytes,
            collect=CollectSpec(
                directory=CHECKPOINT_DIR,
                into=str(context.staging_dir()),
                max_bytes=bytes_left,
                max_files=files_left,
                max_file_bytes=self._limits.checkpoint_max_bytes,
            ),
        )
        parser = RunOutputParser(context)
        sandbox = SandboxInfo(
            image=spec.image, engine=spec.engine, language=spec.language, code_sha256=context.program.sha256
        )
        outcome = await context.execute(request, parser.feed, sandbox)
        parser.close()
        if outcome is None:
            return RunResult(status=RunStatus.FAILED, reason="stopped", error="[appliance] stopped before it started")
        if outcome.collected:
            await context.add_checkpoints(outcome.collected)
        for problem in outcome.collect_problems:
            context.log(LogLevel.WARNING, f"[appliance] {problem}")
        return _result(outcome, context)


def _code(config: BaseConfig) -> CodeConfig:
    if not isinstance(config, CodeConfig):
        raise TypeError(f"the code runner got a {type(config).__name__}")
    return config


def _result(outcome: ExecutionOutcome, context: RunContext) -> RunResult:
    status, reason = outcome_status(outcome)
    if reason == "output_truncated":  # a run's output streams whole; only the outcome's copy is cut
        reason = None
    for hit in limits_hit(outcome):
        if hit in LIMIT_MESSAGES:
            context.log(LogLevel.ERROR, f"[appliance] {LIMIT_MESSAGES[hit]}")
    if status is EvalStatus.COMPLETED and outcome.exit_code == 0:
        return RunResult(status=RunStatus.COMPLETED, exit_code=0, reason=reason)
    if status is EvalStatus.COMPLETED:
        message = f"the program exited with code {outcome.exit_code}"
        context.log(LogLevel.ERROR, f"[appliance] {message}")
        return RunResult(status=RunStatus.FAILED, exit_code=outcome.exit_code, reason="exit_code", error=message)
    tail = outcome.stderr[-2000:].strip()
    return RunResult(status=RunStatus.FAILED, exit_code=outcome.exit_code, reason=reason, error=tail or reason)
