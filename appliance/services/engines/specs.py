"""The sandbox every evaluation runs in: its language's runtime image, the engine it asked
for and the appliance's limits."""

from __future__ import annotations

import msgspec

from appliance.core.evaluations import Evaluation
from appliance.core.languages import LANGUAGES
from appliance.runtime.executor import ExecutionRequest
from appliance.runtime.images import image_ref
from appliance.runtime.limits import SandboxLimits
from appliance.runtime.sandbox import SandboxSpec
from appliance.services.evaluation.execution_options import execution_request


class SandboxSpecs:
    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits

    def spec(self, language_name: str, engine: str) -> SandboxSpec:
        language = LANGUAGES[language_name]
        return SandboxSpec(image=image_ref(language.image), language=language.name, engine=engine, limits=self.limits)

    def run_spec(self, language_name: str, engine: str) -> SandboxSpec:
        """The sandbox of an experiment run: the same container, outside the warm lanes
        (made when its run starts), so runs never drain what interactive work waits for."""
        return msgspec.structs.replace(self.spec(language_name, engine), purpose="run")

    def request_for(self, evaluation: Evaluation, environment: dict[str, str]) -> ExecutionRequest:
        """What the queue hands the executor for one of its rows."""
        return execution_request(evaluation, environment, self.spec(evaluation.language, evaluation.engine))
