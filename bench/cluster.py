"""Benchmark: cluster mode on loopback. Scaling from one Ray node to three with the same
slots each, and what dispatch to a node adds to a hello world, measured in the same run.

    .venv-cluster/bin/python bench/cluster.py [--slots 2] [--rounds 4] [--sleep 3] [--hellos 40] [--pause 0.5]

Needs the `cluster` extra. Every Ray process binds 127.0.0.1 (tests/cluster_support.py);
each node has its own dockerd with the python image loaded from a tarball. The work is
bound by slots, not CPU: programs that sleep, few enough at once that container churn
stays under a core. Throughput is programs finished per second with every slot busy
(`rounds` programs per slot); one node first, then three. Dispatch latency is the p50
of a hello world through the head's executor to a node, beside the same hello world
through a ContainerExecutor on that node's engine in this process, and an empty actor
call. The run stops by itself and removes what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Sets Ray's environment (loopback, token, no usage statistics) before Ray is imported.
from tests.cluster_support import LoopbackCluster  # noqa: E402  # isort: skip

from appliance.runtime.engine import DockerEngine  # noqa: E402
from appliance.runtime.executor import ContainerExecutor, ExecutionHandle, ExecutionRequest  # noqa: E402
from appliance.runtime.limits import SandboxLimits  # noqa: E402
from appliance.runtime.pool import PoolSettings, WarmPool  # noqa: E402
from appliance.services.cluster.executor import ClusterExecutor, ClusterSettings  # noqa: E402
from appliance.services.engines.specs import SandboxSpecs  # noqa: E402

HELLO = "print('hello')"
SLEEPER = "import time\ntime.sleep({seconds})\nprint('done')"


class NoLocal:
    """The head runs nothing itself here."""

    async def run(self, *args: object) -> None:
        raise AssertionError("nothing should run on the head")

    async def kill(self, handle: ExecutionHandle) -> None:
        pass

    async def drain(self) -> None:
        pass


def ignore(stream: str, text: str) -> None:
    pass


async def burst(executor: ClusterExecutor, request: ExecutionRequest, count: int) -> float:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(executor.run(request, ExecutionHandle(), ignore) for _ in range(count)))
    seconds = time.perf_counter() - started
    assert all(o.exit_code == 0 for o in outcomes), [o.stderr for o in outcomes if o.exit_code != 0][:3]
    return count / seconds


async def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def main(args: argparse.Namespace) -> int:
    spec = SandboxSpecs(SandboxLimits()).spec("python", "docker")
    hello = ExecutionRequest(spec=spec, code=HELLO, timeout=10)
    sleeper = ExecutionRequest(spec=spec, code=SLEEPER.format(seconds=args.sleep), timeout=30)
    with tempfile.TemporaryDirectory(prefix="apl-bench-") as tmp:
        # Each node keeps a warm container per slot, so a full burst starts without waiting.
        os.environ["APPLIANCE_WARM_POOL_MIN_IDLE"] = str(args.slots)
        cluster = LoopbackCluster(Path(tmp))
        executor: ClusterExecutor | None = None
        try:
            print(f"Ray cluster at {cluster.address}; node n1 with {args.slots} slots", flush=True)
            cluster.add_node("n1", slots=f"docker={args.slots}")
            executor = ClusterExecutor(ClusterSettings(cluster.address, poll_seconds=0.5), NoLocal(), lambda: [spec])
            await executor.start()
            await asyncio.sleep(2)  # the node's pool fills

            # dispatch latency: an empty actor call, a hello world through a node, and
            # the same hello world on that node's engine without Ray
            actor = next(iter(executor.placement.live())).handle
            empty = []
            for _ in range(args.hellos):
                t = time.perf_counter()
                await actor.ping.remote()
                empty.append(time.perf_counter() - t)
            remote = []
            for _ in range(args.hellos):
                t = time.perf_counter()
                outcome = await executor.run(hello, ExecutionHandle(), ignore)
                remote.append(time.perf_counter() - t)
                assert outcome.stdout == "hello\n", outcome
                await asyncio.sleep(args.pause)  # a warm container again, as an idle client finds it
            engine = DockerEngine(base_url=cluster.engines["n1"].url, threads=8)
            engine.instance_id = "bench-local"
            pool = WarmPool(engine, PoolSettings(min_idle=1, max_idle=2, max_containers=4))
            pool.start()
            pool.warm(spec)
            local_executor = ContainerExecutor(engine, pool)
            await asyncio.sleep(1)
            local = []
            for _ in range(args.hellos):
                t = time.perf_counter()
                await local_executor.run(hello, ExecutionHandle(), ignore)
                local.append(time.perf_counter() - t)
                await asyncio.sleep(args.pause)
            await local_executor.drain()
            engine.close()

            one = await burst(executor, sleeper, args.slots * args.rounds)
            print(f"one node: {one:.2f} programs/s", flush=True)
            cluster.add_node("n2", slots=f"docker={args.slots}")
            cluster.add_node("n3", slots=f"docker={args.slots}")
            while len(list(executor.placement.live())) < 3:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            three = await burst(executor, sleeper, 3 * args.slots * args.rounds)
            print(f"three nodes: {three:.2f} programs/s", flush=True)

            empty_ms, remote_ms, local_ms = await p50(empty), await p50(remote), await p50(local)
            added = remote_ms - local_ms
            print()
            print(
                f"scaling: {three / one:.2f}x ({three:.2f}/s on three nodes, baseline {one:.2f}/s on one; want >= 2.7)"
            )
            print(
                f"hello world p50: {remote_ms:.1f} ms through a node, {local_ms:.1f} ms on the same engine without "
                f"Ray; dispatch adds {added:.1f} ms; empty actor call p50 {empty_ms:.1f} ms "
                f"(want added <= empty call + 5 ms = {empty_ms + 5:.1f} ms)"
            )
            ok = three / one >= 2.7 and added <= empty_ms + 5
            print("PASS" if ok else "FAIL")
            return 0 if ok else 1
        finally:
            if executor is not None:
                await executor.drain()
            cluster.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=3.0)
    parser.add_argument("--hellos", type=int, default=40)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between hello worlds (the pool refills)")
    sys.exit(asyncio.run(main(parser.parse_args())))
