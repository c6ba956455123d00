"""Benchmark: the batch lane (one sandbox, a forked process per execution) beside a
fresh `docker run --rm` per execution, measured in the same run on the same engine.

    .venv/bin/python bench/batch_lane.py [--executions 500] [--baseline 30] [--lanes 1]
                                         [--engine docker|gvisor] [--relay]

The program is a pass@k style check of one sample. Batch-lane latency is `run()` called
to its outcome; throughput is executions finished per second, with --lanes sandboxes
(each one its own container, executions sequential inside each) going at once. The
baseline is `docker run --rm --network none <python image> python3 -c ...`, one after
the other, for a bounded, smaller count. Nothing leaves the machine: the sandboxes have
no network, and the engine is the local one. The run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.runtime.batch_sandbox import BatchSandbox  # noqa: E402
from appliance.runtime.engine import DockerEngine  # noqa: E402
from appliance.runtime.images import image_ref  # noqa: E402
from appliance.runtime.limits import SandboxLimits  # noqa: E402

PROGRAM = """\
def add(a, b):
    return a + b

assert add(2, 3) == 5
assert add(-1, 1) == 0
print("passed")
"""
EXPECTED = "passed\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- the batch lane ---------------------------------------------------------------------


async def measure_batch(
    executions: int, lanes: int, warmup: int, engine_name: str, relay: bool | None
) -> tuple[list[float], float, float]:
    """(per-execution latencies, executions/s, seconds to start the sandboxes)."""
    engine = DockerEngine(threads=8)
    limits = SandboxLimits()
    boxes = [
        BatchSandbox(
            engine,
            image_ref("python"),
            limits,
            owner="bench",
            batch_id=f"bench-{i}",
            instance_id="bench-batch-lane",
            engine_name=engine_name,
            relay=relay,
        )
        for i in range(lanes)
    ]
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        await asyncio.gather(*(box.start() for box in boxes))
        start_seconds = time.perf_counter() - started
        for box in boxes:
            for _ in range(warmup):
                await run_one(box)
        remaining = executions

        async def lane(box: BatchSandbox) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                latencies.append(await run_one(box))

        started = time.perf_counter()
        await asyncio.gather(*(lane(box) for box in boxes))
        rate = executions / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(box.close() for box in boxes), return_exceptions=True)
        engine.close()
    return latencies, rate, start_seconds


async def run_one(box: BatchSandbox) -> float:
    started = time.perf_counter()
    outcome = await box.run(PROGRAM, timeout=10, output_limit=64 * 1024)
    elapsed = time.perf_counter() - started
    if outcome.exit_code != 0 or outcome.stdout != EXPECTED:
        raise RuntimeError(f"unexpected outcome: {outcome}")
    return elapsed


# --- the baseline -----------------------------------------------------------------------


def docker_run_once(image: str, runtime: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *runtime, image, "python3", "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 or done.stdout != EXPECTED:
        raise RuntimeError(f"docker run failed: {done.stderr}")
    return time.perf_counter() - started


def measure_baseline(count: int, engine_name: str) -> tuple[list[float], float]:
    image = image_ref("python")
    runtime = ["--runtime", getattr(SandboxLimits(), "gvisor_runtime", "runsc")] if engine_name == "gvisor" else []
    docker_run_once(image, runtime)  # warm-up
    started = time.perf_counter()
    latencies = [docker_run_once(image, runtime) for _ in range(count)]
    return latencies, count / (time.perf_counter() - started)


def measure_api(batches: int, size: int) -> float:
    """Executions completed per second through POST /api/eval-batch (the appliance's own
    path: stored, queued, run in the batch lane, results stored), batches in flight."""
    import tempfile

    import httpx

    from tests.support import start_server

    server = start_server(
        Path(tempfile.mkdtemp(prefix="appliance-bench-")),
        env={"APPLIANCE_RATE_LIMIT_AUTHENTICATED": "0", "APPLIANCE_RATE_LIMIT_BATCH": "0"},
    )
    try:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": server.admin_key}, timeout=60) as client:

            def submit() -> list[str]:
                body = {"evaluations": [{"code": PROGRAM, "language": "python"} for _ in range(size)]}
                return [e["eval_id"] for e in client.post("/api/eval-batch", json=body).json()["evaluations"]]

            def wait_all(ids: list[str]) -> None:
                for eval_id in ids:
                    while client.get(f"/api/eval-status/{eval_id}").json()["status"] in ("queued", "running"):
                        time.sleep(0.02)

            wait_all(submit())  # warm-up
            started = time.perf_counter()
            ids = [eval_id for _ in range(batches) for eval_id in submit()]
            wait_all(ids)
            return len(ids) / (time.perf_counter() - started)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=500, help="batch-lane executions")
    parser.add_argument("--baseline", type=int, default=30, help="docker run --rm executions")
    parser.add_argument("--lanes", type=int, default=1, help="batch sandboxes running at once")
    parser.add_argument("--warmup", type=int, default=10, help="untimed executions per sandbox")
    parser.add_argument("--target", type=float, default=100.0, help="executions/s to reach")
    parser.add_argument("--engine", default="docker", choices=("docker", "gvisor"))
    parser.add_argument(
        "--api-batches", type=int, default=5, help="batches of 100 through POST /api/eval-batch (0: skip)"
    )
    parser.add_argument(
        "--relay", action="store_true", default=None, help="authenticating relay (default: only under gVisor)"
    )
    args = parser.parse_args()

    batch_lat, batch_rate, start_seconds = asyncio.run(
        measure_batch(args.executions, args.lanes, args.warmup, args.engine, args.relay)
    )
    base_lat, base_rate = measure_baseline(args.baseline, args.engine)
    api_rate = measure_api(args.api_batches, 100) if args.api_batches and args.engine == "docker" else None

    def ms(v: float) -> str:
        return f"{v * 1000:8.1f} ms"

    relay = args.relay if args.relay is not None else args.engine == "gvisor"
    print(
        f"\npass@k sample check, python, engine {args.engine}{' with relay' if relay else ''}; "
        f"batch lane: {args.executions} executions in {args.lanes} sandbox(es) (started in "
        f"{start_seconds * 1000:.0f} ms); docker run --rm: {args.baseline} executions, sequential\n"
    )
    print("| metric | batch lane | docker run --rm | batch / docker |")
    print("|---|---|---|---|")
    for name, q in (("latency p50", 50), ("latency p99", 99)):
        a, b = percentile(batch_lat, q), percentile(base_lat, q)
        print(f"| {name} | {ms(a)} | {ms(b)} | {a / b:.3f} |")
    a, b = statistics.mean(batch_lat), statistics.mean(base_lat)
    print(f"| latency mean | {ms(a)} | {ms(b)} | {a / b:.3f} |")
    print(f"| executions/s | {batch_rate:8.1f} | {base_rate:8.1f} | {batch_rate / base_rate:.1f} |")
    if api_rate is not None:
        print(
            f"| executions/s through POST /api/eval-batch ({args.api_batches} x 100) | {api_rate:8.1f} | "
            f"{base_rate:8.1f} | {api_rate / base_rate:.1f} |"
        )
    verdict = "meets" if batch_rate >= args.target else "MISSES"
    print(f"\nbatch lane {verdict} the target of {args.target:.0f} executions/s ({batch_rate:.1f}/s)")
    return 0 if batch_rate >= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
