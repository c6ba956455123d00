"""Composition root: builds every service once and owns their start and stop.

The CLI, the HTTP app and the tests all get their services from `Appliance`, so there
is exactly one way the parts are wired together.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.config import Settings
from appliance.core.evaluations import Evaluation
from appliance.core.events import EventBus
from appliance.core.identity import ADMIN
from appliance.core.languages import LANGUAGES
from appliance.runtime.engine import DockerEngine, gvisor_missing_help
from appliance.runtime.batch_lanes import BatchLanes
from appliance.runtime.executor import ContainerExecutor, ExecutionRequest
from appliance.runtime.pool import PoolSettings, WarmPool
from appliance.runtime.sandbox import SandboxSpec
from appliance.runtime.images import image_ref
from appliance.runtime.limits import SandboxLimits
from appliance.services.auth import AuthService, load_or_create_secret, write_private_file
from appliance.services.eval_queue import EvaluationQueue
from appliance.services.evaluations import EvalLimits, EvaluationService
from appliance.services.execution_options import ExecuteLimits, execution_request
from appliance.services.executions import ExecutionService
from appliance.services.monitoring import MonitoringService
from appliance.store.performance import PerformanceStore
from appliance.services.alerts import AlertService, rules_from_settings
from appliance.services.readings import SystemReadings
from appliance.store.alerts import AlertStore
from appliance.services.platform_status import PlatformStatusService
from appliance.services.rate_limit import RateLimiter
from appliance.services.sandbox_files import SandboxFileService
from appliance.services.sandbox_reconcile import SandboxReconciler
from appliance.services.sandbox_requests import SandboxPolicy
from appliance.services.sandboxes import SandboxPaths, SandboxService
from appliance.services.snapshots import SnapshotService
from appliance.services.templates import TemplateService
from appliance.store.api_keys import ApiKeyStore
from appliance.store.database import Database
from appliance.store.evaluations import EvaluationStore
from appliance.store.sandboxes import SandboxStore
from appliance.store.snapshots import SnapshotStore
from appliance.store.meta import MetaStore

log = logging.getLogger("appliance")

IMAGE_RECHECK_SECONDS = 5.0
ENGINE_RECHECK_SECONDS = 5.0


class StartupRefused(Exception):
    """The appliance must not serve in this state (e.g. gVisor mandatory but missing)."""


class Appliance:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_path)
        self.bus = EventBus()
        self.engine = DockerEngine(base_url=settings.docker_host, threads=max(16, settings.workers * 2 + 8))
        self.rate_limiter = RateLimiter()
        self.instance_id = ""
        self.admin_key_created: str | None = None  # path, on the first start only
        self.limits = SandboxLimits(
            memory_mb=settings.memory_limit_mb, cpus=settings.cpu_limit,
            pids=settings.pids_limit, file_size_mb=settings.file_size_limit_mb,
            open_files=settings.open_files_limit, work_dir_mb=settings.work_dir_size_mb,
            output_bytes=settings.output_limit_bytes, gvisor_runtime=settings.gvisor_runtime,
        )
        self._image_ok: dict[str, tuple[float, str | None]] = {}
        self._engine_ok: dict[str, tuple[float, str | None]] = {}
        self._engine_check: asyncio.Task | None = None
        self.auth: AuthService | None = None
        self.queue: EvaluationQueue | None = None
        self.evaluations: EvaluationService | None = None
        self.status: PlatformStatusService | None = None
        self.monitoring: MonitoringService | None = None
        self.executions: ExecutionService | None = None
        self.templates = TemplateService(self.engine)  # needs nothing started
        self.alerts: AlertService | None = None
        self.sandboxes: SandboxService | None = None
        self.sandbox_files: SandboxFileService | None = None
        self.snapshots: SnapshotService | None = None

    # --- wiring -----------------------------------------------------------------------

    @property
    def default_engine(self) -> str:
        """The engine of requests that name none (the same rule the validation applies)."""
        if self.settings.require_gvisor or "docker" not in self.settings.engines:
            return "gvisor"
        return "docker"

    def sandbox_spec(self, language_name: str, engine: str) -> SandboxSpec:
        language = LANGUAGES[language_name]
        return SandboxSpec(image=image_ref(language.image), language=language.name, engine=engine,
                           limits=self.limits)

    def _execution_request(self, evaluation: Evaluation, environment: dict[str, str]) -> ExecutionRequest:
        return execution_request(evaluation, environment,
                                 self.sandbox_spec(evaluation.language, evaluation.engine))

    async def _warm_up(self) -> None:
        """Idle containers for every language on every engine that can run, before any
        request asks: the first request of each kind finds one ready."""
        for engine in self.settings.engines:
            if engine == "docker" and self.settings.require_gvisor:
                continue
            if await self.engine_problem(engine) is not None:
                continue
            for name in LANGUAGES:
                if await self.image_problem(name) is None:
                    self.pool.warm(self.sandbox_spec(name, engine))

    async def image_problem(self, language_name: str) -> str | None:
        """Why code in this language cannot run now, or None. Cached for a few seconds."""
        checked_at, problem = self._image_ok.get(language_name, (0.0, "unchecked"))
        if problem is None or time.monotonic() - checked_at < IMAGE_RECHECK_SECONDS:
            return problem
        ref = image_ref(LANGUAGES[language_name].image)
        if not await self.engine.call(self.engine.ping):
            problem = "the Docker engine is not reachable; evaluations cannot run until it is back"
        elif not await self.engine.call(self.engine.image_present, ref):
            problem = f"the runtime image {ref} is missing: run `appliance images build` (or `images import FILE`)"
        else:
            problem = None
        self._image_ok[language_name] = (time.monotonic(), problem)
        return problem

    async def engine_problem(self, engine: str) -> str | None:
        """Why evaluations cannot run on this sandbox engine now, or None. Cached for a
        few seconds. An unreachable Docker engine is not reported here: image_problem and
        the executor's health already say so."""
        if engine != "gvisor":
            return None
        if engine not in self._engine_ok:
            await self._check_engine(engine)
        checked_at, problem = self._engine_ok[engine]
        # Stale: answer with what is known and look again in the background. `docker
        # info` can take a second on a busy engine, and /api/status must not wait for it.
        stale = time.monotonic() - checked_at >= ENGINE_RECHECK_SECONDS
        if stale and (self._engine_check is None or self._engine_check.done()):
            self._engine_check = asyncio.create_task(self._check_engine(engine))
        return problem

    async def _check_engine(self, engine: str) -> None:
        registered = await self.engine.call(self.engine.has_runtime, self.settings.gvisor_runtime)
        problem = gvisor_missing_help(self.settings.gvisor_runtime) if registered is False else None
        self._engine_ok[engine] = (time.monotonic(), problem)

    def check_required_engine(self) -> None:
        """With require_gvisor, refuse to run when dockerd answers but has no gVisor
        runtime. Synchronous: `appliance serve` calls it before it listens."""
        if not self.settings.require_gvisor:
            return
        registered = self.engine.has_runtime(self.settings.gvisor_runtime)
        if registered is False:
            raise StartupRefused(
                "gVisor is mandatory here (require_gvisor) but "
                + gvisor_missing_help(self.settings.gvisor_runtime)
                + "; or unset require_gvisor"
            )
        if registered is None:
            log.warning("Docker engine not reachable: cannot check the gVisor runtime %r that "
                        "require_gvisor needs; evaluations get 503 until it is there",
                        self.settings.gvisor_runtime)

    async def start(self) -> None:
        _install_task_dump()
        await self.engine.call(self.check_required_engine)
        self.settings.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the secrets
        await self.db.open()
        meta = MetaStore(self.db)
        self.instance_id = await meta.get_or_create("instance_id", lambda: secrets.token_hex(8))
        jwt_secret = load_or_create_secret(self.settings.data_path / "jwt.secret")
        self.auth = AuthService(ApiKeyStore(self.db), jwt_secret, self.settings.jwt_ttl_seconds)
        await self._bootstrap_admin_key()

        s = self.settings
        self.pool = WarmPool(self.engine, self.instance_id, PoolSettings(
            min_idle=s.warm_pool_min_idle, max_idle=s.warm_pool_max_idle,
            max_containers=s.warm_pool_max_containers, idle_seconds=s.warm_pool_idle_seconds,
            memory_reserve_mb=s.warm_pool_memory_reserve_mb,
        ))
        executor = ContainerExecutor(self.engine, self.pool)
        self._executor = executor
        store = EvaluationStore(self.db)
        lanes = (BatchLanes(self.engine, self.instance_id, image_ref("python"), self.limits)
                 if s.batch_lane_engines else None)
        self.queue = EvaluationQueue(store, executor, self.bus, self._execution_request, s.workers,
                                     lanes=lanes, lane_engines=tuple(s.batch_lane_engines))
        self.evaluations = EvaluationService(
            store, self.queue,
            EvalLimits(
                default_timeout=self.settings.default_timeout, max_timeout=self.settings.max_timeout,
                max_code_bytes=self.settings.max_code_bytes, max_batch_size=self.settings.max_batch_size,
                max_queue_length=self.settings.max_queue_length, engines=tuple(self.settings.engines),
                max_files_bytes=self.settings.max_files_bytes,
                require_gvisor=self.settings.require_gvisor,
            ),
            self.image_problem, self.engine_problem,
        )
        self.executions = ExecutionService(self.evaluations, self.queue, store, ExecuteLimits(
            default_memory_mb=s.memory_limit_mb, max_memory_mb=s.execute_max_memory_mb,
            default_cpus=s.cpu_limit, allow_network=s.execute_allow_network, require_gvisor=s.require_gvisor,
        ))
        self.status = PlatformStatusService(
            self.db, self.engine, self.queue, engines=tuple(self.settings.engines),
            required_engine="gvisor" if self.settings.require_gvisor else None,
            engine_problem=self.engine_problem, pool=self.pool,
        )
        self.monitoring = MonitoringService(self.queue, self.pool, self.status, self.settings.data_path,
                                            PerformanceStore(self.db), self.settings.metrics_retention_hours)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.scheduler.add_job(self.monitoring.take_sample, "interval", seconds=self.settings.metrics_sample_seconds,
                               id="performance-sample", max_instances=1, coalesce=True,
                               next_run_time=datetime.datetime.now(datetime.timezone.utc))
        readings = SystemReadings(self.monitoring, self.queue, self.pool, self.status,
                                  self.settings.alert_failure_rate_window_seconds)
        self.alerts = AlertService(AlertStore(self.db), readings, self.bus, rules_from_settings(self.settings),
                                   self.settings.alert_retention_days)
        await self.alerts.start()
        self.monitoring.add_gauges(self.alerts.gauges)
        self.scheduler.add_job(self.alerts.evaluate, "interval", seconds=self.settings.alert_evaluation_seconds,
                               id="alert-evaluation", max_instances=1, coalesce=True)
        if await self.engine.call(self.engine.ping):
            removed = await self.engine.call(self.engine.remove_instance_containers, self.instance_id)
            if removed:
                log.info("removed %d container(s) left over from an earlier run", removed)
        else:
            log.warning("Docker engine not reachable: evaluations will wait until it is")
        await self._start_sandboxes()
        self.pool.start()
        await self._warm_up()
        await self.queue.start()
        self.scheduler.start()

    async def _start_sandboxes(self) -> None:
        """Persistent sandboxes: their containers are not the warm pool's (the cleanup
        above leaves them), and are brought in line with their rows now and every
        sandbox_reconcile_seconds (restarted or remade from the kept files)."""
        s = self.settings
        policy = SandboxPolicy(
            max_count=s.sandbox_max_count, default_memory=s.sandbox_memory_limit_mb * 1024 * 1024,
            max_memory=s.sandbox_max_memory_mb * 1024 * 1024, default_cpu=s.sandbox_cpu_limit,
            default_disk=s.sandbox_disk_limit_mb * 1024 * 1024, max_disk=s.sandbox_max_disk_mb * 1024 * 1024,
            engines=tuple(s.engines), require_gvisor=s.require_gvisor, allow_network=s.sandbox_allow_network,
            base_limits=self.limits)
        self.sandboxes = SandboxService(SandboxStore(self.db), self.engine, self.instance_id,
                                        SandboxPaths(s.data_path), policy, self.engine_problem)
        self.sandbox_files = SandboxFileService(self.sandboxes, s.max_upload_bytes)
        self.snapshots = SnapshotService(SnapshotStore(self.db), self.sandboxes)
        await self.snapshots.at_start()
        reconciler = SandboxReconciler(self.sandboxes)
        await reconciler.at_start()
        self.scheduler.add_job(reconciler.run, "interval", seconds=s.sandbox_reconcile_seconds,
                               id="sandbox-reconcile", max_instances=1, coalesce=True)

    async def _bootstrap_admin_key(self) -> None:
        assert self.auth is not None
        if await self.auth.has_keys():
            return
        created = await self.auth.create_key("admin", [ADMIN], owner="admin")
        write_private_file(self.settings.admin_key_path, created.secret + "\n")
        self.admin_key_created = str(self.settings.admin_key_path)
        log.warning("created the first admin API key; it is in %s (mode 0600)", self.admin_key_created)

    async def stop(self) -> None:
        if getattr(self, "scheduler", None) is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.sandboxes is not None:
            await self.sandboxes.close()  # the sandboxes themselves keep running
        if self.queue is not None:
            await self.queue.stop()
        if getattr(self, "_executor", None) is not None:
            await self._executor.drain()
        await self.db.close()
        self.engine.close()


def _install_task_dump() -> None:
    """`kill -USR1 <pid>` writes every asyncio task's stack to the log: the first thing
    to look at when a queue seems stuck."""
    import asyncio
    import io
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def dump() -> None:
        for task in asyncio.all_tasks():
            out = io.StringIO()
            task.print_stack(file=out)
            log.warning("task %s:\n%s", task.get_name(), out.getvalue())

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
