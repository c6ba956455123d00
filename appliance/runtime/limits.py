"""The locked-down container profile every execution runs under."""

from __future__ import annotations

from typing import Any

import docker.types
import msgspec

SANDBOX_USER = "65534:65534"  # nobody:nogroup; exists in every Debian rootfs
GVISOR_RUNTIME = "runsc"  # the Docker runtime name scripts/setup.sh registers gVisor under
# A program that keeps writing after its output is truncated is killed once stdout and
# stderr together pass this many times the output limit (each stream's cap, the setting
# output_limit_bytes): draining a flood forever only burns CPU.
FLOOD_FACTOR = 32


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    file_size_mb: int = 16
    open_files: int = 256
    work_dir_mb: int = 64
    tmp_mb: int = 16
    shm_mb: int = 16
    output_bytes: int = 1024 * 1024
    network: bool = False
    # The Docker runtime engine "gvisor" runs under (setting gvisor_runtime). It travels
    # with the limits so every caller of `container_options` gets the configured name.
    gvisor_runtime: str = GVISOR_RUNTIME


def flood_bytes(output_limit: int) -> int:
    """Output of both streams together past which an execution is killed as a flood."""
    return FLOOD_FACTOR * output_limit


def container_options(limits: SandboxLimits, *, engine: str, gvisor_runtime: str | None = None) -> dict[str, Any]:
    """Keyword arguments for `client.api.create_host_config` that enforce `limits`.

    `engine` is "docker" (the engine's default runtime, runc) or "gvisor" (the runtime
    named `gvisor_runtime`, by default `limits.gvisor_runtime`, i.e. "runsc")."""
    fsize = limits.file_size_mb * 1024 * 1024
    ulimits = [
        docker.types.Ulimit(name="fsize", soft=fsize, hard=fsize),
        docker.types.Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
        docker.types.Ulimit(name="core", soft=0, hard=0),
    ]
    uid_gid = "uid=65534,gid=65534"
    options: dict[str, Any] = {
        "network_mode": "bridge" if limits.network else "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        # The work dir must allow exec (compiled C programs run from it); /tmp and the
        # shm mount must not.
        "tmpfs": {
            "/work": f"rw,exec,nosuid,nodev,size={limits.work_dir_mb}m,{uid_gid}",
            "/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmp_mb}m,{uid_gid}",
        },
        "shm_size": limits.shm_mb * 1024 * 1024,
        "mem_limit": limits.memory_mb * 1024 * 1024,
        # Equal to mem_limit: no swap, so a memory bomb is killed instead of thrashing.
        "memswap_limit": limits.memory_mb * 1024 * 1024,
        "nano_cpus": int(limits.cpus * 1e9),
        # Half the default weight: when sandboxes and the appliance want the same CPU,
        # the appliance (answering the API, the event loop) gets it first.
        "cpu_shares": 512,
        "ulimits": ulimits,
        "init": False,
        # Output reaches the appliance over the attach stream; the engine's own log
        # (json-file by default) would only cost it CPU and disk for every line.
        "log_config": docker.types.LogConfig(type="none"),
        "ipc_mode": "private",
    }
    if engine == "gvisor":
        # runsc fails to start a container with a pids limit; processes are capped with
        # nproc instead, which inside gVisor counts only this sandbox's processes.
        options["runtime"] = gvisor_runtime or limits.gvisor_runtime
        ulimits.append(docker.types.Ulimit(name="nproc", soft=limits.pids, hard=limits.pids))
    else:
        options["pids_limit"] = limits.pids
    return options
