"""What a container's cgroup says about the execution in it, read from the host.

The engine's stats API answers in about a second; the cgroup files answer in
microseconds, so the executor reads them directly while the container is still alive
(the cgroup disappears with it). Docker lays cgroups out differently by cgroup version
and driver; `locate` tries each layout once per container.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupPaths(msgspec.Struct, frozen=True):
    memory: Path
    pids: Path | None
    unified: bool  # cgroup v2: one directory holds every controller's files


class CgroupUsage(msgspec.Struct, frozen=True, kw_only=True):
    memory_peak: int | None = None
    oom_kills: int = 0
    # Times usage reached the limit (an allocation then had to wait, fail or kill).
    memory_limit_hits: int = 0
    pids_limit_hits: int = 0


def _candidates(container_id: str) -> list[str]:
    return [
        f"docker/{container_id}",  # cgroupfs driver
        f"system.slice/docker-{container_id}.scope",  # systemd driver
    ]


def locate(container_id: str, root: Path = CGROUP_ROOT) -> CgroupPaths | None:
    for relative in _candidates(container_id):
        v1_memory = root / "memory" / relative
        if v1_memory.is_dir():
            pids = root / "pids" / relative
            return CgroupPaths(memory=v1_memory, pids=pids if pids.is_dir() else None, unified=False)
        unified = root / relative
        if (unified / "cgroup.controllers").exists():
            return CgroupPaths(memory=unified, pids=unified, unified=True)
    return None


def read_int(path: Path) -> int | None:
    """The first number in a cgroup file, or None if it cannot be read."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_keyed(path: Path, key: str) -> int:
    """`key N` lines as in memory.events, memory.oom_control and pids.events."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def read_usage(paths: CgroupPaths | None) -> CgroupUsage:
    if paths is None:
        return CgroupUsage()
    if paths.unified:
        # memory.peak exists from Linux 5.19; before that the current usage is the best
        # the kernel keeps.
        peak = read_int(paths.memory / "memory.peak") or read_int(paths.memory / "memory.current")
        oom = read_keyed(paths.memory / "memory.events", "oom_kill")
        limit_hits = read_keyed(paths.memory / "memory.events", "max")
    else:
        peak = read_int(paths.memory / "memory.max_usage_in_bytes")
        oom = read_keyed(paths.memory / "memory.oom_control", "oom_kill")
        limit_hits = read_int(paths.memory / "memory.failcnt") or 0
    pids_hits = read_keyed(paths.pids / "pids.events", "max") if paths.pids else 0
    return CgroupUsage(memory_peak=peak, oom_kills=oom, memory_limit_hits=limit_hits, pids_limit_hits=pids_hits)
