"""Benchmark: the warm pool. Hello-world latency with the pool warm, and completed
executions per second under sustained overload, each beside its baseline measured in
the same run on the same engine:

- latency: `POST /api/eval` until the `completed` event on /ws, one at a time with the
  pool warm, against a plain `docker run --rm` of the same program;
- overload: far more submissions than workers, completed per second, against raw
  container create/start/wait/remove through the engine API (the same program, the same
  locked-down options), from as many threads as the appliance has workers;
- event-loop stall: the longest an asyncio loop waits past a 10 ms sleep while a warm
  pool (in this process) fills `--fill` containers, against the same loop with nothing
  to do for as long (tests/test_warm_pool.py only checks that the loop keeps going).

    .venv/bin/python bench/warm_pool.py [--samples 40] [--overload 200] [--workers 8] [--rounds 3]

Everything talks only to 127.0.0.1; every part is bounded in count and stops by itself.
Targets (issue 3): p50 <= 20 ms and >= 10x faster than docker run; overload >= 90% of raw.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.runtime.engine import DockerEngine  # noqa: E402
from appliance.runtime.images import image_ref  # noqa: E402
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options  # noqa: E402
from appliance.runtime.pool import PoolSettings, WarmPool  # noqa: E402
from appliance.runtime.sandbox import SandboxSpec  # noqa: E402
from bench.eval_latency import PROGRAM, Appliance, docker_run_once, percentile  # noqa: E402
from tests.support import start_server  # noqa: E402


async def wait_warm(client: httpx.AsyncClient, timeout: float = 10.0) -> None:
    """Until the python/docker pool lane has an idle container."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lanes = (await client.get("/api/status")).json().get("sandbox_pool", [])
        if any(lane["language"] == "python" and lane["engine"] == "docker" and lane["idle"] > 0 for lane in lanes):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the warm pool did not refill in 10 s")


async def measure_appliance(url: str, key: str, samples: int, overload: int, in_flight: int, rounds: int, threads: int):
    """Latency samples, then `rounds` overload runs of the appliance, each between two
    raw runs: the engine's speed drifts by up to a fifth within minutes here, so each
    appliance run is compared with the raw runs on either side of it."""
    appliance = Appliance(url, key)
    ready = asyncio.Event()
    listener = asyncio.create_task(appliance.listen(ready))
    await ready.wait()
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
        for _ in range(3):
            await wait_warm(client)
            await appliance.run_one(client)
        latencies = []
        for _ in range(samples):
            await wait_warm(client)
            await asyncio.sleep(0.05)
            latencies.append(await appliance.run_one(client))

        async def overload_rate() -> float:
            remaining = overload
            started = time.perf_counter()

            async def lane() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await appliance.run_one(client)

            await asyncio.gather(*(lane() for _ in range(in_flight)))
            return overload / (time.perf_counter() - started)

        raw = [await asyncio.to_thread(raw_container_rate, overload, threads)]
        rates = []
        for _ in range(rounds):
            await wait_warm(client)
            rates.append(await overload_rate())
            raw.append(await asyncio.to_thread(raw_container_rate, overload, threads))
    listener.cancel()
    return latencies, rates, raw


def raw_container_rate(count: int, threads: int) -> float:
    """Create, start, wait and remove: the engine's own cost of one fresh container."""
    client = docker.from_env(version="auto")
    api = client.api
    host_config = api.create_host_config(**container_options(SandboxLimits(), engine="docker"))
    image = image_ref("python")

    def once(_: int) -> None:
        created = api.create_container(
            image, command=["python3", "-c", PROGRAM], user=SANDBOX_USER, host_config=host_config, network_disabled=True
        )
        api.start(created["Id"])
        api.wait(created["Id"], timeout=60)
        api.remove_container(created["Id"], force=True)

    once(0)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(once, range(count)))
    return count / (time.perf_counter() - started)


async def loop_lags(seconds: float | None = None, until=None) -> tuple[list[float], float]:
    """How late each 10 ms sleep wakes, for `seconds` or until `until()`; and how long."""
    lags: list[float] = []
    started = time.perf_counter()
    while (seconds is not None and time.perf_counter() - started < seconds) or (until is not None and not until()):
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)
    return lags, time.perf_counter() - started


async def measure_loop_stall(fill: int) -> tuple[list[float], list[float]]:
    """Loop lags while a warm pool fills `fill` containers, then on the same loop idle
    for as long."""
    engine = DockerEngine()
    engine.instance_id = f"bench-stall-{uuid.uuid4().hex[:8]}"
    pool = WarmPool(engine, PoolSettings(min_idle=fill, max_idle=fill))
    try:
        pool.start()
        pool.warm(SandboxSpec(image=image_ref("python"), language="python"))
        filling, took = await loop_lags(until=lambda: sum(size.idle for size in pool.sizes()) >= fill)
        idle, _ = await loop_lags(seconds=took)
    finally:
        await pool.close()
        engine.remove_instance_containers()
        engine.close()
    return filling, idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--overload", type=int, default=300, help="executions in the overload run")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="overload rounds, each between two raw runs")
    parser.add_argument("--fill", type=int, default=4, help="containers the pool fills for the loop-stall measure")
    args = parser.parse_args()
    filling, quiet = asyncio.run(measure_loop_stall(args.fill))

    data_dir = Path(tempfile.mkdtemp(prefix="appliance-bench-"))
    server = start_server(
        data_dir,
        env={
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "0",
            "APPLIANCE_RATE_LIMIT_ANONYMOUS": "0",
            "APPLIANCE_WORKERS": str(args.workers),
        },
    )
    try:
        app_lat, app_rates, raw_rates = asyncio.run(
            measure_appliance(
                server.url,
                server.admin_key,
                args.samples,
                args.overload,
                in_flight=args.workers * 4,
                rounds=args.rounds,
                threads=args.workers,
            )
        )
    finally:
        server.stop()
    docker_run_once(image_ref("python"))
    base_lat = [docker_run_once(image_ref("python")) for _ in range(args.samples)]
    ratios = [rate / ((raw_rates[i] + raw_rates[i + 1]) / 2) for i, rate in enumerate(app_rates)]
    ratio = statistics.median(ratios)
    app_rate, raw_rate = statistics.median(app_rates), statistics.median(raw_rates)

    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    print(f"\nhello world, python; {args.samples} latency samples, {args.overload} executions under overload\n")
    print("| metric | appliance | baseline | ratio |")
    print("|---|---|---|---|")
    for name, q in (("latency p50 (warm pool vs docker run --rm)", 50), ("latency p99", 99)):
        a, b = percentile(app_lat, q), percentile(base_lat, q)
        print(f"| {name} | {ms(a)} | {ms(b)} | {b / a:.1f}x faster |")
    print(
        f"| latency mean | {ms(statistics.mean(app_lat))} | {ms(statistics.mean(base_lat))} | "
        f"{statistics.mean(base_lat) / statistics.mean(app_lat):.1f}x faster |"
    )
    print(
        f"| executions/s under overload, median of {len(app_rates)} rounds (vs raw create/start/wait/remove) "
        f"| {app_rate:.1f} | {raw_rate:.1f} | {ratio:.0%} |"
    )
    print(
        f"| event-loop stall while the pool fills {args.fill} containers, worst (vs the loop idle as long) "
        f"| {ms(max(filling))} | {ms(max(quiet))} | {max(filling) / max(max(quiet), 1e-6):.1f}x |"
    )
    print(
        f"| event-loop stall, p99 | {ms(percentile(filling, 99))} | {ms(percentile(quiet, 99))} "
        f"| {percentile(filling, 99) / max(percentile(quiet, 99), 1e-6):.1f}x |"
    )
    print(
        f"\noverload rounds, appliance: {', '.join(f'{r:.1f}' for r in app_rates)}; raw, around them: "
        f"{', '.join(f'{r:.1f}' for r in raw_rates)}; ratios: {', '.join(f'{r:.0%}' for r in ratios)}"
    )
    p50 = percentile(app_lat, 50)
    print(
        f"\ntargets: p50 <= 20 ms: {'met' if p50 <= 0.020 else 'NOT met'}; "
        f">= 10x docker run: {'met' if percentile(base_lat, 50) / p50 >= 10 else 'NOT met'}; "
        f"overload >= 90% of raw: {'met' if ratio >= 0.9 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
