"""`appliance doctor` in cluster mode: the same Python, Ray and appliance on every node.

Ray pickles requests and outcomes between the head and the nodes, so a node whose
versions differ fails in ways far from the cause. The check asks every node actor for
its offer, as `appliance node list` does, and compares it with this machine. Only when
`cluster` is set; Ray is imported only then.
"""

from __future__ import annotations

import importlib.util
import platform

from appliance import __version__
from appliance.config import Settings
from appliance.core.cluster import NodeOffer
from appliance.services.operations.doctor_check import FAIL, OK, WARN, Check

NAME = "cluster versions"
SAME_VERSIONS_FIX = (
    "install the same Python, Ray and appliance on every machine (the `cluster` extra pins Ray; "
    "docs/cluster.md: from one machine to three), then `appliance node start` again there"
)


def check_cluster(settings: Settings) -> Check | None:
    """None when cluster mode is off: a single machine has no such check."""
    if not settings.cluster:
        return None
    if importlib.util.find_spec("ray") is None:
        return Check(
            NAME, FAIL, "cluster is set, but Ray is not installed", "pip install 'appliance[cluster]' (docs/cluster.md)"
        )
    import ray

    from appliance.services.cluster.registration import offers

    try:
        found = offers(settings.cluster, settings.cluster_node_ip)
    except Exception as exc:  # Ray's own errors: not reachable, wrong token, another version's GCS
        return Check(
            NAME,
            FAIL,
            f"cannot join the Ray cluster at {settings.cluster}: {type(exc).__name__}: {exc}".splitlines()[0],
            "is Ray running there (ray start), and RAY_AUTH_TOKEN(_PATH) the cluster's token?",
        )
    finally:
        ray.shutdown()
    return versions_check(found, ray.__version__)


def versions_check(found: list[NodeOffer | str], ray_version: str) -> Check:
    """What the nodes' offers say, compared with this machine (`found` as
    registration.offers returns it: an offer, or why a node did not answer)."""
    from appliance.services.cluster.registration import version_problems

    here = f"python {platform.python_version()}, ray {ray_version}, appliance {__version__}"
    if not found:
        return Check(
            NAME, WARN, "no node offers sandboxes yet", "on each machine: appliance node start --cluster HOST:PORT"
        )
    problems = version_problems(found)
    if problems:
        return Check(NAME, FAIL, "; ".join(problems), SAME_VERSIONS_FIX)
    return Check(NAME, OK, f"{len(found)} node(s), all as here: {here}")
