"""A Python client for the appliance's REST API, for team scripts and tests.

    from appliance.client import ApplianceClient

    with ApplianceClient("http://127.0.0.1:8080", api_key=open("admin.key").read()) as client:
        result = client.execute(language="python", code="print('Hello, World!')")
        print(result.output)

Every method returns the documented JSON as `Record`s (dicts whose fields also read as
attributes) and raises `ApiError` (status_code, code, message, details, request_id) on a
4xx or 5xx. One mixin per API area keeps each file to one job.
"""

from __future__ import annotations

from appliance.client.alerts import AlertsApi
from appliance.client.api_keys import ApiKeysApi
from appliance.client.evaluations import EvaluationsApi
from appliance.client.execution import ExecutionApi
from appliance.client.experiments import ExperimentsApi
from appliance.client.llm_eval import LlmEvalApi
from appliance.client.models import ModelsApi
from appliance.client.monitoring import MonitoringApi
from appliance.client.sandboxes import SandboxesApi
from appliance.client.statistics import ExportedFile, StatisticsApi
from appliance.client.telemetry import TelemetryApi
from appliance.client.templates import TemplatesApi
from appliance.client.transport import ApiError, Record


# One mixin per area of the API, listed here as each area gets its client methods.
class ApplianceClient(
    ApiKeysApi,
    EvaluationsApi,
    MonitoringApi,
    AlertsApi,
    TemplatesApi,
    ExecutionApi,
    SandboxesApi,
    ModelsApi,
    ExperimentsApi,
    LlmEvalApi,
    TelemetryApi,
    StatisticsApi,
):
    """Synchronous client; `with ApplianceClient(url, api_key=...) as c:` closes it."""


__all__ = ["ApiError", "ApplianceClient", "ExportedFile", "Record"]
