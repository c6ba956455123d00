"""Benchmark: how fast the server answers while sandboxes load the machine, and how soon
a run's container is gone after its result, each beside its baseline in the same run.

    .venv/bin/python bench/status_under_load.py [--runs 50] [--engines docker,gvisor] [--probes 100]

- status: `GET /api/status` latency with nothing running (the baseline), while `--runs`
  evaluations are submitted at once (every fifth killed on the way, as in
  tests/test_exploits.py), and while a fork loop fills its sandbox's process limit;
- cleanup: seconds from a run's final result (as a poller sees it) until its container
  is gone, beside the engine removing a running container of the same runtime itself
  (`docker rm -f`), one at a time.

These are the figures the exploit tests once held to fixed bounds (status within 1 s,
cleanup within 10 s); the tests now only catch a hang. Everything talks only to
127.0.0.1; every part is bounded in count and stops by itself.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.runtime.images import image_ref  # noqa: E402
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options  # noqa: E402
from bench.eval_latency import percentile  # noqa: E402
from tests.support import FINAL_STATUSES, start_server  # noqa: E402

RACE_PROGRAM = (
    "import os, socket, time\n"
    "print('HOST=' + socket.gethostname(), flush=True)\n"
    "open('/work/owner', 'w').write('x')\n"
    "time.sleep(0.2)\n"
)
FORK_LOOP = (
    "import os, time\n"
    "while True:\n"
    "    try:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(60)\n"
    "            os._exit(0)\n"
    "    except OSError:\n"
    "        break\n"
    "time.sleep(3)\n"
)


class StatusProbe:
    """GET /api/status every `every` seconds in a thread, until stopped."""

    def __init__(self, url: str, every: float = 0.1) -> None:
        self.url, self.every = url, every
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                client.get("/api/status").raise_for_status()
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(self.every)

    def __enter__(self) -> StatusProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)


def idle_latencies(url: str, probes: int) -> list[float]:
    with StatusProbe(url, every=0.05) as probe:
        while len(probe.latencies) < probes:
            time.sleep(0.05)
    return probe.latencies


def wait_final(client: httpx.Client, eval_id: str, every: float) -> tuple[dict, float]:
    """The final status body and when the poller first saw it."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        body = client.get(f"/api/eval-status/{eval_id}").json()
        if body["status"] in FINAL_STATUSES:
            return body, time.monotonic()
        time.sleep(every)
    raise RuntimeError(f"{eval_id} not final after 600 s")


def race(url: str, key: str, engine: str, runs: int, docker_client) -> tuple[list[float], list[float]]:
    """Status latencies while `runs` evaluations start at once, and each run's cleanup
    delay: from its final result to its container gone."""

    def one(n: int) -> tuple[dict, float]:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
            body = {"code": RACE_PROGRAM, "language": "python", "engine": engine, "timeout": 30}
            eval_id = client.post("/api/eval", json=body).json()["eval_id"]
            if n % 5 == 0:
                client.post(f"/api/eval/{eval_id}/kill")
            return wait_final(client, eval_id, every=1.0)  # polled gently, as the test does

    with StatusProbe(url) as probe, ThreadPoolExecutor(runs) as pool:
        results = list(pool.map(one, range(runs)))
    finals = {}
    for body, seen_at in results:
        match = re.search(r"^HOST=(\S+)$", body["output"], re.MULTILINE)
        if match:
            finals[match.group(1)] = seen_at
    delays: list[float] = []
    deadline = time.monotonic() + 600
    while finals and time.monotonic() < deadline:
        present = {c["Id"][:12] for c in docker_client.api.containers(all=True)}
        now = time.monotonic()
        for host in [h for h in finals if h not in present]:
            delays.append(max(0.0, now - finals.pop(host)))
        time.sleep(0.1)
    if finals:
        raise RuntimeError(f"containers still there after 600 s: {sorted(finals)}")
    return probe.latencies, delays


def fork_loop(url: str, key: str, engine: str) -> list[float]:
    with (
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client,
        StatusProbe(url) as probe,
    ):
        body = {"code": FORK_LOOP, "language": "python", "engine": engine, "timeout": 20}
        wait_final(client, client.post("/api/eval", json=body).json()["eval_id"], every=0.5)
    return probe.latencies


def raw_removals(docker_client, engine: str, count: int) -> list[float]:
    """The engine's own `rm -f` of a running, locked-down container of this runtime."""
    api = docker_client.api
    host_config = api.create_host_config(**container_options(SandboxLimits(), engine=engine))
    delays = []
    for _ in range(count):
        created = api.create_container(
            image_ref("python"),
            command=["sleep", "60"],
            user=SANDBOX_USER,
            host_config=host_config,
            network_disabled=True,
            labels={"appliance.bench": "status_under_load"},
        )
        api.start(created["Id"])
        started = time.perf_counter()
        api.remove_container(created["Id"], force=True)
        delays.append(time.perf_counter() - started)
    return delays


def row(name: str, values: list[float], baseline: list[float], unit: str = "ms") -> str:
    def show(v: float) -> str:
        return f"{v * 1000:.1f} ms" if unit == "ms" else f"{v:.2f} s"

    cells = []
    for q in (50, 99, 100):
        a, b = percentile(values, q), percentile(baseline, q)
        cells.append(f"{show(a)} / {show(b)} ({a / b:.1f}x)")
    return f"| {name} | {len(values)} | " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="evaluations submitted at once")
    parser.add_argument("--engines", default="docker,gvisor")
    parser.add_argument("--probes", type=int, default=100, help="status requests on the idle server")
    parser.add_argument("--removals", type=int, default=10, help="raw container removals per engine")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]

    docker_client = docker.from_env(version="auto")
    server = start_server(
        Path(tempfile.mkdtemp(prefix="appliance-bench-")),
        env={
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "0",
            "APPLIANCE_RATE_LIMIT_ANONYMOUS": "0",
            "APPLIANCE_WORKERS": str(args.workers),
        },
    )
    rows = []
    try:
        idle = idle_latencies(server.url, args.probes)
        for engine in engines:
            racing, cleanup = race(server.url, server.admin_key, engine, args.runs, docker_client)
            bombing = fork_loop(server.url, server.admin_key, engine)
            removals = raw_removals(docker_client, engine, args.removals)
            rows += [
                row(f"GET /api/status while {args.runs} {engine} runs start, vs idle", racing, idle),
                row(f"GET /api/status while a {engine} fork loop runs, vs idle", bombing, idle),
                row(f"cleanup after the result ({engine}), vs raw `rm -f`", cleanup, removals, unit="s"),
            ]
    finally:
        server.stop()
        docker_client.close()

    print(f"\n{args.workers} workers; idle baseline: {len(idle)} status requests\n")
    print("| measure | samples | p50 appliance / baseline (ratio) | p99 | max |")
    print("|---|---|---|---|---|")
    for line in rows:
        print(line)
    print(f"\nidle status mean {statistics.mean(idle) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
