"""What `appliance node` does: register this machine's node actor, drain one, list them.

Each runs as a short-lived Ray driver; the actor it creates is detached, so it outlives
the command and lives until its node dies, it is drained and removed, or `replace`.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import ray
import ray.exceptions
import ray.util
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from appliance import __version__
from appliance.config import Settings
from appliance.core.cluster import NODE_ACTOR_PREFIX, NodeOffer
from appliance.runtime.pool import PoolSettings
from appliance.services.cluster import ray_setup
from appliance.services.cluster.node import NodeConfig, SandboxNodeActor

START_TIMEOUT_SECONDS = 120.0


def register(address: str, config: NodeConfig, node_ip: str = "", ray_node_id: str = "") -> NodeOffer:
    """Start the node actor on this machine's Ray node (or `ray_node_id`) and wait until
    it offers its slots. A live actor of the same name is replaced: the name is the
    machine, and the newest registration is what it offers now."""
    ray_setup.join(address, node_ip)
    name = NODE_ACTOR_PREFIX + config.name
    try:
        old = ray.get_actor(name)
    except ValueError:
        old = None
    if old is not None:
        ray.kill(old, no_restart=True)
        _wait_name_free(name)
    node_id = ray_node_id or ray.get_runtime_context().get_node_id()
    actor: Any = SandboxNodeActor.options(
        name=name,
        lifetime="detached",
        num_cpus=0,
        max_concurrency=1000,
        max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(config)
    offer: Any = ray.get(actor.start.remote(), timeout=START_TIMEOUT_SECONDS)
    return _offer(offer)


def _offer(answer: object) -> NodeOffer:
    if not isinstance(answer, NodeOffer):
        raise TypeError(f"a node answered {type(answer).__name__}, not its offer")
    return answer


def node_config(settings: Settings, name: str, slots: dict[str, int], docker_host: str = "") -> NodeConfig:
    """A node's settings: its slots, and the warm pool and engine of its own config."""
    s = settings
    return NodeConfig(
        name=name,
        docker_host=docker_host or s.docker_host,
        slots=slots,
        gvisor_runtime=s.gvisor_runtime,
        pool=PoolSettings(
            min_idle=s.warm_pool_min_idle,
            max_idle=s.warm_pool_max_idle,
            max_containers=s.warm_pool_max_containers,
            idle_seconds=s.warm_pool_idle_seconds,
            memory_reserve_mb=s.warm_pool_memory_reserve_mb,
        ),
    )


def _wait_name_free(name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if name not in ray.util.list_named_actors():
            return
        time.sleep(0.2)


def drain(address: str, name: str, node_ip: str = "", remove: bool = False) -> NodeOffer:
    """Stop placing work on the node; with `remove`, also end its actor (after its runs
    ended) so it leaves the cluster."""
    ray_setup.join(address, node_ip)
    actor: Any = ray.get_actor(NODE_ACTOR_PREFIX + name)
    offer = _offer(ray.get(actor.drain.remote(), timeout=30))
    if remove:
        while ray.get(actor.running.remote(), timeout=30):
            time.sleep(0.5)
        ray.get(actor.close.remote(), timeout=60)
        ray.kill(actor, no_restart=True)
    return offer


def offers(address: str, node_ip: str = "") -> list[NodeOffer | str]:
    """Every node's offer, or why it did not answer."""
    ray_setup.join(address, node_ip)
    found: list[NodeOffer | str] = []
    for name in sorted(ray.util.list_named_actors()):
        if not name.startswith(NODE_ACTOR_PREFIX):
            continue
        try:
            actor: Any = ray.get_actor(name)
            found.append(_offer(ray.get(actor.offer.remote(), timeout=10)))
        except (ray.exceptions.RayError, ValueError) as exc:
            found.append(f"{name.removeprefix(NODE_ACTOR_PREFIX)}: {type(exc).__name__}")
    return found


def version_problems(found: list[NodeOffer | str]) -> list[str]:
    """What differs from this machine: Ray pickles across the cluster, so the versions of
    Python, Ray and the appliance must match everywhere."""
    here = {"appliance": __version__, "ray": ray.__version__, "python": platform.python_version()}
    problems = []
    for offer in found:
        if isinstance(offer, str):
            problems.append(f"node {offer}")
            continue
        there = {"appliance": offer.appliance_version, "ray": offer.ray_version, "python": offer.python_version}
        for what, version in there.items():
            if version != here[what]:
                problems.append(f"node {offer.name}: {what} {version}, here {here[what]}")
    return problems
