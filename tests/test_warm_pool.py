"""The warm pool against the real engine: ready ahead, used once, grown, shrunk, refilled."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from appliance.core.languages import LANGUAGES
from appliance.runtime.container_setup import INSTANCE_LABEL
from appliance.runtime.engine import DockerEngine
from appliance.runtime.executor import ContainerExecutor, ExecutionRequest
from appliance.runtime.images import image_ref
from appliance.runtime.pool import PoolSettings, WarmPool
from appliance.runtime.sandbox import ExecutionHandle, SandboxSpec
from tests.support import HANG_SECONDS, eventually, eventually_async, run_eval

HOSTNAME = "import socket\nprint(socket.gethostname())"


def spec(language: str = "python") -> SandboxSpec:
    return SandboxSpec(image=image_ref(LANGUAGES[language].image), language=language)


def containers_of(docker_client, instance: str) -> list[dict]:
    return docker_client.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"})


@pytest.fixture
async def pool_parts(runtime_images, docker_client):
    instance = f"test-{uuid.uuid4().hex[:8]}"
    engine = DockerEngine()
    engine.instance_id = instance
    made: list[WarmPool] = []

    def make(**settings) -> tuple[WarmPool, ContainerExecutor]:
        pool = WarmPool(engine, PoolSettings(**settings))
        made.append(pool)
        pool.start()
        return pool, ContainerExecutor(engine, pool)

    yield make, instance
    for pool in made:
        await pool.close()
    engine.remove_instance_containers()
    engine.close()


def idle(pool: WarmPool, language: str = "python") -> int:
    return sum(size.idle for size in pool.sizes() if size.language == language)


async def run(executor: ContainerExecutor, code: str, language: str = "python", timeout: float = 10):
    request = ExecutionRequest(spec=spec(language), code=code, timeout=timeout)
    return await executor.run(request, ExecutionHandle(), lambda stream, text: None)


async def test_containers_are_ready_before_a_request_and_each_runs_once(pool_parts, docker_client):
    make, instance = pool_parts
    pool, executor = make(min_idle=2, max_idle=4)
    pool.warm(spec())
    await eventually_async(lambda: idle(pool) == 2, message=lambda: f"idle(pool) == 2 (sizes: {pool.sizes()})")
    ready = {c["Id"][:12] for c in containers_of(docker_client, instance)}
    assert all(c["State"] == "running" for c in containers_of(docker_client, instance))

    outcome = await run(executor, HOSTNAME)
    used = outcome.stdout.strip()
    assert outcome.exit_code == 0 and used in ready, "the request should take a container made ahead"
    second = (await run(executor, HOSTNAME)).stdout.strip()
    assert second != used, "a container is never reused"
    # Used containers are destroyed; the pool refills to its target in the background.
    await eventually_async(
        lambda: not any(c["Id"].startswith((used, second)) for c in containers_of(docker_client, instance))
    )
    await eventually_async(lambda: idle(pool) == 2, message=lambda: f"idle(pool) == 2 (sizes: {pool.sizes()})")


async def test_pool_grows_under_load_and_shrinks_when_idle(pool_parts):
    make, _ = pool_parts
    pool, executor = make(min_idle=1, max_idle=3, idle_seconds=2.0)
    pool.warm(spec())
    await eventually_async(lambda: idle(pool) == 1, message=lambda: f"idle(pool) == 1 (sizes: {pool.sizes()})")
    # A burst of four is an arrival rate of four per second: by Little's law the target
    # rises (core/pool_sizing.py), up to max_idle, while the burst is in the window.
    targets: list[int] = []

    async def watch() -> None:
        while True:
            targets.append(max(size.target for size in pool.sizes()))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(run(executor, "print(1)") for _ in range(4)))
    await asyncio.sleep(0.2)
    watcher.cancel()
    assert 1 < max(targets) <= 3, (targets, pool.sizes())
    # Nothing arrives for a while: the window empties and the target is the floor again.
    await eventually_async(
        lambda: idle(pool) == 1 and pool.sizes()[0].target == 1,
        message=lambda: f"back to 1 idle, target 1 (sizes: {pool.sizes()})",
    )


async def test_requests_still_run_when_the_pool_is_empty(pool_parts):
    make, _ = pool_parts
    pool, executor = make(min_idle=0, max_idle=0)
    outcome = await run(executor, "print('cold')")
    assert outcome.stdout == "cold\n" and idle(pool) == 0


async def test_refills_never_block_the_event_loop(pool_parts):
    """Four containers are made while the loop ticks on. A refill that blocked the loop
    would hold it for the whole engine round trip; the bound here only catches a loop
    held for good: how long the loop stalls during refills, beside the same loop with
    no refill, is measured by bench/warm_pool.py."""
    make, _ = pool_parts
    pool, _ = make(min_idle=4, max_idle=4)
    started = time.monotonic()
    ticks = 0
    pool.warm(spec())
    while idle(pool) < 4:
        await asyncio.sleep(0.01)
        ticks += 1
        assert time.monotonic() - started < HANG_SECONDS, f"the pool did not fill; idle {idle(pool)}"
    assert ticks > 4, f"the loop ticked {ticks} times while four containers were made"


async def test_pool_stops_growing_at_max_containers(pool_parts):
    make, _ = pool_parts
    pool, _ = make(min_idle=3, max_idle=3, max_containers=2)
    pool.warm(spec())
    await eventually_async(lambda: idle(pool) == 2, message=lambda: f"idle(pool) == 2 (sizes: {pool.sizes()})")
    await asyncio.sleep(1.5)
    assert idle(pool) == 2


async def test_every_language_runs_from_the_pool(pool_parts):
    make, _ = pool_parts
    pool, executor = make(min_idle=1)
    programs = {
        "python": "print('py')",
        "javascript": "console.log('js')",
        "bash": "echo sh",
        "c": '#include <stdio.h>\nint main(void){puts("c");return 0;}',
        "cpp": '#include <iostream>\nint main(){std::cout<<"cpp"<<std::endl;}',
    }
    for language in programs:
        pool.warm(spec(language))
    await eventually_async(
        lambda: all(idle(pool, language) for language in programs),
        message=lambda: f"one idle per language (sizes: {pool.sizes()})",
    )
    outcomes = await asyncio.gather(*(run(executor, code, language) for language, code in programs.items()))
    assert [o.stdout for o in outcomes] == ["py\n", "js\n", "sh\n", "c\n", "cpp\n"]


def test_status_shows_the_pool_and_api_runs_use_fresh_containers(server, docker_client):
    with server.admin() as client:
        lanes = client.get("/api/status").json()["sandbox_pool"]
        assert {(lane["language"], lane["engine"]) for lane in lanes} >= {("python", "docker"), ("c", "docker")}
        hosts = [run_eval(client, HOSTNAME)["output"].strip() for _ in range(3)]
    assert len(set(hosts)) == 3
    eventually(
        lambda: not any(c["Id"].startswith(tuple(hosts)) for c in docker_client.api.containers(all=True)),
        message="used containers removed",
    )
