"""Services as Litestar dependencies: a handler names what it uses as a typed parameter
(`sandboxes: SandboxService`) and gets the one instance the composition root
(appliance/app.py) built. Handlers never reach into `app.state` themselves.

The parameter names are the keys of SERVICE_DEPENDENCIES; none may be the name of a
query parameter (`status`, `limit`, ...), or Litestar would take the one for the other,
nor of a request body's field (`evaluations` of POST /api/eval-batch), or Litestar would
answer a bad value in that field with a 500, as if the dependency had failed
(tests/test_openapi_document.py checks both on the OpenAPI document).
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.datastructures import State
from litestar.di import Provide

from appliance.config import Settings
from appliance.core.events import EventBus
from appliance.http.app_state import appliance_of
from appliance.http.identity import provide_identity
from appliance.services.access.auth import AuthService
from appliance.services.access.sessions import SessionService
from appliance.services.evaluation.evaluations import EvaluationService
from appliance.services.evaluation.executions import ExecutionService
from appliance.services.experiments.experiments import ExperimentService
from appliance.services.experiments.runs import RunService
from appliance.services.live.hub import LiveChannels
from appliance.services.llm.benchmarks import BenchmarkService
from appliance.services.llm.datasets import DatasetService
from appliance.services.llm.evaluate import LlmEvaluationService
from appliance.services.llm.optimize import PromptOptimizer
from appliance.services.models.registry import ModelService
from appliance.services.monitoring.alerts import AlertService
from appliance.services.monitoring.metrics import MonitoringService
from appliance.services.monitoring.status import PlatformStatusService
from appliance.services.reports.service import ReportService
from appliance.services.sandboxes.files import SandboxFileService
from appliance.services.sandboxes.sandboxes import SandboxService
from appliance.services.sandboxes.snapshots import SnapshotService
from appliance.services.sandboxes.templates import TemplateService
from appliance.services.statistics.service import StatisticsService
from appliance.services.telemetry.export import TelemetryExports
from appliance.services.telemetry.ingest import TelemetryIngest
from appliance.services.telemetry.service import TelemetryService


def provide_auth(state: State) -> AuthService:
    return appliance_of(state).auth


def provide_evaluations(state: State) -> EvaluationService:
    return appliance_of(state).evaluations


def provide_executions(state: State) -> ExecutionService:
    return appliance_of(state).executions


def provide_platform_status(state: State) -> PlatformStatusService:
    return appliance_of(state).status


def provide_monitoring(state: State) -> MonitoringService:
    return appliance_of(state).monitoring


def provide_alerts(state: State) -> AlertService:
    return appliance_of(state).alerts


def provide_sandboxes(state: State) -> SandboxService:
    return appliance_of(state).sandboxes


def provide_sandbox_files(state: State) -> SandboxFileService:
    return appliance_of(state).sandbox_files


def provide_snapshots(state: State) -> SnapshotService:
    return appliance_of(state).snapshots


def provide_templates(state: State) -> TemplateService:
    return appliance_of(state).templates


def provide_experiments(state: State) -> ExperimentService:
    return appliance_of(state).experiments


def provide_runs(state: State) -> RunService:
    return appliance_of(state).runs


def provide_models(state: State) -> ModelService:
    return appliance_of(state).models


def provide_llm(state: State) -> LlmEvaluationService:
    return appliance_of(state).llm


def provide_optimizer(state: State) -> PromptOptimizer:
    return appliance_of(state).optimizer


def provide_datasets(state: State) -> DatasetService:
    return appliance_of(state).datasets


def provide_benchmarks(state: State) -> BenchmarkService:
    return appliance_of(state).benchmarks


def provide_sessions(state: State) -> SessionService:
    return appliance_of(state).sessions


def provide_live_channels(state: State) -> LiveChannels:
    return appliance_of(state).live


def provide_telemetry(state: State) -> TelemetryService:
    return appliance_of(state).telemetry


def provide_telemetry_ingest(state: State) -> TelemetryIngest:
    return appliance_of(state).telemetry_ingest


def provide_telemetry_exports(state: State) -> TelemetryExports:
    return appliance_of(state).telemetry_exports


def provide_statistics(state: State) -> StatisticsService:
    return appliance_of(state).statistics


def provide_reports(state: State) -> ReportService:
    return appliance_of(state).reports


def provide_bus(state: State) -> EventBus:
    return appliance_of(state).bus


def provide_settings(state: State) -> Settings:
    return appliance_of(state).settings


def _provide(function: Callable[[State], object]) -> Provide:
    # No use_cache: a Provide caches for its own lifetime, and these are module-level
    # while one process may build several apps (tests, the TUI's one-process mode).
    return Provide(function, sync_to_thread=False)


SERVICE_DEPENDENCIES: dict[str, Provide] = {
    "auth": _provide(provide_auth),
    "evaluation_service": _provide(provide_evaluations),
    "executions": _provide(provide_executions),
    "platform_status": _provide(provide_platform_status),
    "monitoring": _provide(provide_monitoring),
    "alerts": _provide(provide_alerts),
    "sandboxes": _provide(provide_sandboxes),
    "sandbox_files": _provide(provide_sandbox_files),
    "snapshots": _provide(provide_snapshots),
    "live_channels": _provide(provide_live_channels),
    "templates": _provide(provide_templates),
    "experiments": _provide(provide_experiments),
    "runs": _provide(provide_runs),
    "models": _provide(provide_models),
    "sessions": _provide(provide_sessions),
    "llm": _provide(provide_llm),
    "optimizer": _provide(provide_optimizer),
    "datasets": _provide(provide_datasets),
    "benchmarks": _provide(provide_benchmarks),
    "telemetry": _provide(provide_telemetry),
    "telemetry_ingest": _provide(provide_telemetry_ingest),
    "telemetry_exports": _provide(provide_telemetry_exports),
    "statistics": _provide(provide_statistics),
    "reports": _provide(provide_reports),
    "bus": _provide(provide_bus),
    "settings": _provide(provide_settings),
}

DEPENDENCIES: dict[str, Provide] = {"identity": Provide(provide_identity), **SERVICE_DEPENDENCIES}
