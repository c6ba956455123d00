"""A persistent sandbox's only way out when it has `network.allowed_hosts`.

Per sandbox, two things besides its container:

* an internal Docker network (`internal=True`: no route out; `inhibit_ipv4`: the host
  has no address on its bridge, so the host's own services are out of reach too), named
  `appliance-<sandbox id>-egress`; the sandbox's container is attached to it alone, with
  no resolver but the engine's for the names on that network (`dns` 127.0.0.1 inside
  the container, where nothing answers, so no query leaves), and the proxy variables
  (`HTTP_PROXY`, `HTTPS_PROXY` and their lower-case forms = http://proxy:3128);
* the proxy, `appliance-<sandbox id>-proxy`: python3 of the python runtime image running
  `egress_proxy` (shipped as text with core/allowed_hosts.py, which decides), attached
  to that network under the alias `proxy` and to the egress network (setting
  `sandbox_egress_network`, Docker's `bridge` by default). Locked down like a sandbox:
  user 65534, no capabilities, no-new-privileges, read-only root, memory, pids and CPU
  limits, IP forwarding off. Its allow-list is in its environment and in a label, so
  `prepare` can tell when it must be remade.

Both carry `egress_labels` (not the sandbox's), so the reconciler finds them, and
removes those whose sandbox is gone or no longer filters. All functions block; the
services run them on the engine's threads.
"""

from __future__ import annotations

import json
import logging

import docker.errors
import docker.types
import msgspec

from appliance.runtime import egress_proxy
from appliance.runtime.container_setup import EGRESS_LABEL, EGRESS_SANDBOX_LABEL, egress_labels
from appliance.runtime.engine import DockerEngine
from appliance.runtime.images import image_ref
from appliance.runtime.limits import SANDBOX_USER
from appliance.runtime.shipped_programs import EGRESS_PROXY_MODULES, program

log = logging.getLogger(__name__)

PROXY_IMAGE = image_ref("python")
PROXY_ALIAS = "proxy"
PROXY_URL = f"http://{PROXY_ALIAS}:{egress_proxy.PORT}"
PROXY_MEMORY_BYTES = 128 * 1024 * 1024  # room for MAX_CLIENTS tunnels with full buffers
PROXY_PIDS = 32
PROXY_CPUS = 0.5
HOSTS_LABEL = "appliance.egress.hosts"  # the proxy's allow-list, as JSON
UPLINK_LABEL = "appliance.egress.uplink"  # the egress network the proxy was attached to
# The resolver the sandbox's container is given: its own loopback, where nothing
# listens. The engine's embedded resolver still answers for the names on the internal
# network ("proxy") and forwards nothing else anywhere.
NO_RESOLVER = "127.0.0.1"

PROXY_PROGRAM = program(EGRESS_PROXY_MODULES)


class EgressSpec(msgspec.Struct, frozen=True, kw_only=True):
    sandbox_id: str
    allowed_hosts: tuple[str, ...]  # canonical entries (core/allowed_hosts.py)
    uplink: str  # the egress network: setting sandbox_egress_network


class EgressPart(msgspec.Struct, frozen=True):
    """A proxy container or an internal network of this installation."""

    kind: str  # "proxy" or "network"
    ident: str  # the container's or the network's id
    sandbox_id: str
    state: str = ""  # the proxy's (running, exited, ...)


def network_name(sandbox_id: str) -> str:
    return f"appliance-{sandbox_id}-egress"


def proxy_name(sandbox_id: str) -> str:
    return f"appliance-{sandbox_id}-proxy"


def sandbox_environment() -> dict[str, str]:
    """What the sandbox's programs find: every common client honours one of these."""
    return {
        "HTTP_PROXY": PROXY_URL,
        "HTTPS_PROXY": PROXY_URL,
        "http_proxy": PROXY_URL,
        "https_proxy": PROXY_URL,
        "NO_PROXY": "",
        "no_proxy": "",
    }


def network_exists(engine: DockerEngine, name: str) -> bool:
    try:
        engine.api.inspect_network(name)
        return True
    except docker.errors.NotFound:
        return False


def prepare(engine: DockerEngine, spec: EgressSpec) -> bool:
    """Make sure the sandbox's internal network exists and its proxy runs with `spec`'s
    allow-list (remade if it differs, started if stopped). True when the network had to
    be made: a container attached to an earlier one must be remade too."""
    fresh = _ensure_network(engine, spec.sandbox_id)
    _ensure_proxy(engine, spec, fresh)
    return fresh


def _ensure_network(engine: DockerEngine, sandbox_id: str) -> bool:
    name = network_name(sandbox_id)
    if network_exists(engine, name):
        return False
    engine.api.create_network(
        name,
        driver="bridge",
        internal=True,
        options={"com.docker.network.bridge.inhibit_ipv4": "true"},
        labels=egress_labels(engine.instance_id, sandbox_id),
        check_duplicate=True,
    )
    return True


def _ensure_proxy(engine: DockerEngine, spec: EgressSpec, fresh_network: bool) -> None:
    api = engine.api
    try:
        info = api.inspect_container(proxy_name(spec.sandbox_id))
    except docker.errors.NotFound:
        info = None
    if info is not None:
        labels = info["Config"].get("Labels") or {}
        current = (
            not fresh_network
            and labels.get(HOSTS_LABEL) == json.dumps(list(spec.allowed_hosts))
            and labels.get(UPLINK_LABEL) == spec.uplink
            and info["Config"].get("Image") == PROXY_IMAGE
        )
        if current and info["State"]["Status"] == "running":
            return
        if current:
            try:
                if info["State"]["Status"] == "paused":
                    api.unpause(info["Id"])
                else:
                    api.start(info["Id"])
                return
            except docker.errors.APIError as exc:
                log.info("egress proxy of %s would not start (%s); making a new one", spec.sandbox_id, exc)
        engine.remove(info["Id"])
    _create_proxy(engine, spec)


def _create_proxy(engine: DockerEngine, spec: EgressSpec) -> str:
    api = engine.api
    internal = network_name(spec.sandbox_id)
    hosts = json.dumps(list(spec.allowed_hosts))
    host_config = api.create_host_config(
        network_mode=internal,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=1m"},
        mem_limit=PROXY_MEMORY_BYTES,
        memswap_limit=PROXY_MEMORY_BYTES,
        pids_limit=PROXY_PIDS,
        nano_cpus=int(PROXY_CPUS * 1e9),
        cpu_shares=512,
        ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)],
        # It must not route between its two networks: only its own connections cross.
        sysctls={"net.ipv4.ip_forward": "0"},
        init=True,
        ipc_mode="private",
        # Its log says what was allowed and refused (`docker logs`), kept small.
        log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
    )
    networking = api.create_networking_config({internal: api.create_endpoint_config(aliases=[PROXY_ALIAS])})
    labels = {**egress_labels(engine.instance_id, spec.sandbox_id), HOSTS_LABEL: hosts, UPLINK_LABEL: spec.uplink}
    container_id: str = api.create_container(
        PROXY_IMAGE,
        command=["python3", "-I", "-c", PROXY_PROGRAM],
        user=SANDBOX_USER,
        environment={egress_proxy.ALLOWED_ENV: hosts, "LANG": "C.UTF-8"},
        labels=labels,
        host_config=host_config,
        networking_config=networking,
        name=proxy_name(spec.sandbox_id),
    )["Id"]
    try:
        api.connect_container_to_network(container_id, spec.uplink)
        api.start(container_id)
    except BaseException:
        engine.remove(container_id)
        raise
    return container_id


def remove(engine: DockerEngine, sandbox_id: str) -> None:
    """The proxy and the network of a sandbox (the sandbox's container must be gone
    first: a network with a container on it stays, and the reconciler retries)."""
    engine.remove(proxy_name(sandbox_id))
    remove_network(engine, network_name(sandbox_id))


def remove_network(engine: DockerEngine, name_or_id: str) -> None:
    try:
        engine.api.remove_network(name_or_id)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        log.warning("could not remove network %s: %s", name_or_id[:40], exc)


def list_parts(engine: DockerEngine) -> list[EgressPart]:
    """This installation's proxies and internal networks."""
    label = {"label": f"{EGRESS_LABEL}={engine.instance_id}"}
    parts = [
        EgressPart("proxy", item["Id"], (item.get("Labels") or {}).get(EGRESS_SANDBOX_LABEL, ""), item.get("State", ""))
        for item in engine.api.containers(all=True, filters=label)
    ]
    parts += [
        EgressPart("network", item["Id"], (item.get("Labels") or {}).get(EGRESS_SANDBOX_LABEL, ""))
        for item in engine.api.networks(filters=label)
    ]
    return parts
