"""Soak: an hour (or --duration seconds) of mixed work at half the sustainable rate, and
proof that it leaves nothing behind.

    .venv/bin/python bench/soak.py [--duration 3600] [--sample-every 60]

At its start it measures the sustainable rate (hello worlds completed per second with
many in flight), then sends work at `--share` (0.5) of it, one arrival every 1/rate
seconds: Python, JavaScript, C and Bash, on docker and (when the appliance offers it)
gVisor; failures, timeouts, memory-limit kills, output floods, user kills, synchronous
POST /api/execute; beside it a persistent sandbox's file traffic (upload, list,
download, delete) and /ws watchers that connect and leave. Every `--sample-every`
seconds it prints the appliance's resident memory, open descriptors, threads, asyncio
tasks, containers, data dir size, temp files and the hello-world latency percentiles.

The first quarter (at most five minutes) is a warm-up: after it, and again at the end,
the load stops, the queue drains and the warm pool settles back to its size at the
start; the end is compared with the quiet state after the warm-up, and after that the
appliance stops (no container of it may remain). Exit status 1 if anything is left over
(containers the pool does not account for, descriptors, tasks, temp files), 2 if a trend
target is missed (with --check-trends, on by
default from 20 minutes on: resident memory at the end within 10% of its value after
the first five minutes, p99 of the last ten minutes within 20% of the first ten; both
windows shrink to a quarter of the run when it is shorter). Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.runtime.container_setup import INSTANCE_LABEL, PERSISTENT_LABEL  # noqa: E402
from bench.client_rates import by_waiting, sustainable_rate  # noqa: E402
from bench.eval_latency import percentile  # noqa: E402
from tests.sandbox_support import instance_id, remove_sandbox_containers  # noqa: E402
from tests.support import FINAL_STATUSES, start_server  # noqa: E402

HELLO = {
    "python": "print('Hello, World!')",
    "javascript": "console.log('Hello, World!')",
    "bash": "echo 'Hello, World!'",
    "c": '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }\n',
}
# (weight, kind): what one arrival is.
MIX = [
    (30, "hello python"),
    (8, "hello javascript"),
    (8, "hello c"),
    (6, "hello bash"),
    (10, "hello python gvisor"),
    (6, "failure"),
    (5, "timeout"),
    (5, "memory"),
    (5, "flood"),
    (5, "kill"),
    (6, "execute"),
]
ENGINE_THREADS = 32  # runtime/engine.py: the SDK's threads, each with its own engine connection
FD_TOLERANCE = 4  # descriptors that may come and go with the loop's own housekeeping
POOL_FLOOR = 1  # warm_pool_min_idle, as the soak's appliance runs
TASK_TOLERANCE = 2


class Soak:
    def __init__(self, url: str, key: str, pid: int, data_dir: Path, tmp_dir: Path, gvisor: bool) -> None:
        self.url, self.key, self.pid = url, key, pid
        self.data_dir, self.tmp_dir, self.gvisor = data_dir, tmp_dir, gvisor
        self.latencies: list[tuple[float, float]] = []  # (when, seconds) of hello worlds
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self.stop = asyncio.Event()
        self.docker = docker.from_env(version="auto")
        self.random = random.Random(20)

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the soak stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    # --- the work -----------------------------------------------------------------------

    async def one(self, client: httpx.AsyncClient, kind: str) -> None:
        started = time.perf_counter()
        try:
            if kind.startswith("hello"):
                parts = kind.split()
                language, engine = parts[1], (parts[2] if len(parts) > 2 else "docker")
                if engine == "gvisor" and not self.gvisor:
                    engine = "docker"
                body = await self.run(client, {"code": HELLO[language], "language": language, "engine": engine})
                if body["status"] != "completed" or body["output"] != "Hello, World!\n":
                    raise RuntimeError(f"{kind}: {body['status']} {body.get('reason')}")
                self.latencies.append((time.monotonic(), time.perf_counter() - started))
            elif kind == "failure":
                await self.expect(client, {"code": "import sys; sys.exit(3)"}, "completed", None)
            elif kind == "timeout":
                await self.expect(client, {"code": "import time; time.sleep(30)", "timeout": 1}, "timeout", "timeout")
            elif kind == "memory":
                code = "b = bytearray(600 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])"
                await self.expect(client, {"code": code}, "failed", "memory_limit")
            elif kind == "flood":
                code = "while True:\n    print('x' * 10000)"
                await self.expect(client, {"code": code, "timeout": 20}, "failed", "output_limit")
            elif kind == "kill":
                response = await client.post("/api/eval", json={"code": "import time; time.sleep(60)"})
                response.raise_for_status()
                eval_id = response.json()["eval_id"]
                await asyncio.sleep(0.3)
                await client.post(f"/api/eval/{eval_id}/kill")
                body = await self.final(client, eval_id)
                if body.get("reason") != "killed":
                    raise RuntimeError(f"kill: {body['status']} {body.get('reason')}")
            elif kind == "execute":
                response = await client.post("/api/execute", json={"code": HELLO["python"], "language": "python"})
                if response.status_code == 503:
                    self.count("refused (503)")
                    return
                response.raise_for_status()
                if response.json()["output"] != "Hello, World!\n":
                    raise RuntimeError(f"execute: {response.json()}")
            self.count(kind)
        except RefusedError:
            self.count("refused (503)")
        except Exception as exc:  # noqa: BLE001 - counted and printed, the soak goes on
            self.count("errors")
            self.errors.append(f"{kind}: {exc}"[:300])

    async def run(self, client: httpx.AsyncClient, request: dict) -> dict:
        response = await client.post("/api/eval", json={"language": "python", **request})
        if response.status_code == 503:
            raise RefusedError
        response.raise_for_status()
        return await self.final(client, response.json()["eval_id"])

    async def final(self, client: httpx.AsyncClient, eval_id: str) -> dict:
        for _ in range(10):
            body = (await client.get(f"/api/eval-status/{eval_id}", params={"wait": 60})).json()
            if body["status"] in FINAL_STATUSES:
                return body
        raise RuntimeError(f"{eval_id} did not end in 10 minutes")

    async def expect(self, client: httpx.AsyncClient, request: dict, status: str, reason: str | None) -> None:
        body = await self.run(client, request)
        if body["status"] != status or (reason is not None and body.get("reason") != reason):
            raise RuntimeError(f"expected {status}/{reason}, got {body['status']}/{body.get('reason')}")

    async def arrivals(self, client: httpx.AsyncClient, rate: float) -> None:
        weights = [w for w, _ in MIX]
        kinds = [k for _, k in MIX]
        running: set[asyncio.Task] = set()
        start, n = time.perf_counter(), 0
        while not self.stop.is_set():
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            task = asyncio.create_task(self.one(client, self.random.choices(kinds, weights)[0]))
            running.add(task)
            task.add_done_callback(running.discard)
            n += 1
        await asyncio.gather(*running)

    async def sandbox_traffic(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/sandboxes", json={"runtime": "python", "name": "soak"})
        response.raise_for_status()
        sandbox_id = response.json()["sandbox_id"]
        try:
            for _ in range(600):
                state = (await client.get(f"/api/sandboxes/{sandbox_id}")).json()
                if state.get("status") == "running":
                    break
                await asyncio.sleep(0.2)
            n = 0
            while not self.stop.is_set():
                n += 1
                name = f"soak-{n}.bin"
                payload = os.urandom(64 * 1024)
                try:
                    up = await client.post(
                        "/api/files/upload", data={"sandbox_id": sandbox_id}, files={"file": (name, payload)}
                    )
                    up.raise_for_status()
                    (await client.get(f"/api/sandboxes/{sandbox_id}/files")).raise_for_status()
                    down = await client.get(f"/api/sandboxes/{sandbox_id}/files/{name}")
                    if down.content != payload:
                        raise RuntimeError("downloaded file differs")
                    (await client.delete(f"/api/sandboxes/{sandbox_id}/files/{name}")).raise_for_status()
                    self.count("sandbox file round trips")
                except Exception as exc:  # noqa: BLE001
                    self.count("errors")
                    self.errors.append(f"sandbox files: {exc}"[:300])
                await self.pause(5)
        finally:
            await client.delete(f"/api/sandboxes/{sandbox_id}", params={"force": "true"})

    async def watchers(self) -> None:
        ws_url = self.url.replace("http://", "ws://") + f"/ws?api_key={self.key}"
        while not self.stop.is_set():
            try:
                async with websockets.connect(ws_url, max_size=None) as ws:
                    until = time.monotonic() + self.random.uniform(2, 8)
                    while time.monotonic() < until and not self.stop.is_set():
                        try:
                            json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        except TimeoutError:
                            continue
                self.count("ws watchers")
            except Exception as exc:  # noqa: BLE001
                self.count("errors")
                self.errors.append(f"ws: {exc}"[:300])
            await self.pause(self.random.uniform(1, 5))

    # --- looking ------------------------------------------------------------------------

    async def sample(self, client: httpx.AsyncClient) -> dict:
        proc = Path(f"/proc/{self.pid}")
        status = (proc / "status").read_text()
        metrics = (await client.get("/api/metrics")).text
        tasks = re.search(r"^appliance_asyncio_tasks (\S+)$", metrics, re.M)
        instance = instance_id(self.data_dir)
        containers = self.docker.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"})
        return {
            "at": time.monotonic(),
            "rss_mb": field(r"VmRSS:\s+(\d+)", status) / 1024,
            "fds": len(os.listdir(proc / "fd")),
            "threads": field(r"Threads:\s+(\d+)", status),
            "tasks": int(float(tasks.group(1))) if tasks else -1,
            "containers": len(containers),
            "data_mb": sum(f.stat().st_size for f in self.data_dir.rglob("*") if f.is_file()) / 1e6,
            "tmp_files": sum(1 for _ in self.tmp_dir.rglob("*")),
        }

    def window(self, since: float, until: float) -> list[float]:
        return [s for at, s in self.latencies if since <= at < until]

    def line(self, sample: dict, since: float) -> str:
        lat = self.window(since, sample["at"])
        pct = (
            " ".join(f"p{q} {percentile(lat, q) * 1000:.0f}" for q in (50, 90, 99)) + f" ms (n={len(lat)})"
            if lat
            else "no hello worlds"
        )
        return (
            f"rss {sample['rss_mb']:.1f} MB, fds {sample['fds']}, threads {sample['threads']}, "
            f"tasks {sample['tasks']}, containers {sample['containers']}, data {sample['data_mb']:.1f} MB, "
            f"tmp files {sample['tmp_files']}; latency {pct}"
        )


def field(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in /proc")
    return int(found.group(1))


class RefusedError(Exception):
    pass


async def pool_settled(client: httpx.AsyncClient, floor: int) -> bool:
    """Every lane of the warm pool holds its floor of idle containers, none being made:
    the arrival rates of the load have left the pool's window."""
    lanes = (await client.get("/api/status")).json().get("sandbox_pool", [])
    return all(lane["idle"] == lane["target"] == floor and lane["creating"] == 0 for lane in lanes)


async def pool_containers(client: httpx.AsyncClient) -> int:
    """Containers the warm pool accounts for: idle and being made."""
    lanes = (await client.get("/api/status")).json().get("sandbox_pool", [])
    return sum(lane["idle"] + lane["creating"] for lane in lanes)


def descriptor_kinds(pid: int) -> dict[str, int]:
    """The appliance's open descriptors by kind (socket, pipe, anon_inode, file)."""
    kinds: dict[str, int] = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


async def quiet_sample(soak: Soak, client: httpx.AsyncClient, timeout: float) -> tuple[dict, int]:
    """A sample once every container is one the pool accounts for (removals of used
    ones done), within `timeout`; with the pool's count."""
    deadline = time.monotonic() + timeout
    while True:
        sample = await soak.sample(client)
        accounted = await pool_containers(client)
        if sample["containers"] == accounted or time.monotonic() > deadline:
            return sample, accounted
        await asyncio.sleep(0.5)


async def load(soak: Soak, looker: httpx.AsyncClient, rate: float, seconds: float, offset: float, args) -> list[dict]:
    """The mixed work for `seconds`, sampled every --sample-every; returns the samples.
    When it returns, every piece of work has ended and its connections are closed."""
    soak.stop = asyncio.Event()
    samples = []
    headers = {"X-API-Key": soak.key}
    async with httpx.AsyncClient(base_url=soak.url, headers=headers, timeout=180) as client:
        work = [
            asyncio.create_task(soak.arrivals(client, args.share * rate)),
            asyncio.create_task(soak.sandbox_traffic(client)),
            asyncio.create_task(soak.watchers()),
        ]
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            await asyncio.sleep(min(args.sample_every, seconds - (time.monotonic() - began)))
            sample = await soak.sample(looker)
            sample["t"] = offset + sample["at"] - began
            samples.append(sample)
            print(f"[{sample['t']:6.0f} s] {soak.line(sample, sample['at'] - args.sample_every)}", flush=True)
            for failed in soak.errors[-3:]:
                print(f"          error: {failed}")
            soak.errors.clear()
        soak.stop.set()
        await asyncio.gather(*work)
    return samples


async def quiet(soak: Soak, looker: httpx.AsyncClient, args) -> tuple[dict, int, dict]:
    """Once the queue has drained, the pool is back to its floor and used containers are
    gone: a sample, the pool's container count and the descriptors by kind."""
    deadline = time.monotonic() + args.quiesce
    while time.monotonic() < deadline:
        queue = (await looker.get("/api/queue-status")).json()
        if queue["queue_length"] == 0 and await pool_settled(looker, POOL_FLOOR):
            break
        await asyncio.sleep(1)
    await asyncio.sleep(args.settle)
    sample, accounted = await quiet_sample(soak, looker, args.quiesce)
    return sample, accounted, descriptor_kinds(soak.pid)


async def soak(soak: Soak, args: argparse.Namespace) -> int:
    headers = {"X-API-Key": soak.key}
    # The samples' own client (one connection), apart from the work's, whose connections
    # are closed before each quiet sample.
    looker = httpx.AsyncClient(base_url=soak.url, headers=headers, timeout=60, limits=httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(base_url=soak.url, headers=headers, timeout=180) as client:
        for _ in range(3):
            await by_waiting(client, "python")
        rate = await sustainable_rate(client, args.measure, 8)
    print(f"sustainable rate at the start: {rate:.2f}/s; sending at {args.share} of it: {args.share * rate:.2f}/s")
    await asyncio.sleep(args.settle)
    # Warm-up: the first quarter (at most five minutes). The appliance's pools (engine
    # threads and their connections, the loop's) grow to their bounds here; what is kept
    # after the rest, beyond what the warm-up left, is a leak.
    early = min(300.0, args.duration / 4)
    span = min(600.0, args.duration / 4)
    began = time.monotonic()
    samples = await load(soak, looker, rate, early, 0.0, args)
    start, _, start_kinds = await quiet(soak, looker, args)
    print(f"[{early:6.0f} s] quiet after the warm-up: {soak.line(start, start['at'])}", flush=True)
    resumed = time.monotonic()
    samples += await load(soak, looker, rate, args.duration - early, early, args)
    ended = time.monotonic()
    end, accounted, end_kinds = await quiet(soak, looker, args)
    await looker.aclose()
    print(f"[{args.duration:6.0f} s] quiet after the load: {soak.line(end, end['at'])}")
    print(f"descriptors by kind, after the warm-up: {start_kinds}; at the end: {end_kinds}")
    print("done: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.counts.items())))

    leftovers = []
    if end["containers"] != accounted:
        leftovers.append(f"containers {end['containers']}, of which the warm pool accounts for {accounted}")
    # A thread the engine's pool added since (it is bounded: 32) may hold one connection
    # to the engine; anything beyond that is kept by something else.
    # An idle container holds its attach socket: a lane made since holds one more.
    new_threads = max(0, end["threads"] - start["threads"])
    new_idle = max(0, end["containers"] - start["containers"])
    if end["fds"] > start["fds"] + FD_TOLERANCE + new_threads + new_idle:
        leftovers.append(
            f"descriptors {start['fds']} -> {end['fds']} "
            f"({new_threads} new thread(s), {new_idle} more idle container(s))"
        )
    if end["tasks"] > start["tasks"] + TASK_TOLERANCE:
        leftovers.append(f"asyncio tasks {start['tasks']} -> {end['tasks']}")
    if end["tmp_files"] > start["tmp_files"]:
        leftovers.append(f"temp files {start['tmp_files']} -> {end['tmp_files']}")
    if end["threads"] > ENGINE_THREADS + 16:
        leftovers.append(f"threads {start['threads']} -> {end['threads']} (the engine's pool has {ENGINE_THREADS})")
    trends = []
    reference = start  # resident memory after the first five minutes (the warm-up)
    if end["rss_mb"] > reference["rss_mb"] * 1.10:
        trends.append(f"resident memory {reference['rss_mb']:.1f} -> {end['rss_mb']:.1f} MB (> +10%)")
    first, last = soak.window(resumed, resumed + span), soak.window(ended - span, ended)
    if first and last:
        p_first, p_last = percentile(first, 99), percentile(last, 99)
        print(f"p99 first {span:.0f} s {p_first * 1000:.0f} ms, last {span:.0f} s {p_last * 1000:.0f} ms")
        if p_last > p_first * 1.20:
            trends.append(f"p99 {p_first * 1000:.0f} -> {p_last * 1000:.0f} ms (> +20%)")
    print(f"memory after the warm-up ({early:.0f} s) {reference['rss_mb']:.1f} MB, at the end {end['rss_mb']:.1f} MB")
    del began, samples
    print("left over: " + ("; ".join(leftovers) if leftovers else "nothing"))
    print("trends: " + ("; ".join(trends) if trends else "within targets"))
    if leftovers:
        return 1
    return 2 if trends and args.check_trends else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of load (default one hour)")
    parser.add_argument("--sample-every", type=float, default=60.0)
    parser.add_argument("--share", type=float, default=0.5, help="of the sustainable rate")
    parser.add_argument("--measure", type=int, default=30, help="runs for the sustainable rate")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--quiesce", type=float, default=120.0, help="the most seconds to wait for quiet")
    parser.add_argument("--check-trends", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--engines", default="docker,gvisor")
    args = parser.parse_args()
    if args.check_trends is None:
        args.check_trends = args.duration >= 1200

    data_dir = Path(tempfile.mkdtemp(prefix="appliance-soak-"))
    tmp_dir = data_dir.parent / (data_dir.name + "-tmp")
    tmp_dir.mkdir(mode=0o700)
    server = start_server(
        data_dir / "data",
        env={
            "TMPDIR": str(tmp_dir),
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "0",
            "APPLIANCE_RATE_LIMIT_EXECUTE": "0",
            "APPLIANCE_RATE_LIMIT_UPLOAD": "0",
            "APPLIANCE_RATE_LIMIT_ANONYMOUS": "0",
            "APPLIANCE_ENGINES": args.engines,
            # The pool's window: its size is back to the start's soon after the load ends.
            "APPLIANCE_WARM_POOL_IDLE_SECONDS": "15",
            "APPLIANCE_WARM_POOL_MIN_IDLE": str(POOL_FLOOR),
        },
    )
    code = 1
    try:
        with httpx.Client(base_url=server.url) as probe:
            engines = probe.get("/api/status").json().get("engines", {})
        soaker = Soak(
            server.url,
            server.admin_key,
            server.proc.pid,
            server.data_dir,
            tmp_dir,
            engines.get("gvisor") == "available",
        )
        code = asyncio.run(soak(soaker, args))
    finally:
        server.stop()
    engine = docker.from_env(version="auto")
    instance = instance_id(server.data_dir)
    stray = [
        item
        for label in (INSTANCE_LABEL, PERSISTENT_LABEL)
        for item in engine.api.containers(all=True, filters={"label": f"{label}={instance}"})
    ]
    remove_sandbox_containers(engine, server.data_dir)  # whatever a failed run left
    if stray:
        print(f"left over after the appliance stopped: {len(stray)} container(s)")
        code = 1
    else:
        print("after the appliance stopped: no container of it left")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
