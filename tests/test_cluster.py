"""Cluster mode on a real Ray cluster on loopback: a head appliance (a driver) and two
nodes, each with its own dockerd. Evaluations spread over the nodes with their output
streaming to /ws, gVisor goes only to the node that has it, and a node killed in the
middle of a burst loses nothing: every accepted evaluation ends with exactly one result.

Skipped only when Ray is not importable (the `cluster` extra).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.cluster_support import LoopbackCluster, listeners_outside_loopback, ray_pids, wait_until
from tests.support import ServerProcess, run_eval, start_server, wait_for_status

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SLEEPER = "import time\nprint('start', flush=True)\ntime.sleep({seconds})\nprint('done', flush=True)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    made = LoopbackCluster(tmp_path_factory.mktemp("cluster"))
    try:
        made.add_node("a", slots="docker=2")
        made.add_node("b", slots="docker=2,gvisor=1", gvisor=True)
        yield made
    finally:
        made.shutdown()


@pytest.fixture(scope="module")
def head(cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("head")
    env = {
        **cluster.env(),
        "APPLIANCE_CLUSTER": cluster.address,
        "APPLIANCE_CLUSTER_WORKERS": "8",
        "APPLIANCE_CLUSTER_NODE_TIMEOUT_SECONDS": "3",
        "APPLIANCE_ALERT_EVALUATION_SECONDS": "1",
        "APPLIANCE_QUEUE_BACKPRESSURE_THRESHOLD": "0",
        **{f"APPLIANCE_RATE_LIMIT_{kind}": "100000" for kind in ("AUTHENTICATED", "ANONYMOUS", "READ", "WRITE")},
    }
    server = start_server(data_dir, env=env, timeout=120)
    try:
        wait_until(lambda: len(nodes(server)) == 2, 60, "both nodes seen by the head")
        yield server
    finally:
        server.stop()


def status(server: ServerProcess) -> dict:
    response = server.client().get("/api/status")
    response.raise_for_status()
    return response.json()


def nodes(server: ServerProcess) -> dict[str, dict]:
    return {n["name"]: n for n in status(server).get("cluster", {}).get("nodes", [])}


def test_nothing_of_ray_listens_outside_loopback(head: ServerProcess) -> None:
    pids = ray_pids() | {head.proc.pid}
    assert len(pids) > 3
    assert listeners_outside_loopback(pids) == []


def test_status_and_metrics_show_nodes_slots_and_load(head: ServerProcess) -> None:
    found = nodes(head)
    assert found["a"]["slots"] == {"docker": 2} and found["a"]["state"] == "up"
    assert found["b"]["slots"] == {"docker": 2, "gvisor": 1}
    assert "python" in found["a"]["languages"]
    metrics = head.client().get("/api/metrics").text
    assert 'appliance_cluster_slots{node="b",engine="gvisor"} 1' in metrics
    assert 'appliance_cluster_nodes{state="up"} 2' in metrics


async def test_evaluations_spread_over_nodes_and_stream_to_ws(head: ServerProcess) -> None:
    before = {name: n["completed"] for name, n in nodes(head).items()}
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)"
    async with (
        websockets.connect(f"{head.ws_url}/ws?api_key={head.admin_key}") as ws,
        httpx.AsyncClient(base_url=head.url, headers={"X-API-Key": head.admin_key}, timeout=30) as client,
    ):
        ids = [(await client.post("/api/eval", json={"code": code})).json()["eval_id"] for _ in range(4)]
        events = await collect(ws, set(ids), 90)
    for eval_id in ids:
        mine = events[eval_id]
        assert [e["type"] for e in mine][-1] == "completed"
        assert mine[-1]["data"]["status"] == "completed", mine[-1]
        streamed = "".join(e["data"]["output"] for e in mine if e["type"] == "output_chunk")
        assert streamed == "line 0\nline 1\nline 2\n"
    after = nodes(head)
    # four at once on two slots each: both nodes ran some
    assert all(after[name]["completed"] > before[name] for name in ("a", "b")), after


def test_limits_and_reasons_as_local(head: ServerProcess) -> None:
    with head.admin() as client:
        looping = run_eval(client, "while True:\n    pass", timeout=2)
        assert looping["status"] == "timeout"
        assert looping.get("reason") == "timeout"
        hungry = run_eval(client, "x = bytearray(2_000_000_000)\nprint(len(x))", timeout=20)
        assert hungry["status"] == "failed"
        assert hungry.get("reason") == "memory_limit"


def test_gvisor_only_on_the_node_that_has_it(head: ServerProcess) -> None:
    before = {name: n["completed"] for name, n in nodes(head).items()}
    with head.admin() as client:
        for _ in range(2):
            result = run_eval(client, "print('under gvisor')", engine="gvisor", wait=120)
            assert result["status"] == "completed", result
    after = nodes(head)
    assert after["b"]["completed"] == before["b"] + 2
    assert after["a"]["completed"] == before["a"]


def test_an_evaluation_waiting_for_a_node_slot_is_queued(head: ServerProcess) -> None:
    """Four docker slots (two per node), six sleepers: two wait on the head for a slot,
    `queued` and not `running`; one of them killed there ends at once."""
    with head.admin() as client:
        ids = []
        for _ in range(6):
            response = client.post("/api/eval", json={"code": SLEEPER.format(seconds=4), "timeout": 30})
            assert response.status_code == 200, response.text
            ids.append(response.json()["eval_id"])

        def statuses() -> dict[str, str]:
            return {i: client.get(f"/api/eval-status/{i}").json()["status"] for i in ids}

        def four_run_two_wait() -> dict[str, str] | None:
            found = statuses()
            counts = collections.Counter(found.values())
            return found if counts == {"running": 4, "queued": 2} else None

        found = wait_until(four_run_two_wait, 15, "four running on the nodes' slots, two queued")
        queue = status(head)["queue"]
        assert queue == {"queued": 2, "processing": 4}, queue
        waiting = [i for i, s in found.items() if s == "queued"]
        assert client.post(f"/api/eval/{waiting[0]}/kill").json()["killed"] is True
        killed = wait_for_status(client, waiting[0], 5)
        assert killed["status"] == "failed" and killed["reason"] == "killed", killed
        assert killed["started_at"] is None
        finals = [wait_for_status(client, i, 60) for i in ids if i != waiting[0]]
    assert [f["status"] for f in finals] == ["completed"] * 5, finals
    assert all(f["started_at"] is not None and f["output"].endswith("done\n") for f in finals)


async def test_a_node_killed_mid_burst_loses_nothing(head: ServerProcess, cluster: LoopbackCluster) -> None:
    code = SLEEPER.format(seconds=2)
    async with (
        websockets.connect(f"{head.ws_url}/ws?api_key={head.admin_key}") as ws,
        httpx.AsyncClient(base_url=head.url, headers={"X-API-Key": head.admin_key}, timeout=30) as client,
    ):
        ids = []
        for _ in range(12):
            response = await client.post("/api/eval", json={"code": code, "timeout": 30})
            assert response.status_code == 200, response.text
            ids.append(response.json()["eval_id"])
        await asyncio.sleep(1.0)  # the first four run, two on each node
        await asyncio.to_thread(cluster.kill_node, "a")
        events = await collect(ws, set(ids), 180)
        await asyncio.sleep(2)  # a second `completed` would have come by now
        while True:
            try:
                late = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
            except TimeoutError:
                break
            events.setdefault(late.get("eval_id"), []).append(late)
    with head.admin() as sync_client:
        finals = [wait_for_status(sync_client, eval_id, 30) for eval_id in ids]
    completed_events = collections.Counter(
        eval_id for eval_id in ids for e in events[eval_id] if e["type"] == "completed"
    )
    assert all(completed_events[eval_id] == 1 for eval_id in ids), completed_events
    assert [f["status"] for f in finals] == ["completed"] * 12, finals
    assert all(f["output"].endswith("done\n") for f in finals)
    moved = [f for f in finals if "was lost while this ran" in (f.get("error") or "")]
    assert moved, "the runs on the killed node went back in line"
    state = status(head)["cluster"]
    assert state["nodes_lost"] == 1 and state["requeued"] == len(moved)
    assert {n["name"]: n["state"] for n in state["nodes"]}["a"] == "lost"
    alerts = wait_until(
        lambda: [a for a in head.admin().get("/api/alerts").json()["alerts"] if a["rule"] == "cluster_node_lost"],
        30,
        "a node-lost alert",
    )
    assert alerts[0]["status"] == "active"

    # The machine comes back: `appliance node start` again, and the head takes it in.
    cluster.add_node("a", "docker=2")  # Ray starts a node's processes from the main thread only
    wait_until(lambda: nodes(head)["a"]["state"] == "up", 30, "node a back up")
    with head.admin() as client:
        assert run_eval(client, "print('back')")["status"] == "completed"


def test_a_drained_node_gets_nothing_new(head: ServerProcess, cluster: LoopbackCluster) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    drained = subprocess.run(
        [sys.executable, "-m", "appliance", "node", "drain", "b", "--cluster", cluster.address],
        capture_output=True,
        text=True,
        env=cluster.env(),
        cwd=ROOT,
        timeout=60,
    )
    assert drained.returncode == 0, drained.stderr
    wait_until(lambda: nodes(head)["b"]["state"] == "draining", 15, "b draining at the head")
    before = nodes(head)["b"]["completed"]
    with head.admin() as client:
        for _ in range(3):
            assert run_eval(client, "print(1)")["status"] == "completed"
    assert nodes(head)["b"]["completed"] == before


async def collect(ws: websockets.ClientConnection, ids: set[str], timeout: float) -> dict[str, list[dict]]:
    events: dict[str, list[dict]] = {eval_id: [] for eval_id in ids}
    done: set[str] = set()
    async with asyncio.timeout(timeout):
        while done != ids:
            event = json.loads(await ws.recv())
            eval_id = event.get("eval_id")
            if eval_id in events:
                events[eval_id].append(event)
                if event["type"] == "completed":
                    done.add(eval_id)
    return events


def test_doctor_checks_the_versions_across_the_cluster(cluster: LoopbackCluster, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "appliance", "doctor", "--json", "--data-dir", str(tmp_path / "doctor")]
        + ["--cluster", cluster.address],
        capture_output=True,
        text=True,
        env=cluster.env(),
        cwd=ROOT,
        timeout=180,
    )
    assert "Traceback" not in done.stderr, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    found = checks["cluster versions"]
    assert found["status"] == "OK", found
    assert "node(s), all as here: python" in found["found"]


REWARD_JOB = """
import json, sys
import ray
from appliance.cluster import Sandboxes
from appliance.services.cluster import ray_setup

address, key = sys.argv[1], sys.argv[2]
ray_setup.join(address)

@ray.remote(num_cpus=0)
def reward(solution: str) -> dict:
    result = Sandboxes(api_key=key, source="reward").run(
        solution, tests="assert add(2, 3) == 5\\nprint('graded')"
    )
    return {"eval_id": result.eval_id, "passed": result.passed, "output": result.output, "node": result.node}

@ray.remote(num_cpus=0)
def batch(solutions: list) -> list:
    results = Sandboxes(api_key=key, source="reward").map(solutions, tests="assert add(2, 3) == 5")
    return [{"eval_id": r.eval_id, "passed": r.passed, "node": r.node} for r in results]

right = "def add(a, b):\\n    return a + b"
wrong = "def add(a, b):\\n    return a - b"
one = ray.get([reward.remote(right), reward.remote(wrong)])
many = ray.get(batch.remote([right] * 4 + [wrong]))
print(json.dumps({"one": one, "many": many}))
"""


def test_a_ray_job_runs_code_on_the_nodes_and_the_head_records_it(
    head: ServerProcess, cluster: LoopbackCluster
) -> None:
    """A user's Ray task grades programs through appliance.cluster, no HTTP involved;
    the head lists the runs as evaluations of the key the job used."""
    import subprocess
    import sys

    from tests.support import ROOT

    made = subprocess.run(
        [sys.executable, "-m", "appliance", "keys", "create", "--name", "rl", "--permissions", "execute,read"]
        + ["--data-dir", str(head.data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    before = {name: n["completed"] for name, n in nodes(head).items()}
    job = subprocess.run(
        [sys.executable, "-c", REWARD_JOB, cluster.address, key],
        capture_output=True,
        text=True,
        env=cluster.env(),
        cwd=ROOT,
        timeout=240,
    )
    assert job.returncode == 0, job.stdout + job.stderr
    results = json.loads(job.stdout.strip().splitlines()[-1])
    assert [r["passed"] for r in results["one"]] == [True, False]
    assert results["one"][0]["output"] == "graded\n"
    assert [r["passed"] for r in results["many"]] == [True] * 4 + [False]
    assert {r["node"] for r in results["many"]} <= {"a", "b"}
    ids = {r["eval_id"] for r in results["one"] + results["many"]}
    assert len(ids) == 7
    # the head did not place these: its own count of node runs did not move
    assert {name: n["completed"] for name, n in nodes(head).items()} == before

    def listed() -> set[str]:
        found = head.client(key).get("/api/evaluations", params={"limit": 100}).json()["evaluations"]
        return {e["eval_id"] for e in found} & ids

    wait_until(lambda: listed() == ids, 30, "the head recorded every run of the job under its key")
    recorded = head.client(key).get(f"/api/eval-status/{results['one'][1]['eval_id']}").json()
    assert recorded["batch_id"] == "ray:reward" and recorded["status"] == "completed"
    assert recorded["exit_code"] != 0 and "AssertionError" in recorded["error"]
    assert "assert add(2, 3) == 5" in recorded["code"]
