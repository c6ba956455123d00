"""Type `external`: an experiment whose runs are all created and reported from outside
(a training script on a GPU box logging over the API, as with MLflow's tracking). It
plans no runs: starting it only marks it running, and it ends when it is cancelled."""

from __future__ import annotations

from appliance.core.experiments import JsonObject, RunStatus
from appliance.core.identity import Identity
from appliance.services.experiments.config import BaseConfig, ExperimentLimits, check_common, decode_config
from appliance.services.experiments.runners.base import Program, RunContext, RunResult
from appliance.services.experiments.search import PlannedPoint


class ExternalConfig(BaseConfig, kw_only=True, forbid_unknown_fields=True):
    pass


class ExternalRunner:
    type = "external"
    runs_planned = False

    def __init__(self, limits: ExperimentLimits) -> None:
        self._limits = limits

    def validate(self, raw: JsonObject) -> ExternalConfig:
        config = decode_config(raw, ExternalConfig)
        check_common(config, self._limits)
        return config

    async def check_access(self, identity: Identity, config: BaseConfig) -> None:
        return None

    async def prepare(self, identity: Identity, config: BaseConfig) -> Program:
        return Program()

    def plan(self, config: BaseConfig) -> list[PlannedPoint]:
        return []

    async def execute(self, config: BaseConfig, context: RunContext) -> RunResult:
        return RunResult(status=RunStatus.FAILED, reason="not_planned", error="external runs are reported, not run")
