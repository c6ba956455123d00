"""The container of a persistent sandbox: long-running, locked down, files kept outside.

Unlike the warm pool's one-execution containers, this one lives until the sandbox is
deleted. It runs under the same profile (`container_options`: no capabilities,
no-new-privileges, read-only root, tmpfs /work and /tmp, memory, CPU and pids limits,
user 65534), with Docker's init (tini) as PID 1 reaping whatever is left behind, and
`sleep infinity` as its only program. The sandbox's files directory on the host is
bind-mounted at /sandbox, so the files outlive the container: it can be recreated (a new
environment, new limits under gVisor, a restore) or restarted without losing them.

With `internal_network` set (a sandbox with `network.allowed_hosts`, runtime/egress.py)
it is attached to that network alone, with the proxy variables in its environment and
no resolver of its own.

Its labels differ from the warm pool's instance label (see `container_setup`), so the
appliance's start-up cleanup leaves it alone; `list_containers` finds it again. New
memory and CPU limits reach a running container through `DockerEngine.update_resources`
(runc only; under gVisor the services recreate it).
All functions block; the services run them on the engine's threads.
"""

from __future__ import annotations

import logging

import docker.errors
import msgspec

from appliance.core.sandboxes import SANDBOX_ROOT
from appliance.runtime import egress
from appliance.runtime.container_setup import PERSISTENT_LABEL, SANDBOX_LABEL, container_environment, persistent_labels
from appliance.runtime.engine import DockerEngine
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options

log = logging.getLogger(__name__)

COMMAND = ["sleep", "infinity"]


class PersistentSpec(msgspec.Struct, frozen=True, kw_only=True):
    sandbox_id: str
    image: str
    engine: str  # docker or gvisor
    limits: SandboxLimits
    environment: dict[str, str]
    files_dir: str  # host path, bind-mounted at /sandbox
    # Its egress network (egress.network_name), when it reaches out only through the proxy.
    internal_network: str | None = None


class ContainerInfo(msgspec.Struct, frozen=True):
    container_id: str
    sandbox_id: str
    state: str  # running, paused, exited, created, restarting, dead, removing


def container_name(sandbox_id: str) -> str:
    return f"appliance-{sandbox_id}"


def create(engine: DockerEngine, spec: PersistentSpec) -> str:
    """Create and start the container; returns its id. A leftover container of the same
    name (a crash mid-recreate) is removed first."""
    api = engine.api
    options = container_options(spec.limits, engine=spec.engine)
    options["init"] = True
    options["binds"] = {spec.files_dir: {"bind": SANDBOX_ROOT, "mode": "rw"}}
    variables = spec.environment
    if spec.internal_network:
        options["network_mode"] = spec.internal_network
        options["dns"] = [egress.NO_RESOLVER]
        # A lookup of any other name then fails in a second rather than ten.
        options["dns_opt"] = ["timeout:1", "attempts:1"]
        variables = {**variables, **egress.sandbox_environment()}
    host_config = api.create_host_config(**options)
    # The image's own ENV (PATH for go and java, ...) applies beneath these.
    environment = container_environment(SANDBOX_ROOT, variables, path=None)
    labels = persistent_labels(engine.instance_id, spec.sandbox_id)
    kwargs = dict(
        command=COMMAND,
        user=SANDBOX_USER,
        working_dir=SANDBOX_ROOT,
        environment=environment,
        labels=labels,
        host_config=host_config,
        network_disabled=not (spec.limits.network or spec.internal_network),
        name=container_name(spec.sandbox_id),
    )
    try:
        container_id = api.create_container(spec.image, **kwargs)["Id"]
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: the name is taken
            raise
        engine.remove(container_name(spec.sandbox_id))
        container_id = api.create_container(spec.image, **kwargs)["Id"]
    try:
        api.start(container_id)
    except BaseException:
        engine.remove(container_id)
        raise
    return container_id


def state(engine: DockerEngine, container_id: str) -> str | None:
    """The container's state (running, paused, exited, ...), or None when it is gone."""
    try:
        return engine.api.inspect_container(container_id)["State"]["Status"]
    except docker.errors.NotFound:
        return None


def list_containers(engine: DockerEngine) -> list[ContainerInfo]:
    """This installation's persistent sandbox containers."""
    items = engine.api.containers(all=True, filters={"label": f"{PERSISTENT_LABEL}={engine.instance_id}"})
    return [
        ContainerInfo(item["Id"], (item.get("Labels") or {}).get(SANDBOX_LABEL, ""), item.get("State", ""))
        for item in items
    ]


def start(engine: DockerEngine, container_id: str) -> None:
    engine.api.start(container_id)


def pause(engine: DockerEngine, container_id: str) -> bool:
    """Freeze every process (cgroup freezer), so an archive of the files is consistent.
    False when it could not be paused (not running); the caller goes on without."""
    try:
        engine.api.pause(container_id)
        return True
    except docker.errors.APIError as exc:
        log.info("could not pause sandbox container %s: %s", container_id[:12], exc)
        return False


def unpause(engine: DockerEngine, container_id: str) -> None:
    try:
        engine.api.unpause(container_id)
    except docker.errors.APIError as exc:
        if "not paused" not in str(exc):
            raise
