"""Placement of cluster mode (services/cluster/placement.py): which node takes the next
sandbox. Pure bookkeeping, no Ray: it runs in every suite."""

from __future__ import annotations

import asyncio

import pytest

from appliance.core.cluster import NodeOffer
from appliance.services.cluster.placement import NoNodeFor, Placement


def offer(name: str, slots: dict[str, int], languages: tuple[str, ...] = ("python",), **kw: bool) -> NodeOffer:
    return NodeOffer(name=name, ray_node_id=name, slots=slots, languages=list(languages), **kw)


async def test_the_node_with_most_free_slots_takes_the_next_run() -> None:
    placement: Placement[str] = Placement()
    await placement.join(offer("a", {"docker": 2}), "actor-a")
    await placement.join(offer("b", {"docker": 4}), "actor-b")
    taken = [(await placement.acquire("python", "docker")).name for _ in range(6)]
    assert sorted(taken) == ["a", "a", "b", "b", "b", "b"]
    assert {n.name: n.busy["docker"] for n in placement.nodes()} == {"a": 2, "b": 4}


async def test_gvisor_goes_only_to_a_node_that_offers_it() -> None:
    placement: Placement[str] = Placement(unplaceable_seconds=0.2)
    await placement.join(offer("runc-only", {"docker": 8}), "a")
    with pytest.raises(NoNodeFor):
        await placement.acquire("python", "gvisor")
    await placement.join(offer("sandboxed", {"docker": 1, "gvisor": 1}), "b")
    assert (await placement.acquire("python", "gvisor")).name == "sandboxed"
    with pytest.raises(NoNodeFor):
        await placement.acquire("rust", "docker")  # no node holds its image


async def test_a_full_cluster_makes_the_request_wait_for_a_slot() -> None:
    placement: Placement[str] = Placement(unplaceable_seconds=0.2)
    await placement.join(offer("a", {"docker": 1}), "actor")
    first = await placement.acquire("python", "docker")
    waiting = asyncio.ensure_future(placement.acquire("python", "docker"))
    await asyncio.sleep(0.4)  # longer than unplaceable_seconds: full is not unplaceable
    assert not waiting.done()
    await placement.release(first, "docker", completed=True)
    assert (await asyncio.wait_for(waiting, 1)).name == "a"
    assert first.completed == 1


async def test_lost_and_draining_nodes_get_nothing_and_a_node_rejoins() -> None:
    placement: Placement[str] = Placement(unplaceable_seconds=0.2)
    await placement.join(offer("a", {"docker": 2}), "actor-1")
    await placement.join(offer("b", {"docker": 2}), "actor-b")
    assert await placement.lose("a", "actor-1")
    assert not await placement.lose("a", "actor-1")  # told once
    await placement.join(offer("b", {"docker": 2}, draining=True), "actor-b")
    with pytest.raises(NoNodeFor):
        await placement.acquire("python", "docker")
    assert {n.name: n.state for n in placement.loads()} == {"a": "lost", "b": "draining"}
    await placement.join(offer("a", {"docker": 2}), "actor-2")  # `appliance node start` again
    assert (await placement.acquire("python", "docker")).name == "a"
    assert placement.lost_names == set()
    # the old actor failing late does not take the new one down
    assert not await placement.lose("a", "actor-1")


async def test_a_run_avoids_the_node_it_was_lost_on_while_another_serves() -> None:
    placement: Placement[str] = Placement()
    await placement.join(offer("a", {"docker": 4}), "actor-a")
    await placement.join(offer("b", {"docker": 1}), "actor-b")
    assert (await placement.acquire("python", "docker", avoid=frozenset({"a"}))).name == "b"
