"""The warm pool's sizing policy (core/pool_sizing.py) as pure functions, and the pool
sizing itself by it against the real engine."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from appliance.core.pool_sizing import ArrivalRate, idle_target, refills_yield, sustainable_rate
from tests.support import eventually_async
from tests.test_warm_pool import idle, pool_parts, run, spec  # noqa: F401 - pool_parts is a fixture


@pytest.mark.parametrize(
    "rate, refill, expected",
    [
        (0.0, 0.4, 1),  # nothing arrives: the floor
        (1.0, 0.4, 2),  # λW = 0.4 -> 0.4 + 0.63 -> 2
        (2.0, 0.5, 2),  # λW = 1 -> 1 + 1 = 2
        (4.0, 0.5, 4),  # λW = 2 -> 2 + 1.41 -> 4
        (10.0, 0.5, 8),  # λW = 5 -> 5 + 2.24 -> 8
        (100.0, 0.5, 10),  # capped by the ceiling
    ],
)
def test_idle_target_is_littles_law_with_a_margin_between_floor_and_ceiling(rate, refill, expected):
    assert idle_target(rate, refill, floor=1, ceiling=10) == expected


def test_idle_target_bounds():
    assert idle_target(0.0, 0.5, floor=0, ceiling=8) == 0
    assert idle_target(5.0, 0.5, floor=3, ceiling=2) == 2  # a ceiling below the floor wins
    assert idle_target(50.0, 0.5, floor=1, ceiling=32, memory_room=3) == 3  # free memory caps it
    assert idle_target(0.0, 0.5, floor=2, ceiling=8, memory_room=0) == 0  # not even the floor without memory
    assert idle_target(-1.0, -1.0, floor=1, ceiling=8) == 1  # nonsense in, the floor out


def test_sustainable_rate_and_when_refills_yield():
    assert sustainable_rate(2, 0.5) == 4.0
    assert sustainable_rate(0, 0.5) == 2.0  # at least one refill at a time
    assert math.isinf(sustainable_rate(2, 0.0))
    assert not refills_yield(3.9, 4.0)
    assert not refills_yield(4.0, 4.0)
    assert refills_yield(4.1, 4.0)


def test_arrival_rate_over_a_window():
    rate = ArrivalRate(window=10.0)
    assert rate.rate(100.0) == 0.0
    for i in range(20):  # 2 per second for 10 s
        rate.record(100.0 + i * 0.5)
    assert rate.rate(109.5) == pytest.approx(20 / 9.5)
    assert rate.rate(115.0) == pytest.approx(10 / 10)  # the first half forgotten, the rest over 10 s
    assert rate.rate(200.0) == 0.0  # all forgotten
    burst = ArrivalRate(window=10.0)
    for _ in range(5):
        burst.record(50.0)
    assert burst.rate(50.0) == 5.0  # a burst counts over at least a second


async def test_a_steady_stream_below_the_sustainable_rate_finds_idle_containers(pool_parts):  # noqa: F811
    make, _ = pool_parts
    # No floor: every idle container the stream finds is there because of its own rate.
    pool, executor = make(min_idle=0, max_idle=4, idle_seconds=3.0)
    pool.warm(spec())
    assert idle(pool) == 0
    await run(executor, "print(0)")  # the first one finds none: nothing arrived before it
    await eventually_async(lambda: idle(pool) >= 1, message=lambda: f"a refill (sizes: {pool.sizes()})")
    hits, misses = pool.hits, pool.misses
    for _ in range(6):  # one every 0.7 s: far below what refills sustain
        started = time.monotonic()
        outcome = await run(executor, "print(1)")
        assert outcome.exit_code == 0
        await asyncio.sleep(max(0.0, 0.7 - (time.monotonic() - started)))
    assert pool.misses == misses, f"{pool.misses - misses} of 6 found no idle container (sizes: {pool.sizes()})"
    assert pool.hits == hits + 6
    assert not pool.refills_yield()
    # The stream stops: once its arrivals leave the window the target is the floor again.
    await eventually_async(
        lambda: pool.sizes()[0].target == 0 and idle(pool) == 0, message=lambda: f"back to 0 ({pool.sizes()})"
    )
