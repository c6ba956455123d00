"""Settings: defaults < config file < environment < command-line flags.

Every field is documented in docs/configuration.md. The config file is TOML with the
same flat field names; the environment uses `APPLIANCE_<FIELD>` in upper case.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from appliance.core.models import SEEDED_ID, ModelSeed, model_problems

ENV_PREFIX = "APPLIANCE_"
# The installation's secrets in its data dir: written mode 0600 at the first start, kept
# by backups, checked by the doctor.
ADMIN_KEY_FILE = "admin.key"
JWT_SECRET_FILE = "jwt.secret"
SECRET_FILES = (JWT_SECRET_FILE, ADMIN_KEY_FILE)
TELEMETRY_FILE = "telemetry.db"
# Checkpoint files of experiment runs: DATA_DIR/checkpoints/<run_id>/<checkpoint_id>.
CHECKPOINTS_DIR = "checkpoints"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "appliance"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    # Scheduling priority of the server process (nice value), applied when permitted
    # (root): below the sandboxes' default 0, so the API answers while they load the CPU.
    server_nice: int = -5

    # Evaluation queue
    workers: int = 4
    default_timeout: float = 30.0
    max_timeout: float = 300.0
    max_code_bytes: int = 256 * 1024
    max_body_bytes: int = 2 * 1024 * 1024
    max_files_bytes: int = 1024 * 1024
    max_batch_size: int = 100
    max_queue_length: int = 10_000
    # Backpressure: when every worker is busy and this many runs wait already, new
    # submissions get 503 with Retry-After instead of a place far down the queue (0: off).
    queue_backpressure_threshold: int = 200
    # GET /api/eval-status/{id}?wait= and GET /api/execute/{id}?wait=: the longest wait
    # (seconds) a request may ask for.
    status_wait_max_seconds: float = 60.0
    engines: list[str] = msgspec.field(default_factory=lambda: ["docker", "gvisor"])
    # gVisor: the Docker runtime name `runsc` is registered under (scripts/setup.sh does
    # it), and whether every evaluation must run under it (engine docker is then refused).
    gvisor_runtime: str = "runsc"
    require_gvisor: bool = False

    # Sandbox limits applied to every evaluation
    memory_limit_mb: int = 256
    cpu_limit: float = 1.0
    pids_limit: int = 64
    file_size_limit_mb: int = 16
    open_files_limit: int = 256
    work_dir_size_mb: int = 64
    output_limit_bytes: int = 1024 * 1024
    # POST /api/execute and /ws/execute: the largest memory_limit a request may ask for
    # (the default is memory_limit_mb), and whether network_access may be granted.
    execute_max_memory_mb: int = 2048
    execute_allow_network: bool = True

    # Rate limits, requests per minute per identity
    rate_limit_anonymous: int = 10
    rate_limit_authenticated: int = 100
    rate_limit_batch: int = 10
    rate_limit_execute: int = 20
    rate_limit_upload: int = 10
    # The experiments API (/api/v1), as its document's table: GET requests, other
    # methods, and the export endpoints, each counted on its own.
    rate_limit_read: int = 1000
    rate_limit_write: int = 100
    rate_limit_export: int = 10
    # The llm-eval API (/health aside): requests per minute per key.
    rate_limit_llm: int = 100
    # Telemetry ingest, counted in events per minute (the document's 10000).
    rate_limit_telemetry_events: int = 10_000

    # Authentication
    jwt_ttl_seconds: int = 3600
    # Browser sessions of the experiments API (POST /api/v1/session): their lifetime.
    session_ttl_seconds: int = 8 * 3600

    # Model registry entries of the config file (`[[models]]` tables): every key sees
    # them, none can change them through the API.
    models: list[ModelSeed] = msgspec.field(default_factory=list)

    # LLM evaluation (llm-eval-api.md, docs/llm-eval-api.md). The model evaluate and
    # suite use when a request names none: a registry entry's id or name.
    default_model: str = ""
    # One line to a local model server: its base URL (e.g. http://127.0.0.1:11434/v1)
    # becomes the read-only registry entry `model_default`, the default model.
    default_model_url: str = ""
    default_model_provider: str = "openai-compatible"
    # The server's name of the model; empty: the first one the server lists.
    default_model_name: str = ""
    # llm_judge's judge when a grader names none (empty: the model under evaluation),
    # and the embedding model of `similarity` (empty: token similarity).
    judge_model: str = ""
    embedding_model: str = ""
    # Calls to model servers: a call's time limit, retries of infrastructure failures
    # (backoff from base doubling up to max, with jitter), and per server (provider and
    # base URL) calls at once and per minute, unless a model's config says otherwise.
    llm_timeout_seconds: float = 120.0
    llm_max_retries: int = 3
    llm_retry_base_seconds: float = 0.5
    llm_retry_max_seconds: float = 30.0
    llm_max_concurrency: int = 8
    llm_requests_per_minute: int = 0
    # Suites: the most trials a request may ask, cases in flight per run, and the time
    # limit of each program a `code` or `python` grader runs in a sandbox.
    llm_max_trials: int = 100
    llm_suite_concurrency: int = 32
    llm_code_timeout_seconds: float = 10.0
    # Origins browsers may call the llm-eval API from ("*": any; [] turns CORS off).
    llm_cors_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    # Telemetry (experiments-api.md): events in DATA_DIR/telemetry.db, apart from the
    # main database. What one POST /api/v1/telemetry/events may hold:
    telemetry_max_batch_events: int = 5000
    telemetry_max_body_bytes: int = 8 * 1024 * 1024
    telemetry_max_event_bytes: int = 64 * 1024  # measurements + metadata as JSON
    telemetry_max_metadata_depth: int = 8
    telemetry_max_measurements: int = 100
    # How far from the appliance's clock an event's timestamp may be.
    telemetry_max_past_seconds: int = 365 * 86_400
    telemetry_max_future_seconds: int = 300
    # Retention, applied by the scheduler: events older than this (0: kept), and the
    # oldest while the file uses more than telemetry_max_size_mb (0: no size limit).
    telemetry_retention_days: float = 90.0
    telemetry_max_size_mb: int = 0
    telemetry_retention_check_seconds: float = 600.0
    # Aggregates: events an exact answer may read, buckets one answer may hold.
    telemetry_exact_max_rows: int = 1_000_000
    telemetry_max_points: int = 10_000
    # Exports of more events than this become jobs; their files are kept this long.
    telemetry_export_sync_max_rows: int = 100_000
    telemetry_export_keep_hours: float = 24.0
    # Reader threads (connections) of telemetry.db.
    telemetry_readers: int = 2
    # Each evaluation and execution as an event (appliance.evaluation.completed, ...).
    telemetry_record_appliance_events: bool = True

    # Docker
    docker_host: str = ""  # empty: the environment's DOCKER_HOST or the local socket
    # Warm pool: idle containers kept ready per (language, engine, limits)
    warm_pool_min_idle: int = 1
    warm_pool_max_idle: int = 8
    warm_pool_max_containers: int = 32
    warm_pool_idle_seconds: float = 60.0
    warm_pool_memory_reserve_mb: int = 1024

    # Batch lane: Python items of POST /api/eval-batch on these engines run in one
    # sandbox per batch (a fresh process each); empty turns the lane off.
    batch_lane_engines: list[str] = msgspec.field(default_factory=lambda: ["docker"])

    # Cluster mode (docs/cluster.md): the Ray cluster's GCS address (HOST:PORT) this
    # appliance joins as a driver; empty keeps everything on this machine (Ray is never
    # imported). Evaluations then run on the nodes' actors (`appliance node`).
    cluster: str = ""
    # The address Ray binds this driver to; empty: the host of `cluster` when that is a
    # loopback address, else Ray's own choice.
    cluster_node_ip: str = ""
    # Evaluations placed on nodes at once (the queue's workers in cluster mode): at least
    # the cluster's slots, or nodes sit idle.
    cluster_workers: int = 32
    # How long a request waits for a node that serves its language and engine to join.
    cluster_unplaceable_seconds: float = 60.0
    # How often the head looks for nodes, and how long a node may take to answer.
    cluster_poll_seconds: float = 1.0
    cluster_node_timeout_seconds: float = 10.0

    # Monitoring: how often the scheduler samples CPU, memory, disk and queue for
    # /api/metrics/performance, and how long samples are kept.
    metrics_sample_seconds: float = 5.0
    metrics_retention_hours: float = 168.0

    # Alerts: rules the scheduler evaluates every alert_evaluation_seconds. A rule opens
    # an alert once its figure has been at or above the threshold for *_for_seconds.
    alert_evaluation_seconds: float = 5.0
    alert_cpu_percent: float = 90.0
    alert_cpu_for_seconds: float = 300.0
    alert_memory_percent: float = 90.0
    alert_memory_for_seconds: float = 300.0
    alert_disk_percent: float = 90.0
    alert_disk_for_seconds: float = 60.0
    alert_queue_depth: int = 100
    alert_queue_for_seconds: float = 60.0
    alert_failure_rate_percent: float = 50.0
    alert_failure_rate_window_seconds: float = 300.0
    alert_failure_rate_min_executions: int = 10
    alert_engine_for_seconds: float = 15.0
    alert_disabled_rules: list[str] = msgspec.field(default_factory=list)
    alert_retention_days: float = 90.0
    # /ws/monitor: seconds between metric updates when a subscription names no interval.
    monitor_interval_seconds: float = 5.0
    # Phoenix channels (/socket/websocket): a socket that sends nothing (not even a
    # heartbeat) for this long is closed; messages waiting for a slow client at most;
    # seconds between a dashboard channel's updates.
    socket_heartbeat_timeout_seconds: float = 60.0
    socket_queue_size: int = 1000
    dashboard_interval_seconds: float = 5.0

    # Persistent sandboxes (POST /api/sandboxes): how many may exist, the limits a request
    # gets when it names none, the most it may ask for, and the largest upload.
    sandbox_max_count: int = 32
    sandbox_memory_limit_mb: int = 512
    sandbox_max_memory_mb: int = 4096
    sandbox_cpu_limit: float = 1.0
    sandbox_disk_limit_mb: int = 1024
    sandbox_max_disk_mb: int = 10240
    max_upload_bytes: int = 100 * 1024 * 1024
    sandbox_allow_network: bool = True
    # The Docker network the egress proxies of sandboxes with network.allowed_hosts reach
    # out on (runtime/egress.py).
    sandbox_egress_network: str = "bridge"
    # How often containers of persistent sandboxes are checked and restarted or remade.
    sandbox_reconcile_seconds: float = 30.0

    # Experiments (experiments-api.md): runs of type code, and what one run may store.
    experiment_run_timeout_default: float = 3600.0
    experiment_run_timeout_max: float = 86400.0
    # Workers of the evaluation queue that experiment runs may hold at once; 0: one fewer
    # than `workers` (at least 1), so interactive evaluations always find one.
    experiment_workers: int = 0
    experiment_max_runs: int = 10_000
    experiment_max_parallel: int = 64
    experiment_run_max_metric_points: int = 100_000
    experiment_run_max_log_lines: int = 10_000
    experiment_run_max_log_bytes: int = 4 * 1024 * 1024
    experiment_run_max_output_bytes: int = 256 * 1024 * 1024
    experiment_checkpoint_max_bytes: int = 1024 * 1024 * 1024
    experiment_run_checkpoints_max_bytes: int = 4 * 1024 * 1024 * 1024
    experiment_run_max_checkpoints: int = 100

    # Where `images build` gets Debian packages; a lab's local mirror works offline.
    debian_mirror: str = "http://deb.debian.org/debian"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_path(self) -> Path:
        return self.data_path / "appliance.db"

    @property
    def telemetry_path(self) -> Path:
        return self.data_path / TELEMETRY_FILE

    @property
    def exports_path(self) -> Path:
        return self.data_path / "exports"

    @property
    def checkpoints_path(self) -> Path:
        return self.data_path / CHECKPOINTS_DIR

    @property
    def experiment_job_workers(self) -> int:
        """The workers runs may hold: `experiment_workers`, or one fewer than `workers`."""
        return max(1, self.experiment_workers or self.workers - 1)

    @property
    def admin_key_path(self) -> Path:
        return self.data_path / ADMIN_KEY_FILE

    @property
    def jwt_secret_path(self) -> Path:
        return self.data_path / JWT_SECRET_FILE


FIELD_NAMES = frozenset(Settings.__struct_fields__)


class ConfigError(Exception):
    """A setting has a value of the wrong type or an unknown name."""


LIST_FIELDS = ("engines", "batch_lane_engines", "alert_disabled_rules", "llm_cors_origins")
# Settings whose environment variable holds JSON (a list of tables has no flat form).
JSON_FIELDS = ("models",)


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELD_NAMES:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if name in LIST_FIELDS:
            values[name] = [part.strip() for part in raw.split(",") if part.strip()]
        elif name in JSON_FIELDS:
            try:
                values[name] = json.loads(raw) if raw.strip() else []
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: not valid JSON: {exc}") from exc
        else:
            values[name] = raw
    return values


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the four layers. `flags` holds only options the user actually gave."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env_values = _from_env(environ)

    data_dir = flags.get("data_dir") or env_values.get("data_dir") or str(default_data_dir())
    path = Path(config_file or environ.get(ENV_PREFIX + "CONFIG") or Path(data_dir) / "config.toml")
    file_values: dict[str, Any] = {}
    if path.expanduser().is_file():
        try:
            file_values = tomllib.loads(path.expanduser().read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc

    merged = {**file_values, **env_values, **flags, "data_dir": data_dir}
    unknown = sorted(set(merged) - FIELD_NAMES)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)} (see docs/configuration.md)")
    try:
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    _check_engines(settings)
    _check_alerts(settings)
    _check_sandboxes(settings)
    _check_experiments(settings)
    _check_access(settings)
    if settings.cluster and settings.cluster_workers < 1:
        raise ConfigError("cluster_workers: must be 1 or more")
    if settings.queue_backpressure_threshold < 0:
        raise ConfigError("queue_backpressure_threshold: must be 0 (off) or more")
    if not 0 <= settings.status_wait_max_seconds <= 3600:
        raise ConfigError("status_wait_max_seconds: must be between 0 and 3600 seconds")
    _check_models(settings)
    _check_llm(settings)
    _check_telemetry(settings)
    return settings


KNOWN_ENGINES = ("docker", "gvisor")


def _check_engines(settings: Settings) -> None:
    unknown = [e for e in (*settings.engines, *settings.batch_lane_engines) if e not in KNOWN_ENGINES]
    if unknown:
        raise ConfigError(f"engines: unknown engine(s) {', '.join(unknown)}; known: {', '.join(KNOWN_ENGINES)}")
    if not settings.engines:
        raise ConfigError("engines: enable at least one of " + ", ".join(KNOWN_ENGINES))
    if settings.require_gvisor and "gvisor" not in settings.engines:
        raise ConfigError("require_gvisor is set but engines does not include gvisor")
    if not settings.gvisor_runtime.strip():
        raise ConfigError("gvisor_runtime: name the Docker runtime gVisor is registered as (default runsc)")


# The built-in alert rules (services/alerts.py), by the names alert_disabled_rules takes.
ALERT_RULES = ("cpu_usage", "memory_usage", "disk_usage", "queue_depth", "failure_rate", "engine_unreachable")


def _check_alerts(settings: Settings) -> None:
    unknown = [r for r in settings.alert_disabled_rules if r not in ALERT_RULES]
    if unknown:
        raise ConfigError(
            f"alert_disabled_rules: unknown rule(s) {', '.join(unknown)}; known: {', '.join(ALERT_RULES)}"
        )
    for name in (
        "alert_evaluation_seconds",
        "monitor_interval_seconds",
        "alert_failure_rate_window_seconds",
        "socket_heartbeat_timeout_seconds",
        "dashboard_interval_seconds",
    ):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name}: must be more than 0 seconds")
    if settings.alert_failure_rate_min_executions < 1:
        raise ConfigError("alert_failure_rate_min_executions: must be at least 1")
    if settings.socket_queue_size < 1:
        raise ConfigError("socket_queue_size: must be at least 1")


def _check_sandboxes(settings: Settings) -> None:
    if not settings.sandbox_reconcile_seconds > 0:
        raise ConfigError("sandbox_reconcile_seconds: must be more than 0 seconds")
    for name in (
        "sandbox_max_count",
        "sandbox_memory_limit_mb",
        "sandbox_max_memory_mb",
        "sandbox_disk_limit_mb",
        "sandbox_max_disk_mb",
        "max_upload_bytes",
    ):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    if settings.sandbox_memory_limit_mb > settings.sandbox_max_memory_mb:
        raise ConfigError("sandbox_memory_limit_mb: the default is above sandbox_max_memory_mb")
    if settings.sandbox_disk_limit_mb > settings.sandbox_max_disk_mb:
        raise ConfigError("sandbox_disk_limit_mb: the default is above sandbox_max_disk_mb")
    if not settings.sandbox_egress_network.strip() or settings.sandbox_egress_network in ("host", "none"):
        # A container cannot be on "host" or "none" and on its sandbox's network at once.
        raise ConfigError(
            "sandbox_egress_network: name a Docker network the egress proxies can join "
            '(Docker\'s "bridge", or one of yours); not "host", "none" or empty'
        )


def _check_experiments(settings: Settings) -> None:
    if not 0 < settings.experiment_run_timeout_default <= settings.experiment_run_timeout_max:
        raise ConfigError("experiment_run_timeout_default: must be more than 0 and at most experiment_run_timeout_max")
    if settings.experiment_workers < 0:
        raise ConfigError("experiment_workers: must be 0 (one fewer than workers) or more")
    for name in (
        "experiment_max_runs",
        "experiment_max_parallel",
        "experiment_run_max_metric_points",
        "experiment_run_max_log_lines",
        "experiment_run_max_log_bytes",
        "experiment_run_max_output_bytes",
        "experiment_checkpoint_max_bytes",
        "experiment_run_checkpoints_max_bytes",
        "experiment_run_max_checkpoints",
    ):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")


def _check_access(settings: Settings) -> None:
    if settings.session_ttl_seconds < 60:
        raise ConfigError("session_ttl_seconds: must be at least 60 seconds")
    for name in ("rate_limit_read", "rate_limit_write", "rate_limit_export"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must be 0 (no limit) or more")


def _check_telemetry(settings: Settings) -> None:
    for name in (
        "telemetry_max_batch_events",
        "telemetry_max_body_bytes",
        "telemetry_max_event_bytes",
        "telemetry_max_metadata_depth",
        "telemetry_max_measurements",
        "telemetry_max_past_seconds",
        "telemetry_exact_max_rows",
        "telemetry_max_points",
        "telemetry_readers",
    ):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    for name in (
        "rate_limit_telemetry_events",
        "telemetry_max_future_seconds",
        "telemetry_retention_days",
        "telemetry_max_size_mb",
        "telemetry_export_sync_max_rows",
    ):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must be 0 or more")
    for name in ("telemetry_retention_check_seconds", "telemetry_export_keep_hours"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name}: must be more than 0")


def _check_models(settings: Settings) -> None:
    """Each `[[models]]` entry is held to the rules of POST /api/v1/models (no secrets
    above all), and their ids are distinct."""
    seen: set[str] = set()
    for index, seed in enumerate(settings.models):
        where = f"models[{index}] ({seed.name!r})"
        problems = model_problems(seed.fields())
        if problems:
            said = "; ".join(f"{field}: {', '.join(texts)}" for field, texts in problems.items())
            raise ConfigError(f"{where}: {said}")
        if not SEEDED_ID.match(seed.model_id):
            raise ConfigError(
                f"{where}: id {seed.model_id!r} must start with model_ and hold only a-z, 0-9, '_', '.', '-'"
            )
        if seed.model_id in seen:
            raise ConfigError(f"{where}: id {seed.model_id} is used twice; give one of them another `id`")
        seen.add(seed.model_id)


DEFAULT_MODEL_ID = "model_default"
DEFAULT_MODEL_PROVIDERS = ("openai-compatible", "openai", "ollama", "anthropic", "claude")


def default_model_seed(settings: Settings) -> ModelSeed | None:
    """The registry entry `default_model_url` stands for, if it is set."""
    if not settings.default_model_url.strip():
        return None
    config: dict[str, object] = {"base_url": settings.default_model_url.strip()}
    if settings.default_model_name.strip():
        config["model"] = settings.default_model_name.strip()
    return ModelSeed(
        id=DEFAULT_MODEL_ID,
        name=settings.default_model_name.strip() or "default",
        provider=settings.default_model_provider,
        config=config,
    )


def model_seeds(settings: Settings) -> list[ModelSeed]:
    """The `models` setting and the entry of `default_model_url`."""
    seed = default_model_seed(settings)
    return [*settings.models, *([seed] if seed else [])]


def _check_llm(settings: Settings) -> None:
    if settings.default_model_provider not in DEFAULT_MODEL_PROVIDERS:
        raise ConfigError(f"default_model_provider: must be one of {', '.join(DEFAULT_MODEL_PROVIDERS)}")
    seed = default_model_seed(settings)
    if seed is not None:
        problems = model_problems(seed.fields())
        if problems:
            said = "; ".join(f"{field}: {', '.join(texts)}" for field, texts in problems.items())
            raise ConfigError(f"default_model_url: {said}")
        if any(s.model_id == DEFAULT_MODEL_ID for s in settings.models):
            raise ConfigError(f"models: the id {DEFAULT_MODEL_ID} is default_model_url's; give that entry another id")
    for name in ("llm_timeout_seconds", "llm_code_timeout_seconds"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name}: must be more than 0 seconds")
    if not 0 <= settings.llm_retry_base_seconds <= settings.llm_retry_max_seconds:
        raise ConfigError("llm_retry_base_seconds: must be from 0 to llm_retry_max_seconds")
    if not 0 <= settings.llm_max_retries <= 10:
        raise ConfigError("llm_max_retries: must be from 0 to 10")
    for name in ("llm_max_concurrency", "llm_max_trials", "llm_suite_concurrency"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    for name in ("llm_requests_per_minute", "rate_limit_llm"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must be 0 (no limit) or more")
    for origin in settings.llm_cors_origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"llm_cors_origins: {origin!r} is not an origin (http://host[:port], https://..., or *)")
