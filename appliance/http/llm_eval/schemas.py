"""Bodies of llm-eval-api.md's endpoints that are not the services' own Structs: the
list wrappers as the document writes them, and the appliance's additions."""

from __future__ import annotations

import msgspec

from appliance.core.llm.prompts import PromptSummary, SuiteSummary
from appliance.core.llm.runs import SuiteRun


class Health(msgspec.Struct, kw_only=True):
    status: str


class PromptList(msgspec.Struct, kw_only=True):
    prompts: list[PromptSummary]


class SuiteList(msgspec.Struct, kw_only=True):
    suites: list[SuiteSummary]


class RunList(msgspec.Struct, kw_only=True):
    runs: list[SuiteRun]
    total: int
