"""The graders, one module per family, by their canonical type names (core.llm.grading
lists the names and promptfoo's aliases of them)."""

from __future__ import annotations

from appliance.services.llm.calls import ModelCalls
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.graders.base import Grader, Grading
from appliance.services.llm.graders.code import CodeExecution, PythonGrader
from appliance.services.llm.graders.judge import LlmJudge
from appliance.services.llm.graders.similarity import Similarity
from appliance.services.llm.graders.structured import ContainsJson, IsJson, JsonSchema
from appliance.services.llm.graders.text import Contains, ContainsSeveral, Equals, Regex, StartsWith
from appliance.services.llm.sandboxed import SandboxRunner


def build_grading(calls: ModelCalls, choice: ModelChoice, sandboxes: SandboxRunner, code_timeout: float) -> Grading:
    graders: dict[str, Grader] = {
        "contains": Contains(ignore_case=False),
        "icontains": Contains(ignore_case=True),
        "contains_all": ContainsSeveral(every=True, ignore_case=False),
        "contains_any": ContainsSeveral(every=False, ignore_case=False),
        "icontains_all": ContainsSeveral(every=True, ignore_case=True),
        "icontains_any": ContainsSeveral(every=False, ignore_case=True),
        "equals": Equals(),
        "regex": Regex(),
        "starts_with": StartsWith(),
        "is_json": IsJson(),
        "contains_json": ContainsJson(),
        "json_schema": JsonSchema(),
        "similarity": Similarity(calls, choice),
        "llm_judge": LlmJudge(calls, choice),
        "code": CodeExecution(sandboxes, code_timeout),
        "python": PythonGrader(sandboxes, code_timeout),
    }
    return Grading(graders)


__all__ = ["Grading", "build_grading"]
