"""`appliance doctor`: checks what the appliance needs from this machine, one function per
check, each returning a `Check` that says what it found and, when not OK, what to do.

Read-only by design: nothing here changes the database, the secrets or the engine's
state. It does create and remove a temporary file (is the data dir writable?) and a
throwaway container per runtime (does a sandbox actually start?), since asking whether
something would work is less reliable than trying it.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from appliance.config import Settings
from appliance.core.clock import iso_z, utc_now
from appliance.runtime.engine_probe import EngineProbe
from appliance.runtime.images import IMAGE_RECIPES, image_ref
from appliance.runtime.limits import SandboxLimits
from appliance.services.operations.doctor_check import FAIL, OK, WARN, Check, Status
from appliance.services.operations.doctor_cluster import check_cluster
from appliance.services.operations.doctor_host import (
    check_data_dir,
    check_data_disk,
    check_database,
    check_port,
    check_secrets,
    disk_check,
)

ENGINE_TIMEOUT_SECONDS = 5.0  # a docker_host that never answers must not hang the doctor
PROBE_TIMEOUT_SECONDS = 3.0  # a `true` container takes ~0.1 s under runc, ~0.2 s under runsc
# The engine and this machine read the same kernel clock when the engine is local; a
# remote one should agree within NTP's usual accuracy. Past this (beyond the round trip
# of the measurement), evaluation timestamps and engine events disagree visibly.
CLOCK_SKEW_WARN_SECONDS = 2.0


# --- the Docker engine ------------------------------------------------------------------


def _engine_down(name: str) -> Check:
    return Check(name, WARN, "not checked: the Docker engine does not answer (see docker engine)")


def check_engine(engine: EngineProbe) -> Check:
    name = "docker engine"
    if engine.reachable:
        info = engine.info
        return Check(
            name,
            OK,
            f"Docker {info.get('ServerVersion', '?')} (API {engine.api_version}) at {engine.address}; "
            f"cgroup v{info.get('CgroupVersion') or '1'}, driver {info.get('CgroupDriver', '?')}",
        )
    found = f"no Docker engine answers at {engine.address}"
    socket_path = engine.address.removeprefix("unix://") if engine.local else None
    reason = "the socket does not exist" if socket_path and not os.path.exists(socket_path) else engine.error
    if socket_path and os.path.exists(socket_path) and not os.access(socket_path, os.R_OK | os.W_OK):
        user = getpass.getuser()
        return Check(
            name,
            FAIL,
            f"{found}: {user} may not use {socket_path}",
            f"usermod -aG docker {user} and log in again (or run as root)",
        )
    if shutil.which("dockerd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        fix = "apt-get install -y docker.io && (systemctl start docker || dockerd &)"
    else:
        fix = "start it: systemctl start docker (without systemd: dockerd &)"
    if engine.configured:
        fix += f"; or correct docker_host (now {engine.address}; env APPLIANCE_DOCKER_HOST)"
    if os.geteuid() != 0:
        fix += "; as a non-root user, join the docker group: usermod -aG docker " + getpass.getuser()
    return Check(name, FAIL, f"{found} ({reason})", fix)


def _probe_image(engine: EngineProbe) -> str | None:
    """A runtime image to start probe containers from (python first: the smallest)."""
    return engine.first_image([image_ref(key) for key in ("python", *IMAGE_RECIPES)])


def _probe(engine: EngineProbe, settings: Settings, sandbox_engine: str, image: str) -> tuple[str | None, float]:
    """Start `true` in a container with the sandbox profile on this runtime."""
    limits = SandboxLimits(
        memory_mb=settings.memory_limit_mb,
        cpus=settings.cpu_limit,
        pids=settings.pids_limit,
        file_size_mb=settings.file_size_limit_mb,
        open_files=settings.open_files_limit,
        work_dir_mb=settings.work_dir_size_mb,
        gvisor_runtime=settings.gvisor_runtime,
    )
    return engine.run_true(limits, sandbox_engine, image, PROBE_TIMEOUT_SECONDS)


def check_runc(engine: EngineProbe, settings: Settings) -> Check:
    name = "runtime runc"
    if not engine.reachable:
        return _engine_down(name)
    runtimes = engine.info.get("Runtimes") or {}
    if "runc" not in runtimes:
        return Check(
            name,
            FAIL,
            f"dockerd has no runc runtime (it has: {', '.join(runtimes) or 'none'})",
            "reinstall the engine: apt-get install --reinstall -y docker.io runc",
        )
    if "docker" not in settings.engines or settings.require_gvisor:
        why = "require_gvisor is set" if settings.require_gvisor else "engines has no docker"
        return Check(name, OK, f"registered; not started, as no sandbox runs on it ({why})")
    if (image := _probe_image(engine)) is None:
        return Check(name, WARN, "registered; not started: no runtime image to start it with (see runtime images)")
    error, seconds = _probe(engine, settings, "docker", image)
    if error is not None:
        return Check(
            name,
            FAIL,
            f"registered, but a sandbox container does not start: {error}",
            "see dockerd's log (journalctl -u docker) for why runc fails",
        )
    return Check(name, OK, f"a sandbox container ran `true` in {seconds:.2f} s")


def _gvisor_fix(runtime: str) -> str:
    runsc = shutil.which("runsc", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    snippet = (
        '{"runtimes": {"'
        + runtime
        + '": {"path": "'
        + (runsc or "/usr/bin/runsc")
        + '", "runtimeArgs": ["--network=none"]}}}'
    )
    install = "" if runsc else "apt-get install -y runsc, then "
    return (
        f"{install}add {snippet} to /etc/docker/daemon.json and reload dockerd "
        "(systemctl reload docker, or kill -HUP $(pidof dockerd)); scripts/setup.sh does both"
    )


def check_gvisor(engine: EngineProbe, settings: Settings) -> Check:
    name = "runtime gvisor"
    runtime = settings.gvisor_runtime
    if "gvisor" not in settings.engines:
        return Check(name, OK, f"engine gvisor is not enabled (engines: {', '.join(settings.engines)})")
    if not engine.reachable:
        return _engine_down(name)
    # Mandatory gVisor refuses to start without it; optional only refuses gvisor requests.
    missing: Status = FAIL if settings.require_gvisor else WARN
    if runtime not in (engine.info.get("Runtimes") or {}):
        consequence = (
            "`appliance serve` refuses to start (require_gvisor)"
            if settings.require_gvisor
            else 'requests for engine "gvisor" are refused'
        )
        return Check(name, missing, f"dockerd has no runtime named {runtime!r}: {consequence}", _gvisor_fix(runtime))
    if (image := _probe_image(engine)) is None:
        return Check(
            name, WARN, f"{runtime!r} registered; not started: no runtime image to start it with (see runtime images)"
        )
    error, seconds = _probe(engine, settings, "gvisor", image)
    if error is not None:
        return Check(
            name,
            missing,
            f"{runtime!r} is registered, but a sandbox container does not start: {error}",
            f"run `runsc --version` and see dockerd's log; {_gvisor_fix(runtime)}",
        )
    return Check(name, OK, f"{runtime!r} registered; a sandbox container ran `true` in {seconds:.2f} s")


def check_images(engine: EngineProbe, cli_flags: str = "") -> Check:
    name = "runtime images"
    if not engine.reachable:
        return _engine_down(name)
    missing = engine.missing_images()
    fix = (
        f"appliance images build{cli_flags} (as root, needs debootstrap and a Debian mirror); "
        f"offline: appliance images import FILE{cli_flags}"
    )
    if not missing:
        return Check(name, OK, f"all {len(IMAGE_RECIPES)} present: {', '.join(IMAGE_RECIPES)}")
    # Some missing: those languages get 503 while the rest work. None: nothing can run.
    status: Status = FAIL if len(missing) == len(IMAGE_RECIPES) else WARN
    return Check(
        name,
        status,
        f"missing {len(missing)} of {len(IMAGE_RECIPES)}: " + ", ".join(image_ref(key) for key in missing),
        fix,
    )


# --- disks ----------------------------------------------------------------------------


def check_docker_disk(engine: EngineProbe, settings: Settings) -> Check:
    name = "disk docker"
    if not engine.reachable:
        return _engine_down(name)
    root = engine.info.get("DockerRootDir")
    if not root or not engine.local or not Path(root).is_dir():
        return Check(
            name,
            WARN,
            f"cannot see the engine's root dir {root or '?'} from here (engine at {engine.address})",
            "check free space on the engine's host (docker system df)",
        )
    return disk_check(
        name,
        Path(root),
        "docker system df shows what uses it; docker system prune removes stopped "
        "containers and dangling images (without -a it keeps the runtime images)",
        settings,
    )


# --- time -------------------------------------------------------------------------------


def _run(command: list[str]) -> str | None:
    """A command's stdout, or None when it is missing or fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_ntp() -> Check:
    name = "clock sync"
    # Timestamps are stored in UTC, so the time zone does not matter; accuracy does.
    if Path("/run/systemd/system").is_dir():  # systemd is PID 1: timedatectl can answer
        synced = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        if synced == "yes":
            return Check(name, OK, "NTP synchronized (timedatectl)")
        if synced == "no":
            return Check(
                name,
                WARN,
                "the clock is not NTP-synchronized (timedatectl)",
                "timedatectl set-ntp true (needs systemd-timesyncd or chrony: apt-get install -y systemd-timesyncd)",
            )
    tracking = _run(["chronyc", "-n", "tracking"])
    if tracking is not None:
        leap = next(
            (line.split(":", 1)[1].strip() for line in tracking.splitlines() if line.startswith("Leap status")), ""
        )
        if leap == "Normal":
            return Check(name, OK, "NTP synchronized (chronyc tracking)")
        return Check(
            name,
            WARN,
            f"chrony is not synchronized (leap status {leap or '?'})",
            "check chrony's sources: chronyc sources",
        )
    return Check(
        name,
        WARN,
        "cannot tell whether the clock is NTP-synchronized (no systemd, no chronyc); "
        "timestamps are UTC, so only accuracy matters",
        "run an NTP client on the host (apt-get install -y chrony), or compare `date -u` with a trusted clock",
    )


def _parse_engine_time(text: str) -> datetime | None:
    # RFC 3339 with nanoseconds (and Z or an offset): Python takes up to microseconds.
    match = re.fullmatch(r"(.+?T[\d:]+)(?:\.(\d+))?(Z|[+-][\d:]+)", text or "")
    if match is None:
        return None
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    offset = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}{offset}")


def check_engine_clock(engine: EngineProbe) -> Check:
    name = "clock engine"
    if not engine.reachable:
        return _engine_down(name)
    engine_time = _parse_engine_time(engine.info.get("SystemTime", ""))
    if engine_time is None:
        return Check(name, WARN, f"the engine reports no usable SystemTime ({engine.info.get('SystemTime')!r})", None)
    # Compared with the middle of the `docker info` round trip; half of it is the error bar.
    here = (engine.asked_at + engine.answered_at) / 2
    skew = engine_time.timestamp() - here
    margin = (engine.answered_at - engine.asked_at) / 2
    found = f"the engine's clock is {abs(skew):.2f} s {'ahead of' if skew > 0 else 'behind'} this machine's"
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS + margin:
        return Check(name, WARN, found, "synchronize both clocks with NTP (apt-get install -y chrony on each)")
    return Check(name, OK, f"{found}; UTC now {iso_z(utc_now())}")


# --- all of them ------------------------------------------------------------------------


def run_checks(settings: Settings, cli_flags: str = "") -> list[Check]:
    """Every check, in a fixed order. `cli_flags` (e.g. " --data-dir D") is added to the
    appliance commands a fix suggests, so they act on the same installation."""
    engine = EngineProbe(settings.docker_host, timeout=ENGINE_TIMEOUT_SECONDS)
    try:
        # The probes and the port's HTTP look can each take a moment: run them side by side.
        jobs: list[Callable[[], Check]] = [
            lambda: check_engine(engine),
            lambda: check_runc(engine, settings),
            lambda: check_gvisor(engine, settings),
            lambda: check_images(engine, cli_flags),
            lambda: check_data_disk(settings),
            lambda: check_docker_disk(engine, settings),
            lambda: check_data_dir(settings),
            lambda: check_secrets(settings),
            lambda: check_database(settings),
            lambda: check_port(settings),
            check_ntp,
            lambda: check_engine_clock(engine),
        ]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="doctor") as pool:
            checks = list(pool.map(lambda job: job(), jobs))
        # On this thread: Ray's driver wants the main thread. Cluster mode only.
        cluster = check_cluster(settings)
        return checks if cluster is None else [*checks, cluster]
    finally:
        engine.close()
