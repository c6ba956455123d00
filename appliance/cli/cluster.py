"""`appliance node`: offer this machine's sandboxes to a Ray cluster (docs/cluster.md).

Ray is imported only when one of these commands runs (the `cluster` extra).
"""

from __future__ import annotations

import argparse
import sys

from appliance.cli.common import settings_from_args


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    node = sub.add_parser("node", help="cluster mode: offer, drain or list the nodes that run sandboxes")
    actions = node.add_subparsers(dest="node_command", required=True)
    start = actions.add_parser("start", parents=[common], help="register this machine's node actor")
    _cluster_flag(start)
    start.add_argument("--name", required=True, help="the node's name (one per machine)")
    start.add_argument(
        "--slots",
        default="docker=2",
        help="sandboxes at once per engine, e.g. docker=4,gvisor=2 (an engine this Docker cannot run is left out)",
    )
    start.add_argument(
        "--docker-host", help="the Docker engine of this node (default: docker_host or the local socket)"
    )
    start.add_argument("--ray-node-id", default="", help="pin to this Ray node instead of the local one")
    start.set_defaults(func=cmd_start)
    drain = actions.add_parser("drain", help="place nothing new on a node (before maintenance)")
    _cluster_flag(drain)
    drain.add_argument("name")
    drain.add_argument("--remove", action="store_true", help="and end its actor once its runs ended")
    drain.set_defaults(func=cmd_drain)
    listing = actions.add_parser("list", help="the nodes, their slots, and versions that differ from here")
    _cluster_flag(listing)
    listing.set_defaults(func=cmd_list)


def _cluster_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", required=True, metavar="HOST:PORT", help="the Ray cluster's GCS address")
    parser.add_argument("--node-ip", default="", help="the address Ray binds this process to")


def require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise SystemExit("appliance: cluster mode needs Ray: install the `cluster` extra (docs/cluster.md)")


def parse_slots(text: str) -> dict[str, int]:
    slots: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        engine, _, count = part.partition("=")
        if engine not in ("docker", "gvisor") or not count.isdigit():
            raise SystemExit(f"appliance: --slots: expected ENGINE=COUNT (docker or gvisor), got {part!r}")
        slots[engine] = int(count)
    return slots


def cmd_start(args: argparse.Namespace) -> int:
    require_ray()
    from appliance.services.cluster.registration import node_config, register

    config = node_config(settings_from_args(args), args.name, parse_slots(args.slots), args.docker_host or "")
    offer = register(args.cluster, config, node_ip=args.node_ip, ray_node_id=args.ray_node_id)
    slots = ", ".join(f"{engine}={count}" for engine, count in offer.slots.items()) or "none"
    print(f"node {offer.name}: slots {slots}; languages {', '.join(offer.languages) or 'none'}", flush=True)
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    require_ray()
    from appliance.services.cluster.registration import drain

    offer = drain(args.cluster, args.name, node_ip=args.node_ip, remove=args.remove)
    print(f"node {offer.name}: draining{' and removed' if args.remove else ''}", flush=True)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    require_ray()
    from appliance.services.cluster.registration import offers, version_problems

    found = offers(args.cluster, node_ip=args.node_ip)
    for offer in found:
        if isinstance(offer, str):
            print(f"{offer} (does not answer)")
        else:
            state = "draining" if offer.draining else "up"
            print(f"{offer.name}: {state}, slots {offer.slots}, languages {', '.join(offer.languages)}")
    problems = version_problems(found)
    for problem in problems:
        print(f"mismatch: {problem}", file=sys.stderr)
    return 1 if problems else 0
