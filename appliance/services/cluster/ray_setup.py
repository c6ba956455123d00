"""Joining a Ray cluster as a driver with the appliance's network and privacy rules.

Ray 2.60 turns a node address of `127.0.0.1` into the machine's interface address
unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, and binds its gRPC servers to every
interface unless the node address is exactly `127.0.0.1`: on loopback both are pinned
here. Usage statistics are always off. Token authentication (RAY_AUTH_MODE=token with
RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) is Ray's own and passes through the environment.
"""

from __future__ import annotations

import os

import ray

from appliance.core.cluster import RAY_NAMESPACE

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def driver_ip(address: str, node_ip: str) -> str | None:
    host = address.rsplit(":", 1)[0]
    if node_ip:
        return node_ip
    return "127.0.0.1" if host in LOOPBACK_NAMES else None


def join(address: str, node_ip: str = "") -> None:
    """Blocking: call it off the event loop."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ip = driver_ip(address, node_ip)
    if ip == "127.0.0.1":
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if ray.is_initialized():
        return
    ray.init(
        address=address,
        namespace=RAY_NAMESPACE,
        _node_ip_address=ip,
        log_to_driver=False,
        configure_logging=False,
    )
