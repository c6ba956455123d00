"""What a caller may ask of a persistent sandbox, and the checks that turn a request
into values the sandbox service can trust (every problem is a 400 naming the field)."""

from __future__ import annotations

import os

import msgspec

from appliance.core.allowed_hosts import FIELD, canonical_hosts, hosts_problem
from appliance.core.errors import Unavailable, ValidationError
from appliance.core.languages import find_language, supported_names
from appliance.core.sandboxes import SandboxResources, name_problem
from appliance.core.sizes import format_size, parse_size
from appliance.runtime.limits import SandboxLimits

# Docker refuses less than 6 MiB; a sandbox with less than this cannot start a shell.
MIN_MEMORY_BYTES = 16 * 1024 * 1024
MIN_CPU = 0.01


class ResourcesInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    memory_limit: str | int | None = None  # "512M", "1G" or bytes
    cpu_limit: float | None = None  # cores
    disk_limit: str | int | None = None


class NetworkInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = False
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class SandboxCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    runtime: str | None = None
    template: str | None = None
    resources: ResourcesInput = msgspec.field(default_factory=ResourcesInput)
    network: NetworkInput = msgspec.field(default_factory=NetworkInput)
    environment: dict[str, str] = msgspec.field(default_factory=dict)
    # Not in the reference: "docker" (runc) or "gvisor"; the appliance's default if absent.
    engine: str | None = None


class SandboxUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resources: ResourcesInput | None = None
    # Replaces the variables set by the caller (the template's stay beneath them).
    environment: dict[str, str] | None = None


class SandboxPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The appliance's settings for persistent sandboxes."""

    max_count: int
    default_memory: int
    max_memory: int
    default_cpu: float
    default_disk: int
    max_disk: int
    engines: tuple[str, ...]
    require_gvisor: bool
    allow_network: bool
    # The network the egress proxies of sandboxes with allowed_hosts reach out on
    # (setting sandbox_egress_network).
    egress_network: str = "bridge"
    # pids, file size, open files, tmpfs sizes and the gVisor runtime name, as for
    # every evaluation; memory, CPU and network come from the sandbox.
    base_limits: SandboxLimits


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field, "reason": message})


def _size(value: str | int | None, field: str, default: int, minimum: int, maximum: int, setting: str) -> int:
    if value is None:
        return default
    size = parse_size(value)
    if size is None:
        raise _invalid(field, f'{field}: {value!r} is not a size; write it like "512M" or "1G"')
    if size < minimum:
        raise _invalid(field, f"{field}: {format_size(size)} is below the minimum of {format_size(minimum)}")
    if size > maximum:
        raise _invalid(
            field,
            f"{field}: {format_size(size)} is more than this appliance allows "
            f"({format_size(maximum)}, setting {setting})",
        )
    return size


def resolve_resources(
    given: ResourcesInput | None, current: SandboxResources | None, policy: SandboxPolicy
) -> SandboxResources:
    """The resources a create (current=None) or an update asks for; what the request
    leaves out stays as it is (or takes the default)."""
    given = given or ResourcesInput()
    memory = _size(
        given.memory_limit,
        "resources.memory_limit",
        current.memory_limit if current else policy.default_memory,
        MIN_MEMORY_BYTES,
        policy.max_memory,
        "sandbox_max_memory_mb",
    )
    disk = _size(
        given.disk_limit,
        "resources.disk_limit",
        current.disk_limit if current else policy.default_disk,
        0,
        policy.max_disk,
        "sandbox_max_disk_mb",
    )
    cpu = given.cpu_limit if given.cpu_limit is not None else (current.cpu_limit if current else policy.default_cpu)
    cores = os.cpu_count() or 1
    if not MIN_CPU <= cpu <= cores:
        raise _invalid(
            "resources.cpu_limit",
            f"resources.cpu_limit: {cpu} is outside {MIN_CPU} to {cores} (the cores of this machine)",
        )
    return SandboxResources(memory_limit=memory, cpu_limit=round(float(cpu), 3), disk_limit=disk)


def check_name(name: str | None, fallback: str) -> str:
    if name is None:
        return fallback
    problem = name_problem(name)
    if problem:
        raise _invalid("name", problem)
    return name.strip()


def canonical_runtime(runtime: str, field: str = "runtime") -> str:
    language = find_language(runtime)
    if language is None:
        raise _invalid(
            field, f"{field}: unknown runtime {runtime[:40]!r}; choose one of {', '.join(supported_names())}"
        )
    return language.name


def choose_engine(requested: str | None, policy: SandboxPolicy) -> str:
    if requested is None:
        return "gvisor" if policy.require_gvisor or "docker" not in policy.engines else "docker"
    if requested == "docker" and policy.require_gvisor:
        raise _invalid(
            "engine",
            'engine: gVisor is mandatory on this appliance (require_gvisor); leave engine out or ask for "gvisor"',
        )
    if requested not in policy.engines:
        raise _invalid(
            "engine", f"engine: {requested[:40]!r} is not enabled here; choose one of {', '.join(policy.engines)}"
        )
    return requested


class NetworkChoice(msgspec.Struct, frozen=True, kw_only=True):
    """A checked `network`: `allowed_hosts` canonical (core/allowed_hosts.py)."""

    enabled: bool
    allowed_hosts: list[str]

    @property
    def filters_egress(self) -> bool:
        return self.enabled and bool(self.allowed_hosts)


def check_network(network: NetworkInput, engine: str, policy: SandboxPolicy) -> NetworkChoice:
    """Off: no network at all, the list only kept. On with no list: Docker's bridge. On
    with a list: only those hosts, through the sandbox's egress proxy (runc only)."""
    problem = hosts_problem(network.allowed_hosts)
    if problem:
        raise _invalid(FIELD, problem)
    choice = NetworkChoice(enabled=network.enabled, allowed_hosts=canonical_hosts(network.allowed_hosts))
    if network.enabled and not policy.allow_network:
        raise _invalid(
            "network.enabled",
            "network.enabled: sandboxes get no network on this appliance (setting sandbox_allow_network is off)",
        )
    if choice.filters_egress and engine == "gvisor":
        raise _invalid(
            FIELD,
            f'{FIELD}: egress through the allow-listing proxy needs engine "docker"; under gVisor a '
            'sandbox never has a network (runsc runs with --network=none). Use engine "docker", or '
            "network.enabled false (the list is then only kept)",
        )
    if network.enabled and engine == "gvisor":
        raise _invalid(
            "network.enabled",
            "network.enabled: sandboxes under gVisor never have a network "
            'here (runsc runs with --network=none); use engine "docker" '
            "or leave the network off",
        )
    return choice


def engine_unavailable(problem: str) -> Unavailable:
    return Unavailable(f"sandboxes cannot be created now: {problem}")
