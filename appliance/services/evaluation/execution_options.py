"""What POST /api/execute and /ws/execute accept beyond an evaluation's fields, checked
before anything is stored, and how an execution becomes a sandbox request.

- `memory_limit` ("256M", "1G", bytes as a number): at least `MIN_MEMORY_MB`, at most
  the setting `execute_max_memory_mb`; whole MiB (rounded down).
- `cpu_limit` (fraction of a core): at least 0.01 (Docker's smallest), at most the
  host's cores.
- `environment`: the rules of core/environment.py (shared with persistent sandboxes).
  The values reach the program only, never the database.
- `network_access`: a network (Docker's bridge) for this run; refused when the
  setting `execute_allow_network` is off, and under gVisor, which this appliance runs
  with `--network=none`.
"""

from __future__ import annotations

import math
import os
import re

import msgspec

from appliance.core.errors import ValidationError
from appliance.core.evaluations import KIND_EXECUTION, CreatedFile, Evaluation
from appliance.core.languages import LANGUAGES, WORK_DIR
from appliance.core.sizes import format_size, parse_size
from appliance.runtime.executor import ExecutionRequest
from appliance.runtime.images import IMAGE_RECIPES
from appliance.runtime.sandbox import SandboxSpec

MIN_MEMORY_MB = 32
MIN_CPUS = 0.01


class FileIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    content: str


class ExecuteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/execute's body (and a /ws/execute `execute` message without `type`)."""

    language: str | None = None
    code: str | None = None
    timeout: float | None = None
    memory_limit: str | int | None = None
    cpu_limit: float | None = None
    files: list[FileIn] | None = None
    environment: dict[str, str] | None = None
    network_access: bool = False
    # As in POST /api/eval: "docker" or "gvisor"; None: the appliance's default.
    engine: str | None = None


class ExecuteLimits(msgspec.Struct, frozen=True, kw_only=True):
    default_memory_mb: int
    max_memory_mb: int
    default_cpus: float
    max_cpus: float = float(os.cpu_count() or 1)
    allow_network: bool = True
    require_gvisor: bool = False


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field, "reason": message})


def memory_limit_mb(value: str | int | None, limits: ExecuteLimits) -> int | None:
    if value is None:
        return None
    size = parse_size(value)
    if size is None:
        raise invalid(
            "memory_limit", f'memory_limit {value!r} is not a size: write a number with K, M or G, like "256M" or "1G"'
        )
    megabytes = size // (1024 * 1024)
    if megabytes < MIN_MEMORY_MB:
        raise invalid(
            "memory_limit", f"memory_limit {value!r} is below the smallest a sandbox runs with ({MIN_MEMORY_MB}M)"
        )
    if megabytes > limits.max_memory_mb:
        raise invalid(
            "memory_limit",
            f"memory_limit {value!r} is above this appliance's maximum of "
            f"{format_size(limits.max_memory_mb * 1024 * 1024)} "
            "(setting execute_max_memory_mb)",
        )
    return megabytes


def cpu_limit(value: float | None, limits: ExecuteLimits) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < MIN_CPUS or value > limits.max_cpus:
        raise invalid(
            "cpu_limit",
            f"cpu_limit must be a fraction of a core from {MIN_CPUS:g} to "
            f"{limits.max_cpus:g} (the host's cores), like 0.5",
        )
    return round(float(value), 3)


def files_by_name(files: list[FileIn] | None) -> dict[str, str]:
    """The request's [{name, content}] as the evaluation's name -> text (checked there)."""
    by_name: dict[str, str] = {}
    for item in files or []:
        if item.name in by_name:
            raise invalid("files", f"files: {item.name!r} is given twice")
        by_name[item.name] = item.content
    return by_name


def network_access(wanted: bool, engine: str, limits: ExecuteLimits) -> bool:
    if not wanted:
        return False
    if not limits.allow_network:
        raise invalid(
            "network_access", "network_access is turned off on this appliance (setting execute_allow_network)"
        )
    if engine == "gvisor" and limits.require_gvisor:
        raise invalid(
            "network_access",
            "network_access is not available here: gVisor is mandatory on this "
            "appliance (setting require_gvisor) and runs with --network=none",
        )
    if engine == "gvisor":
        raise invalid(
            "network_access",
            'network_access is not available under engine "gvisor": this '
            'appliance runs gVisor with --network=none; use engine "docker"',
        )
    return True


def execution_request(evaluation: Evaluation, environment: dict[str, str], default: SandboxSpec) -> ExecutionRequest:
    """The sandbox request for a row of the queue. An execution with the default limits
    runs in a container of the default warm lane; with memory or CPU of its own it
    borrows one and updates its limits (runc; see runtime/executor.py); with a network or
    under gVisor it gets a container made for it, so no lane per combination is kept."""
    if evaluation.kind != KIND_EXECUTION:
        return ExecutionRequest(spec=default, code=evaluation.code, timeout=evaluation.timeout, files=evaluation.files)
    limits = msgspec.structs.replace(
        default.limits,
        memory_mb=evaluation.memory_limit_mb or default.limits.memory_mb,
        cpus=evaluation.cpu_limit or default.limits.cpus,
        network=evaluation.network_access,
    )
    spec = msgspec.structs.replace(default, limits=limits)
    borrow = spec != default and default.engine == "docker" and not limits.network
    return ExecutionRequest(
        spec=spec,
        code=evaluation.code,
        timeout=evaluation.timeout,
        files=evaluation.files,
        environment=environment,
        list_files=True,
        borrow_from=default if borrow else None,
    )


_OUTPUT_FLAG = re.compile(r"(?:^|\s)-o\s+(\S+)")


def made_by_toolchain(language_name: str) -> tuple[set[str], tuple[str, ...]]:
    """What the language's build leaves in the work dir, not the program: the `-o` output
    of its run line, and the folders its image points tools at (go's build cache)."""
    language = LANGUAGES.get(language_name)
    if language is None:
        return set(), ()
    outputs = set(_OUTPUT_FLAG.findall(language.run))
    recipe = IMAGE_RECIPES.get(language.image)
    folders = tuple(
        value[len(WORK_DIR) + 1 :].rstrip("/") + "/"
        for _, value in getattr(recipe, "environment", ())
        if value.startswith(WORK_DIR + "/") and value.rstrip("/") != WORK_DIR
    )
    return outputs, folders


def files_created(evaluation: Evaluation) -> list[CreatedFile]:
    """Files the program left in the work dir: the runner's listing without the source
    file, the input files it was given, and what the toolchain made."""
    language = LANGUAGES.get(evaluation.language)
    given = set(evaluation.files) | ({language.source_file} if language else set())
    outputs, folders = made_by_toolchain(evaluation.language)
    return [
        f
        for f in evaluation.files_created
        if f.name not in given and f.name not in outputs and not f.name.startswith(folders)
    ]
