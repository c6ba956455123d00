"""Live memory and CPU use of a running container, read from its cgroup on the host.

Memory is what `docker stats` shows: usage without the inactive file cache. CPU is the
cores in use, from two readings of the cgroup's CPU time a short interval apart.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from appliance.runtime import cgroups

CPU_SAMPLE_SECONDS = 0.1


class LiveUsage(msgspec.Struct, frozen=True, kw_only=True):
    memory_bytes: int | None = None
    cpu_cores: float | None = None


def _cpu_reader(paths: cgroups.CgroupPaths, root: Path):
    """A function returning the cgroup's CPU time in nanoseconds (None if unknown)."""
    if paths.unified:
        stat_file = paths.memory / "cpu.stat"
        return lambda: cgroups.read_keyed(stat_file, "usage_usec") * 1000 if stat_file.exists() else None
    relative = paths.memory.relative_to(root / "memory")
    for controller in ("cpuacct", "cpu,cpuacct"):
        usage_file = root / controller / relative / "cpuacct.usage"
        if usage_file.exists():
            return lambda: cgroups.read_int(usage_file)
    return lambda: None


def read(container_id: str, root: Path = cgroups.CGROUP_ROOT) -> LiveUsage:
    paths = cgroups.locate(container_id, root)
    if paths is None:
        return LiveUsage()
    if paths.unified:
        current = cgroups.read_int(paths.memory / "memory.current")
        inactive = cgroups.read_keyed(paths.memory / "memory.stat", "inactive_file")
    else:
        current = cgroups.read_int(paths.memory / "memory.usage_in_bytes")
        inactive = cgroups.read_keyed(paths.memory / "memory.stat", "total_inactive_file")
    memory = None if current is None else max(0, current - inactive)
    cpu_time = _cpu_reader(paths, root)
    first, started = cpu_time(), time.monotonic()
    time.sleep(CPU_SAMPLE_SECONDS)
    second, elapsed = cpu_time(), time.monotonic() - started
    cores = None
    if first is not None and second is not None and elapsed > 0:
        cores = round(max(0, second - first) / 1e9 / elapsed, 3)
    return LiveUsage(memory_bytes=memory, cpu_cores=cores)
