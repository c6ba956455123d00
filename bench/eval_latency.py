"""Benchmark: hello-world latency and throughput through the HTTP API, beside a plain
`docker run --rm` of the same program measured in the same run on the same engine.

    .venv/bin/python bench/eval_latency.py [--samples 40] [--concurrency 1,4,8] [--jobs 40]

Latency is submit (POST /api/eval) to the `completed` event on /ws. Throughput is
executions completed per second with N submissions in flight. Everything talks only to
127.0.0.1; the run is bounded by --samples and --jobs and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.runtime.images import image_ref  # noqa: E402
from tests.support import start_server  # noqa: E402

PROGRAM = "print('Hello, World!')"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- the appliance ----------------------------------------------------------------------


class Appliance:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.waiters: dict[str, asyncio.Future] = {}
        # Results that arrived before their submitter was listening for them.
        self.early: dict[str, dict] = {}

    async def listen(self, ready: asyncio.Event) -> None:
        ws_url = self.url.replace("http://", "ws://") + f"/ws?api_key={self.key}"
        async with websockets.connect(ws_url, max_size=None) as ws:
            ready.set()
            async for raw in ws:
                event = json.loads(raw)
                if event["type"] == "completed":
                    future = self.waiters.pop(event["eval_id"], None)
                    if future is None:
                        self.early[event["eval_id"]] = event["data"]
                    elif not future.done():
                        future.set_result(event["data"])

    async def run_one(self, client: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        response = await client.post("/api/eval", json={"code": PROGRAM, "language": "python"})
        response.raise_for_status()
        eval_id = response.json()["eval_id"]
        future = asyncio.get_running_loop().create_future()
        # The event may have come before the POST's answer: then it is in `early`.
        if eval_id in self.early:
            data = self.early.pop(eval_id)
        else:
            self.waiters[eval_id] = future
            try:
                data = await asyncio.wait_for(future, 90)
            except TimeoutError:
                status = (await client.get(f"/api/eval-status/{eval_id}")).json()
                raise RuntimeError(f"no completed event for {eval_id} in 90 s; status: {status}") from None
        if data["status"] != "completed" or data.get("output", "Hello, World!\n") != "Hello, World!\n":
            raise RuntimeError(f"unexpected result: {data}")
        return time.perf_counter() - started


async def measure_appliance(url: str, key: str, samples: int, levels: list[int], jobs: int):
    appliance = Appliance(url, key)
    ready = asyncio.Event()
    listener = asyncio.create_task(appliance.listen(ready))
    await ready.wait()
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        for _ in range(3):  # warm-up
            await appliance.run_one(client)
        latencies = [await appliance.run_one(client) for _ in range(samples)]
        throughput = {}
        for level in levels:
            started = time.perf_counter()
            remaining = jobs

            async def lane() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await appliance.run_one(client)

            await asyncio.gather(*(lane() for _ in range(level)))
            throughput[level] = jobs / (time.perf_counter() - started)
    listener.cancel()
    return latencies, throughput


# --- the baseline -----------------------------------------------------------------------


def docker_run_once(image: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "python3", "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.stdout != "Hello, World!\n":
        raise RuntimeError(f"docker run failed: {done.stderr}")
    return time.perf_counter() - started


def measure_baseline(samples: int, levels: list[int], jobs: int):
    image = image_ref("python")
    docker_run_once(image)
    latencies = [docker_run_once(image) for _ in range(samples)]
    throughput = {}
    for level in levels:
        started = time.perf_counter()
        with ThreadPoolExecutor(level) as pool:
            list(pool.map(lambda _: docker_run_once(image), range(jobs)))
        throughput[level] = jobs / (time.perf_counter() - started)
    return latencies, throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=40, help="executions per throughput level")
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]

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
        app_lat, app_tp = asyncio.run(measure_appliance(server.url, server.admin_key, args.samples, levels, args.jobs))
    finally:
        server.stop()
    base_lat, base_tp = measure_baseline(args.samples, levels, args.jobs)

    def ms(v: float) -> str:
        return f"{v * 1000:8.1f} ms"

    print(f"\nhello world, python, {args.samples} samples; throughput: {args.jobs} executions per level\n")
    print("| metric | appliance (HTTP API) | docker run --rm | appliance / docker |")
    print("|---|---|---|---|")
    for name, q in (("latency p50", 50), ("latency p99", 99)):
        a, b = percentile(app_lat, q), percentile(base_lat, q)
        print(f"| {name} | {ms(a)} | {ms(b)} | {a / b:.2f} |")
    print(
        f"| latency mean | {ms(statistics.mean(app_lat))} | {ms(statistics.mean(base_lat))} | "
        f"{statistics.mean(app_lat) / statistics.mean(base_lat):.2f} |"
    )
    for level in levels:
        a, b = app_tp[level], base_tp[level]
        print(f"| executions/s at concurrency {level} | {a:8.1f} | {b:8.1f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
