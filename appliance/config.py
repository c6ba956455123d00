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
    # Telemetry ingest (10000 events/minute in the document) comes with the telemetry
    # issue as `rate_limit_telemetry_events`.

    # Authentication
    jwt_ttl_seconds: int = 3600
    # Browser sessions of the experiments API (POST /api/v1/session): their lifetime.
    session_ttl_seconds: int = 8 * 3600

    # Model registry entries of the config file (`[[models]]` tables): every key sees
    # them, none can change them through the API.
    models: list[ModelSeed] = msgspec.field(default_factory=list)

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

    # Where `images build` gets Debian packages; a lab's local mirror works offline.
    debian_mirror: str = "http://deb.debian.org/debian"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_path(self) -> Path:
        return self.data_path / "appliance.db"

    @property
    def admin_key_path(self) -> Path:
        return self.data_path / ADMIN_KEY_FILE

    @property
    def jwt_secret_path(self) -> Path:
        return self.data_path / JWT_SECRET_FILE


FIELD_NAMES = frozenset(Settings.__struct_fields__)


class ConfigError(Exception):
    """A setting has a value of the wrong type or an unknown name."""


LIST_FIELDS = ("engines", "batch_lane_engines", "alert_disabled_rules")
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
    _check_access(settings)
    if settings.queue_backpressure_threshold < 0:
        raise ConfigError("queue_backpressure_threshold: must be 0 (off) or more")
    if not 0 <= settings.status_wait_max_seconds <= 3600:
        raise ConfigError("status_wait_max_seconds: must be between 0 and 3600 seconds")
    _check_models(settings)
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
    for name in ("alert_evaluation_seconds", "monitor_interval_seconds", "alert_failure_rate_window_seconds"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name}: must be more than 0 seconds")
    if settings.alert_failure_rate_min_executions < 1:
        raise ConfigError("alert_failure_rate_min_executions: must be at least 1")


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


def _check_access(settings: Settings) -> None:
    if settings.session_ttl_seconds < 60:
        raise ConfigError("session_ttl_seconds: must be at least 60 seconds")
    for name in ("rate_limit_read", "rate_limit_write", "rate_limit_export"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must be 0 (no limit) or more")


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
