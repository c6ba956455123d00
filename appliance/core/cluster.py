"""What the head knows of the machines that run sandboxes for it in cluster mode.

Plain data: the Ray side (services/cluster/) fills it in, /api/status, /api/metrics and
the alerts read it. Nothing here imports Ray, so a single machine never loads it.
"""

from __future__ import annotations

import msgspec

# The Ray namespace every appliance actor lives in, and the prefix of a node actor's name.
RAY_NAMESPACE = "appliance"
NODE_ACTOR_PREFIX = "appliance-node:"
# The head's mailbox for runs users' Ray jobs made on the nodes directly (appliance.cluster).
RECORDER_ACTOR = "appliance-recorder"


class NodeOffer(msgspec.Struct, frozen=True, kw_only=True):
    """What one node actor offers: announced when it starts, read again by the head."""

    name: str
    ray_node_id: str
    # engine -> how many sandboxes of that engine may run at once
    slots: dict[str, int]
    # languages whose runtime image the node's Docker engine holds
    languages: list[str]
    memory_mb: int = 0
    draining: bool = False
    # engine -> runs holding a slot now, whoever asked (the head or a user's Ray job)
    busy: dict[str, int] = {}
    appliance_version: str = ""
    ray_version: str = ""
    python_version: str = ""

    def serves(self, language: str, engine: str) -> bool:
        return self.slots.get(engine, 0) > 0 and language in self.languages


class NodeLoad(msgspec.Struct, kw_only=True):
    """One node as /api/status shows it."""

    name: str
    state: str  # "up", "draining" or "lost"
    slots: dict[str, int]
    busy: dict[str, int]
    languages: list[str]
    completed: int = 0
    memory_mb: int = 0


class ClusterView(msgspec.Struct, kw_only=True):
    address: str
    nodes: list[NodeLoad]
    nodes_lost: int = 0
    # runs that went back in line after their node was lost
    requeued: int = 0


class OutputPiece(msgspec.Struct, frozen=True, array_like=True):
    """A piece of output a node streams back while a run is still going."""

    stream: str
    text: str
