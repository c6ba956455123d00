"""Composition root: builds every service once and owns their start and stop.

The constructor wires the whole object graph and touches nothing outside the process;
`start()` does the I/O (the data dir, the database, the engine, the first containers) in
order, and `stop()` undoes it. The CLI, the HTTP app and the tests all get their services
from `Appliance`, so there is exactly one way the parts are wired together.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import io
import logging
import secrets
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.config import DEFAULT_MODEL_ID, ConfigError, Settings, default_model_seed, model_seeds
from appliance.core.errors import AppError, Unauthorized
from appliance.core.events import EventBus
from appliance.core.languages import LANGUAGES
from appliance.core.statistics import DataSource
from appliance.core.telemetry import TelemetryLimits
from appliance.runtime.batch_lanes import BatchLanes
from appliance.runtime.engine import DockerEngine, EngineUnavailable
from appliance.runtime.executor import ContainerExecutor, SandboxExecutor
from appliance.runtime.images import ImageBuildError, image_ref
from appliance.runtime.limits import SandboxLimits
from appliance.runtime.pool import PoolSettings, WarmPool
from appliance.services.access.auth import AuthService
from appliance.services.access.rate_limit import RateLimiter
from appliance.services.access.sessions import SessionService
from appliance.services.engines.readiness import EnginePolicy, EngineReadiness, StartupRefused
from appliance.services.engines.specs import SandboxSpecs
from appliance.services.evaluation.backpressure import Backpressure
from appliance.services.evaluation.completions import Completions
from appliance.services.evaluation.evaluations import EvalLimits, EvaluationService
from appliance.services.evaluation.execution_options import ExecuteLimits
from appliance.services.evaluation.executions import ExecutionService
from appliance.services.evaluation.queue import EvaluationQueue
from appliance.services.evaluation.waiting import FinishedEvaluations
from appliance.services.experiments.checkpoints import CheckpointFiles
from appliance.services.experiments.config import ExperimentLimits
from appliance.services.experiments.experiments import ExperimentService
from appliance.services.experiments.news import ExperimentNews
from appliance.services.experiments.runners.base import RunnerRegistry
from appliance.services.experiments.runners.benchmark import BenchmarkRunner
from appliance.services.experiments.runners.code import CodeRunner
from appliance.services.experiments.runners.ensemble import EnsembleRunner
from appliance.services.experiments.runners.external import ExternalRunner
from appliance.services.experiments.runs import RunService
from appliance.services.experiments.scheduler import ExperimentScheduler
from appliance.services.live.hub import LiveChannels, LiveSettings
from appliance.services.llm.benchmarking import ItemAsker
from appliance.services.llm.benchmarks import BenchmarkService
from appliance.services.llm.calls import ModelCalls, RetryPolicy
from appliance.services.llm.choice import ModelChoice
from appliance.services.llm.datasets import DatasetService
from appliance.services.llm.endpoints import CallDefaults
from appliance.services.llm.evaluate import LlmEvaluationService, LlmLimits
from appliance.services.llm.graders import build_grading
from appliance.services.llm.library import PromptLibrary
from appliance.services.llm.optimize import PromptOptimizer
from appliance.services.llm.sandboxed import SandboxRunner
from appliance.services.models.registry import ModelService
from appliance.services.monitoring.alerts import AlertService, rules_from_settings
from appliance.services.monitoring.metrics import MonitoringService
from appliance.services.monitoring.readings import SystemReadings
from appliance.services.monitoring.status import PlatformStatusService
from appliance.services.reports.service import ReportService, StoredExperiments
from appliance.services.sandboxes.files import SandboxFileService
from appliance.services.sandboxes.reconcile import SandboxReconciler
from appliance.services.sandboxes.requests import SandboxPolicy
from appliance.services.sandboxes.sandboxes import SandboxPaths, SandboxService
from appliance.services.sandboxes.snapshots import SnapshotService
from appliance.services.sandboxes.templates import TemplateService
from appliance.services.statistics.service import StatisticsService
from appliance.services.statistics.sources import RunMetricSource
from appliance.services.statistics.telemetry_source import TelemetryMetricSource
from appliance.services.telemetry.appliance_events import ApplianceEvents, ModelCallEvents
from appliance.services.telemetry.export import ExportLimits, TelemetryExports
from appliance.services.telemetry.ingest import TelemetryIngest
from appliance.services.telemetry.retention import RetentionPolicy, TelemetryRetention
from appliance.services.telemetry.service import QueryLimits, TelemetryModelStatistics, TelemetryService
from appliance.store import data_dir
from appliance.store.alerts import AlertStore
from appliance.store.api_keys import ApiKeyStore
from appliance.store.benchmarks import BenchmarkStore
from appliance.store.database import Database, refuse_newer_schema
from appliance.store.datasets import DatasetStore
from appliance.store.evaluations import EvaluationStore
from appliance.store.experiment_owners import ExperimentOwnerLookup
from appliance.store.experiment_tables import ExperimentOwners, ExperimentReports, RunValues
from appliance.store.experiments import ExperimentStore
from appliance.store.llm_cache import LlmCacheStore
from appliance.store.llm_runs import LlmRunStore
from appliance.store.meta import MetaStore
from appliance.store.models import ModelStore
from appliance.store.performance import PerformanceStore
from appliance.store.runs import RunStore
from appliance.store.sandboxes import SandboxStore
from appliance.store.sessions import SessionStore
from appliance.store.snapshots import SnapshotStore
from appliance.store.statistical_results import StatisticalResultStore
from appliance.store.telemetry.database import TelemetryDatabase
from appliance.store.telemetry.store import TelemetryStore

if TYPE_CHECKING:
    from appliance.services.cluster.executor import ClusterExecutor
    from appliance.services.cluster.recording import RunRecorder

log = logging.getLogger("appliance")

# What a command may fail with that is the user's or the machine's to fix: the CLI says
# these in one line instead of a traceback.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (AppError, EngineUnavailable, ImageBuildError, StartupRefused)

MiB = 1024 * 1024


class Appliance:
    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        self.db = Database(s.database_path)
        self.bus = EventBus()
        self.engine = DockerEngine(base_url=s.docker_host, threads=max(16, s.workers * 2 + 8))
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.admin_key_created: str | None = None  # the key file's path, on the first start only

        self.readiness = EngineReadiness(
            self.engine,
            EnginePolicy(engines=tuple(s.engines), require_gvisor=s.require_gvisor, gvisor_runtime=s.gvisor_runtime),
        )
        self.limits = SandboxLimits(
            memory_mb=s.memory_limit_mb,
            cpus=s.cpu_limit,
            pids=s.pids_limit,
            file_size_mb=s.file_size_limit_mb,
            open_files=s.open_files_limit,
            work_dir_mb=s.work_dir_size_mb,
            output_bytes=s.output_limit_bytes,
            gvisor_runtime=s.gvisor_runtime,
        )
        self.specs = SandboxSpecs(self.limits)

        # access
        self.auth = AuthService(ApiKeyStore(self.db), s.jwt_secret_path, s.jwt_ttl_seconds)
        self.rate_limiter = RateLimiter()
        self.sessions = SessionService(SessionStore(self.db), self.auth, s.session_ttl_seconds)

        # telemetry: its own database file, writer and readers (store/telemetry/)
        self.telemetry_db = TelemetryDatabase(s.telemetry_path, readers=s.telemetry_readers)
        telemetry_store = TelemetryStore(self.telemetry_db)
        self.telemetry_ingest = TelemetryIngest(
            telemetry_store,
            TelemetryLimits(
                max_batch_events=s.telemetry_max_batch_events,
                max_event_bytes=s.telemetry_max_event_bytes,
                max_metadata_depth=s.telemetry_max_metadata_depth,
                max_measurements=s.telemetry_max_measurements,
                max_past_seconds=s.telemetry_max_past_seconds,
                max_future_seconds=s.telemetry_max_future_seconds,
            ),
            ExperimentOwnerLookup(self.db),
            publish=self.bus.publish,  # each stored batch, for the Phoenix telemetry channels
        )
        self.telemetry = TelemetryService(
            telemetry_store, QueryLimits(exact_max_rows=s.telemetry_exact_max_rows, max_points=s.telemetry_max_points)
        )
        self.telemetry_exports = TelemetryExports(
            telemetry_store,
            s.exports_path,
            ExportLimits(sync_max_rows=s.telemetry_export_sync_max_rows, keep_hours=s.telemetry_export_keep_hours),
        )
        self.telemetry_retention = TelemetryRetention(
            telemetry_store,
            self.telemetry_exports,
            RetentionPolicy(retention_days=s.telemetry_retention_days, max_bytes=s.telemetry_max_size_mb * MiB),
        )
        self.appliance_events = ApplianceEvents(telemetry_store, enabled=s.telemetry_record_appliance_events)

        # the model registry; call statistics from the telemetry store
        self.models = ModelService(ModelStore(self.db), model_seeds(s), TelemetryModelStatistics(telemetry_store))

        # statistical tests on experiments' results (runs' metrics, telemetry events, inline data)
        self.statistics = StatisticsService(
            StatisticalResultStore(self.db),
            ExperimentOwners(self.db),
            {
                DataSource.RUNS: RunMetricSource(RunValues(self.db)),
                DataSource.TELEMETRY: TelemetryMetricSource(telemetry_store, s.telemetry_exact_max_rows),
            },
        )
        self.reports = ReportService(StoredExperiments(ExperimentReports(self.db), self.telemetry), self.statistics)

        # evaluation
        self.pool = WarmPool(
            self.engine,
            PoolSettings(
                min_idle=s.warm_pool_min_idle,
                max_idle=s.warm_pool_max_idle,
                max_containers=s.warm_pool_max_containers,
                idle_seconds=s.warm_pool_idle_seconds,
                memory_reserve_mb=s.warm_pool_memory_reserve_mb,
            ),
        )
        self.executor = ContainerExecutor(self.engine, self.pool)
        # Cluster mode: the queue's sandboxes run on Ray nodes. Imported only then, so a
        # single machine never loads Ray. Batch items go to nodes too (no local lane).
        self.cluster: ClusterExecutor | None = self._build_cluster() if s.cluster else None
        queue_executor: SandboxExecutor = self.cluster or self.executor
        evaluation_store = EvaluationStore(self.db)
        use_lanes = s.batch_lane_engines and self.cluster is None
        lanes = BatchLanes(self.engine, image_ref("python"), self.limits) if use_lanes else None
        self.queue = EvaluationQueue(
            evaluation_store,
            queue_executor,
            self.bus,
            self.specs.request_for,
            s.cluster_workers if self.cluster else s.workers,
            lanes=lanes,
            lane_engines=tuple(s.batch_lane_engines),
            job_workers=s.experiment_job_workers,
        )
        # ?wait= on status reads: woken by the queue the moment a run's end is stored.
        self.completions = Completions(s.status_wait_max_seconds)
        self.queue.add_finish_listener(self.completions.finished)
        self.backpressure = Backpressure(s.queue_backpressure_threshold, s.workers)
        self.queue.add_finish_listener(self.backpressure.finished)
        self.evaluations = EvaluationService(
            evaluation_store,
            self.queue,
            EvalLimits(
                default_timeout=s.default_timeout,
                max_timeout=s.max_timeout,
                max_code_bytes=s.max_code_bytes,
                max_batch_size=s.max_batch_size,
                max_queue_length=s.max_queue_length,
                engines=tuple(s.engines),
                max_files_bytes=s.max_files_bytes,
                require_gvisor=s.require_gvisor,
            ),
            self.readiness,
            self.completions,
            self.backpressure,
        )
        self.executions = ExecutionService(
            self.evaluations,
            self.queue,
            evaluation_store,
            ExecuteLimits(
                default_memory_mb=s.memory_limit_mb,
                max_memory_mb=s.execute_max_memory_mb,
                default_cpus=s.cpu_limit,
                allow_network=s.execute_allow_network,
                require_gvisor=s.require_gvisor,
            ),
            self.completions,
        )

        # monitoring
        self.status = PlatformStatusService(
            self.db, self.readiness, self.queue, self.pool, evaluation_store.count_by_status
        )
        self.monitoring = MonitoringService(
            self.queue, self.pool, self.status, s.data_path, PerformanceStore(self.db), s.metrics_retention_hours
        )
        readings = self.readings = SystemReadings(
            self.monitoring, self.queue, self.pool, self.status, s.alert_failure_rate_window_seconds
        )
        self.alerts = AlertService(
            AlertStore(self.db), readings, self.bus, rules_from_settings(s), s.alert_retention_days
        )
        self.monitoring.add_gauges(self.alerts.gauges)
        if self.cluster is not None:
            from appliance.services.cluster.status import ClusterStatus

            ClusterStatus(self.cluster.view).attach(self.status, self.monitoring, readings)
        self.direct_runs: RunRecorder | None = self._build_direct_runs(evaluation_store) if self.cluster else None

        # persistent sandboxes: their containers are not the warm pool's
        self.templates = TemplateService(self.engine)
        self.sandboxes = SandboxService(
            SandboxStore(self.db),
            self.engine,
            SandboxPaths(s.data_path),
            SandboxPolicy(
                max_count=s.sandbox_max_count,
                default_memory=s.sandbox_memory_limit_mb * MiB,
                max_memory=s.sandbox_max_memory_mb * MiB,
                default_cpu=s.sandbox_cpu_limit,
                default_disk=s.sandbox_disk_limit_mb * MiB,
                max_disk=s.sandbox_max_disk_mb * MiB,
                engines=tuple(s.engines),
                require_gvisor=s.require_gvisor,
                allow_network=s.sandbox_allow_network,
                egress_network=s.sandbox_egress_network,
                base_limits=self.limits,
            ),
            self.readiness,
        )
        self.sandbox_files = SandboxFileService(self.sandboxes, s.max_upload_bytes)
        self.snapshots = SnapshotService(SnapshotStore(self.db), self.sandboxes)
        self.reconciler = SandboxReconciler(self.sandboxes)
        self.appliance_events.attach(self.queue)

        # experiments: their runs are jobs of the evaluation queue
        self.experiment_limits = experiment_limits = ExperimentLimits(
            run_timeout_default=s.experiment_run_timeout_default,
            run_timeout_max=s.experiment_run_timeout_max,
            max_runs=s.experiment_max_runs,
            max_parallel=s.experiment_max_parallel,
            max_code_bytes=s.max_code_bytes,
            run_max_metric_points=s.experiment_run_max_metric_points,
            run_max_log_lines=s.experiment_run_max_log_lines,
            run_max_log_bytes=s.experiment_run_max_log_bytes,
            run_max_output_bytes=s.experiment_run_max_output_bytes,
            checkpoint_max_bytes=s.experiment_checkpoint_max_bytes,
            run_checkpoints_max_bytes=s.experiment_run_checkpoints_max_bytes,
            run_max_checkpoints=s.experiment_run_max_checkpoints,
        )
        experiment_store, run_store = ExperimentStore(self.db), RunStore(self.db)
        self.checkpoints = CheckpointFiles(s.checkpoints_path, run_store, experiment_limits)
        self.runners = RunnerRegistry(
            [
                CodeRunner(self.specs, self.readiness.policy, self.sandbox_files, experiment_limits),
                ExternalRunner(experiment_limits),
            ]
        )
        news = ExperimentNews(experiment_store, run_store, self.bus, s.experiment_job_workers)
        self.experiment_scheduler = ExperimentScheduler(
            experiment_store, run_store, self.queue, self.runners, self.checkpoints, experiment_limits, news
        )
        self.experiments = ExperimentService(
            experiment_store,
            run_store,
            self.runners,
            self.experiment_scheduler,
            self.checkpoints,
            s.experiment_job_workers,
            news,
        )
        self.runs = RunService(run_store, self.experiments, self.checkpoints, experiment_limits, news)
        self.live = LiveChannels(
            self.bus,
            self.experiments,
            self.readings,
            experiment_store,
            LiveSettings(s.socket_queue_size, s.socket_heartbeat_timeout_seconds, s.dashboard_interval_seconds),
        )

        self._build_llm(evaluation_store)
        self._schedule_jobs()

    def _build_cluster(self) -> ClusterExecutor:
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("cluster is set, but Ray is not installed: install the `cluster` extra (docs/cluster.md)")
        from appliance.services.cluster.executor import ClusterExecutor, ClusterSettings

        s = self.settings
        settings = ClusterSettings(
            s.cluster,
            node_ip=s.cluster_node_ip,
            unplaceable_seconds=s.cluster_unplaceable_seconds,
            poll_seconds=s.cluster_poll_seconds,
            node_timeout_seconds=s.cluster_node_timeout_seconds,
        )
        return ClusterExecutor(
            settings,
            self.executor,
            lambda: [self.specs.spec(language, engine) for language in LANGUAGES for engine in s.engines],
        )

    def _build_direct_runs(self, evaluation_store: EvaluationStore) -> RunRecorder:
        """What users' Ray jobs run on the nodes directly (appliance.cluster), stored here."""
        from appliance.services.cluster.recording import DirectSettings, RunRecorder

        s = self.settings

        async def owner_of(api_key: str) -> str | None:
            try:
                return (await self.auth.authenticate_key(api_key)).owner
            except Unauthorized:
                return None

        settings = DirectSettings(
            specs=[self.specs.spec(language, engine) for language in LANGUAGES for engine in s.engines],
            default_timeout=s.default_timeout,
            max_timeout=s.max_timeout,
            max_code_bytes=s.max_code_bytes,
        )
        return RunRecorder(evaluation_store, settings, owner_of, s.cluster_poll_seconds)

    def _build_llm(self, evaluation_store: EvaluationStore) -> None:
        """LLM evaluation: model calls (reported to `model_calls`'s recorder: nothing
        until telemetry is wired with `self.model_calls.set_recorder(...)`), the prompt
        library, the graders (their programs run as the queue's batches)."""
        s = self.settings
        self.model_calls = ModelCalls(
            LlmCacheStore(self.db),
            ModelCallEvents(self.appliance_events),
            CallDefaults(
                timeout_seconds=s.llm_timeout_seconds,
                max_retries=s.llm_max_retries,
                max_concurrency=s.llm_max_concurrency,
                requests_per_minute=s.llm_requests_per_minute,
            ),
            RetryPolicy(base_seconds=s.llm_retry_base_seconds, max_seconds=s.llm_retry_max_seconds),
        )
        choice = ModelChoice(
            self.models,
            s.default_model,
            DEFAULT_MODEL_ID if default_model_seed(s) else "",
            s.judge_model,
            s.embedding_model,
        )
        self.grading_sandboxes = SandboxRunner(
            self.evaluations, FinishedEvaluations(self.queue, evaluation_store), s.workers, s.max_batch_size
        )
        grading = build_grading(self.model_calls, choice, self.grading_sandboxes, s.llm_code_timeout_seconds)
        self.llm = LlmEvaluationService(
            PromptLibrary(s.data_path),
            choice,
            self.model_calls,
            grading,
            LlmRunStore(self.db),
            LlmLimits(max_trials=s.llm_max_trials, suite_concurrency=s.llm_suite_concurrency),
        )
        self.optimizer = PromptOptimizer(self.llm, self.model_calls, choice, LlmRunStore(self.db), s.llm_max_trials)
        self.datasets = DatasetService(DatasetStore(self.db))
        # Benchmarks and ensembles: experiment types whose runs ask models, not sandboxes.
        benchmark_store = BenchmarkStore(self.db)
        benchmark_runner = BenchmarkRunner(
            self.datasets,
            choice,
            ItemAsker(self.model_calls, grading),
            benchmark_store,
            self.experiment_limits,
        )
        self.runners.add(benchmark_runner)
        self.runners.add(EnsembleRunner(benchmark_runner))
        self.benchmarks = BenchmarkService(benchmark_store, self.datasets, self.experiments, benchmark_runner)

    def _schedule_jobs(self) -> None:
        s = self.settings
        jobs = (
            ("performance-sample", self.monitoring.take_sample, s.metrics_sample_seconds, True),
            ("alert-evaluation", self.alerts.evaluate, s.alert_evaluation_seconds, False),
            ("sandbox-reconcile", self.reconciler.run, s.sandbox_reconcile_seconds, False),
            ("telemetry-retention", self.telemetry_retention.run, s.telemetry_retention_check_seconds, True),
        )
        for job_id, job, seconds, at_once in jobs:
            first = datetime.datetime.now(datetime.UTC) if at_once else None
            self.scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
                **({"next_run_time": first} if first else {}),
            )

    # --- before start ---------------------------------------------------------------------

    def check_startable(self) -> None:
        """Refuse, in one clear line and before anything listens, a data dir written by a
        newer version or a machine without the gVisor runtime it must use."""
        refuse_newer_schema(self.settings.database_path)
        self.readiness.check_required_engine()

    # --- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        _install_task_dump()
        await self.engine.call(self.readiness.check_required_engine)
        # It holds the secrets and everyone's evaluations: tightened whichever way it was made.
        # Its trees are made here, 0700, so the ones made later below them inherit no umask.
        trees = SandboxPaths(self.settings.data_path)
        for loose in await asyncio.to_thread(data_dir.make_private, self.settings.data_path, trees.all()):
            log.warning("tightened %s", loose)
        await self.db.open()
        await self.telemetry_db.open()
        await self.telemetry_exports.start()
        await self.appliance_events.start()
        self.engine.instance_id = await MetaStore(self.db).get_or_create("instance_id", lambda: secrets.token_hex(8))
        self.auth.start()
        if await self.auth.ensure_admin_key(self.settings.admin_key_path):
            self.admin_key_created = str(self.settings.admin_key_path)
            log.warning("created the first admin API key; it is in %s (mode 0600)", self.admin_key_created)
        await self.models.start()
        await self.alerts.start()
        if await self.engine.call(self.engine.ping):
            removed = await self.engine.call(self.engine.remove_instance_containers)
            if removed:
                log.info("removed %d container(s) left over from an earlier run", removed)
        else:
            log.warning("Docker engine not reachable: evaluations will wait until it is")
        await self.snapshots.at_start()
        await self.reconciler.at_start()
        self.pool.start()
        # Idle containers for every language on every engine that can run, before any
        # request asks: the first request of each kind finds one ready.
        # In cluster mode the nodes' pools keep them; this machine runs only local-only work.
        for language, engine in await self.readiness.runnable() if self.cluster is None else []:
            self.pool.warm(self.specs.spec(language, engine))
        if self.cluster is not None:
            await self.cluster.start()
        if self.direct_runs is not None:
            await self.direct_runs.start()
        await self.queue.start()
        # Running experiments resume: finished runs stay, interrupted ones go back in line.
        await self.experiment_scheduler.start()
        await self.llm.start()
        await self.status.start()
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.status.stop()
        self.completions.release_all()  # waiting status reads answer now, not after their wait
        await self.sandboxes.close()  # the sandboxes themselves keep running
        # Before the queue: runs stopped for the shutdown stay `running`, to be recovered.
        await self.experiment_scheduler.stop()
        await self.llm.stop()
        await self.grading_sandboxes.close()
        await self.queue.stop()
        if self.direct_runs is not None:
            await self.direct_runs.stop()
        await (self.cluster or self.executor).drain()
        await self.appliance_events.stop()
        await self.telemetry_exports.stop()
        await self.telemetry_db.close()
        await self.db.close()
        self.engine.close()


@asynccontextmanager
async def open_auth(settings: Settings) -> AsyncIterator[AuthService]:
    """The key service alone on the data dir's database, for `appliance keys ...`."""
    db = Database(settings.database_path)
    await db.open()
    try:
        auth = AuthService(ApiKeyStore(db), settings.jwt_secret_path, settings.jwt_ttl_seconds)
        auth.start()
        auth.on_revoke(SessionStore(db).delete_of_key)  # a revoked key's sessions end with it
        yield auth
    finally:
        await db.close()


def _install_task_dump() -> None:
    """`kill -USR1 <pid>` writes every asyncio task's stack to the log: the first thing
    to look at when a queue seems stuck."""
    if threading.current_thread() is not threading.main_thread():
        return

    def dump() -> None:
        for task in asyncio.all_tasks():
            out = io.StringIO()
            task.print_stack(file=out)
            log.warning("task %s:\n%s", task.get_name(), out.getvalue())

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
