"""`/socket/websocket` on a running server (real uvicorn on loopback, real Docker):
the official `phoenix` JavaScript client (npm, under Node 20, with `ws` as its
transport: tests/phoenix_client, installed by `scripts/setup.sh --test`) sees a 3x3 code
experiment's progress and runs as they happen; a plain WebSocket client checks the
frame-level cases (handshake refusals, bad frames, unknown topics, heartbeats and their
timeout)."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.experiments_support import start_v1_server

pytestmark = pytest.mark.slow

CLIENT_DIR = Path(__file__).parent / "phoenix_client"
HEARTBEAT_TIMEOUT = 2.0  # the server's; the phoenix client here beats every 0.5 s

TRAINING = r"""
import json, time
hp = json.load(open("hyperparameters.json"))
for step in range(2):
    print(json.dumps({"metrics": {"loss": hp["lr"] * hp["bs"] / (step + 1)}, "step": step}), flush=True)
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def live(runtime_images, tmp_path_factory):
    server = start_v1_server(
        tmp_path_factory.mktemp("live"),
        env={
            "APPLIANCE_SOCKET_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT),
            "APPLIANCE_DASHBOARD_INTERVAL_SECONDS": "0.3",
        },
    )
    yield server
    server.stop()


def new_key(server, owner: str, permissions: list[str]) -> str:
    with server.admin() as admin:
        response = admin.post("/auth/api-keys", json={"name": owner, "owner": owner, "permissions": permissions})
    assert response.status_code in (200, 201), response.text
    return response.json()["api_key"]


class PhoenixClient:
    """tests/phoenix_client/watch.mjs: commands in as JSON lines, what happened out."""

    def __init__(self, server, token: str) -> None:
        if shutil.which("node") is None or not (CLIENT_DIR / "node_modules" / "phoenix").is_dir():
            pytest.fail(
                "the phoenix client is not installed: run scripts/setup.sh --test (npm ci in tests/phoenix_client)"
            )
        endpoint = server.ws_url + "/socket"
        self.proc = subprocess.Popen(
            ["node", "watch.mjs", endpoint, token],
            cwd=CLIENT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, **command) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, wanted: Callable[[dict], bool], timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in {timeout} s; seen: {self.seen[-20:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if wanted(line):
                return line

    def wait_for_each(self, *wanted: Callable[[dict], bool], timeout: float = 30) -> list[dict]:
        """The first line seen (so far or from now) for each of `wanted`, in whatever
        order they come."""

        def found() -> list[dict] | None:
            firsts = [next((m for m in self.seen if w(m)), None) for w in wanted]
            return None if None in firsts else firsts  # type: ignore[return-value]

        if found() is None:
            self.wait_for(lambda _: found() is not None, timeout)
        return found() or []

    def join(self, topic: str) -> dict:
        self.send(join=topic)
        return self.wait_for(lambda m: m["kind"] == "join" and m["topic"] == topic)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def phoenix_client(live):
    made: list[PhoenixClient] = []

    def open_client(token: str | None = None) -> PhoenixClient:
        client = PhoenixClient(live, token or live.admin_key)
        made.append(client)
        return client

    yield open_client
    for client in made:
        client.close()


# --- the phoenix client -----------------------------------------------------------------


def test_a_3x3_code_experiment_shows_its_progress_and_runs_in_the_phoenix_client(live, phoenix_client):
    owner_key = new_key(live, "ada", ["read", "execute"])
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {owner_key}"}, timeout=30)
    config = {
        "type": "code",
        "language": "python",
        "code": TRAINING,
        "grid": {"lr": [0.1, 0.01, 0.001], "bs": [16, 32, 64]},
        "max_parallel": 3,
    }
    created = http.post("/api/v1/experiments", json={"experiment": {"name": "3x3", "config": config}})
    assert created.status_code == 201, created.text
    experiment_id = created.json()["data"]["id"]

    client = phoenix_client(owner_key)
    assert client.wait_for(lambda m: m["kind"] == "open")["transport"] == "WebSocket"  # not long polling
    topic = f"experiment:{experiment_id}"
    assert client.join(topic)["status"] == "ok"
    assert http.post(f"/api/v1/experiments/{experiment_id}/start").status_code == 200

    def final(m: dict) -> bool:
        return m.get("event") == "status_changed" and m["payload"]["status"] == "completed"

    client.wait_for(final, timeout=240)
    messages = [m for m in client.seen if m["kind"] == "message" and m["topic"] == topic]
    events = [m["event"] for m in messages]
    assert events[0] == "status_changed" and messages[0]["payload"]["status"] == "running"
    runs = [m["payload"] for m in messages if m["event"] == "run_completed"]
    assert len(runs) == 9 and len({r["run_id"] for r in runs}) == 9
    assert all(r["status"] == "completed" and "loss" in r["metrics"] for r in runs), runs
    progress = [m["payload"] for m in messages if m["event"] == "progress_updated"]
    assert all(set(p) >= {"progress", "eta_seconds"} for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[-1] == 1.0
    assert any(p["eta_seconds"] is not None for p in progress)  # estimated once a run ended
    assert len(progress) >= 10  # one at the start, then one after each run's end
    assert "error" not in events

    details = http.get(f"/api/v1/experiments/{experiment_id}").json()["data"]
    assert details["status"] == "completed"


def test_joins_the_token_may_not_make_are_refused_and_the_socket_stays(live, phoenix_client):
    with live.admin() as admin:
        made = admin.post(
            "/api/v1/experiments", json={"experiment": {"name": "admins", "config": {"type": "external"}}}
        )
    assert made.status_code == 201, made.text
    theirs = made.json()["data"]["id"]
    client = phoenix_client(new_key(live, "bea", ["read"]))
    refused = client.join(f"experiment:{theirs}")
    assert refused["status"] == "error" and refused["response"]["reason"] == "not_found"
    assert client.join(f"telemetry:{theirs}")["response"]["reason"] == "not_found"
    assert client.join("dashboard:admin")["response"]["reason"] == "forbidden"
    assert client.join("lobby:1")["response"]["reason"] == "unmatched topic"
    assert client.join("telemetry:all")["status"] == "ok"
    # Still the same socket: the dashboard of its own user comes every 0.3 s.
    assert client.join("dashboard:bea")["status"] == "ok"
    stats = client.wait_for(lambda m: m.get("event") == "system_stats")["payload"]
    assert set(stats) >= {"cpu", "memory", "gpu"}
    summary = client.wait_for(lambda m: m.get("event") == "experiment_summary")["payload"]
    assert summary == {"active": 0, "completed_today": 0}
    assert not [m for m in client.seen if m["kind"] in ("close", "socket_error")]


def test_a_bad_token_is_refused_before_the_socket_is_accepted(live, phoenix_client):
    client = phoenix_client("ak_not_a_key")
    client.wait_for(lambda m: m["kind"] == "socket_error", timeout=10)
    assert not [m for m in client.seen if m["kind"] == "open"]


# --- plain WebSocket clients ------------------------------------------------------------


def socket_url(server, token: str | None, vsn: str = "2.0.0") -> str:
    query = f"?vsn={vsn}" + (f"&token={token}" if token else "")
    return f"{server.ws_url}/socket/websocket{query}"


async def recv_frame(ws) -> list:
    return json.loads(await ws.recv())


@pytest.mark.parametrize(
    "token, vsn", [(None, "2.0.0"), ("ak_wrong", "2.0.0"), ("not-a-jwt", "2.0.0"), ("admin", "1.0.0")]
)
async def test_the_handshake_is_refused_without_a_good_token_or_with_another_vsn(live, token, vsn):
    token = live.admin_key if token == "admin" else token
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(socket_url(live, token, vsn)):
            pass
    assert refused.value.response.status_code == 403


async def test_a_key_without_read_is_refused_at_the_handshake(live):
    with pytest.raises(InvalidStatus):
        async with websockets.connect(socket_url(live, new_key(live, "cy", ["execute"]))):
            pass


async def test_heartbeats_joins_and_pushes_frame_by_frame(live):
    async with websockets.connect(socket_url(live, live.admin_key)) as ws:
        await ws.send('[null,"1","phoenix","heartbeat",{}]')
        assert await recv_frame(ws) == [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
        await ws.send('["2","2","nowhere:1","phx_join",{}]')
        reply = await recv_frame(ws)
        assert reply[:4] == ["2", "2", "nowhere:1", "phx_reply"] and reply[4]["status"] == "error"
        assert reply[4]["response"]["reason"] == "unmatched topic"
        await ws.send('["3","3","telemetry:all","subscribe",{"event_types":["a"]}]')  # not joined
        assert (await recv_frame(ws))[4]["response"]["reason"] == "unmatched topic"
        await ws.send('["4","4","telemetry:all","phx_join",{}]')
        assert await recv_frame(ws) == ["4", "4", "telemetry:all", "phx_reply", {"status": "ok", "response": {}}]
        await ws.send('["4","5","telemetry:all","nonsense",{}]')
        assert (await recv_frame(ws))[4]["status"] == "error"
        await ws.send('["4","6","telemetry:all","phx_leave",{}]')
        assert (await recv_frame(ws))[3:] == ["phx_reply", {"status": "ok", "response": {}}]
        assert await recv_frame(ws) == ["4", "4", "telemetry:all", "phx_close", {}]


@pytest.mark.parametrize(
    "sent, code, says",
    [
        ("not json", 1007, "not JSON"),
        ('{"topic": "phoenix"}', 1007, "Phoenix V2 frame"),
        ('["1","1","phoenix","heartbeat"]', 1007, "Phoenix V2 frame"),
        (b"\x00\x01", 1003, "binary"),
    ],
)
async def test_a_bad_frame_closes_the_socket_saying_why(live, sent, code, says):
    async with websockets.connect(socket_url(live, live.admin_key)) as ws:
        await ws.send(sent)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code and says in closed.value.rcvd.reason


async def test_a_silent_socket_is_closed_after_the_heartbeat_timeout_and_a_beating_one_is_not(live):
    async with (
        websockets.connect(socket_url(live, live.admin_key)) as silent,
        websockets.connect(socket_url(live, live.admin_key)) as beating,
    ):
        started = time.monotonic()
        for i in range(int(HEARTBEAT_TIMEOUT * 2 / 0.5)):
            await beating.send(f'[null,"{i}","phoenix","heartbeat",{{}}]')
            await recv_frame(beating)
            await asyncio.sleep(0.5)
        with pytest.raises(ConnectionClosed) as closed:
            await silent.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert "heartbeat" in closed.value.rcvd.reason
        assert time.monotonic() - started >= HEARTBEAT_TIMEOUT
        await beating.send('[null,"x","phoenix","heartbeat",{}]')
        assert (await recv_frame(beating))[1] == "x"  # still open after twice the timeout


def test_a_telemetry_batch_ingested_through_the_api_reaches_telemetry_subscribers(live, phoenix_client):
    key = new_key(live, "dee", ["read", "execute"])
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    made = http.post("/api/v1/experiments", json={"experiment": {"name": "tele", "config": {"type": "external"}}})
    experiment_id = made.json()["data"]["id"]
    client = phoenix_client(key)
    assert client.join("telemetry:all")["status"] == "ok"
    assert client.join(f"telemetry:{experiment_id}")["status"] == "ok"
    client.send(push="telemetry:all", event="subscribe", payload={"event_types": ["model.inference"]})
    reply = client.wait_for(lambda m: m["kind"] == "reply")
    assert reply["status"] == "ok" and reply["response"]["event_types"] == ["model.inference"]
    events = [
        {
            "event_name": ["crucible", "model", "inference"],
            "measurements": {"duration_ms": 234, "tokens": 150},
            "metadata": {"experiment_id": experiment_id, "model": "gpt-4"},
        },
        {"event_name": ["crucible", "run", "step"], "measurements": {"loss": 0.5}, "metadata": {}},
    ]
    ingested = http.post("/api/v1/telemetry/events", json={"events": events})
    assert ingested.status_code in (200, 201, 202), ingested.text

    def pushed(topic: str) -> Callable[[dict], bool]:
        return lambda m: m["kind"] == "message" and m["topic"] == topic and m["event"] == "event"

    to_all, to_experiment = (
        m["payload"] for m in client.wait_for_each(pushed("telemetry:all"), pushed(f"telemetry:{experiment_id}"))
    )
    assert to_all == to_experiment
    assert to_all["event_name"] == ["crucible", "model", "inference"] and to_all["measurements"]["tokens"] == 150
    stored = http.get("/api/v1/telemetry/events", params={"filter[experiment_id]": experiment_id}).json()["data"]
    assert [e["id"] for e in stored] == [to_all["id"]]
    assert stored[0]["timestamp"] == to_all["timestamp"] or stored[0]["timestamp"][:19] == to_all["timestamp"][:19]
    time.sleep(0.5)  # the run.step event went to neither: one is filtered by type, the other by experiment
    assert len([m for m in client.seen if m.get("event") == "event"]) == 2
    while not client.lines.empty():
        assert client.lines.get().get("event") != "event"


def test_a_run_reported_from_outside_sends_run_completed_when_it_ends(live, phoenix_client):
    key = new_key(live, "eve", ["read", "execute"])
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    made = http.post("/api/v1/experiments", json={"experiment": {"name": "outside", "config": {"type": "external"}}})
    experiment_id = made.json()["data"]["id"]
    client = phoenix_client(key)
    assert client.join(f"experiment:{experiment_id}")["status"] == "ok"
    run = http.post(f"/api/v1/experiments/{experiment_id}/runs", json={"run": {}})
    assert run.status_code == 201, run.text
    run_id = run.json()["data"]["id"]
    logged = http.post(f"/api/v1/runs/{run_id}/metrics", json={"metrics": [{"metrics": {"acc": 0.9}}]})
    assert logged.status_code in (200, 201), logged.text
    assert http.post(f"/api/v1/runs/{run_id}/end", json={"status": "failed", "error": "diverged"}).status_code == 200
    ended = client.wait_for(lambda m: m.get("event") == "run_completed")["payload"]
    assert ended == {"run_id": run_id, "status": "failed", "metrics": {"acc": 0.9}, "reason": None}
    error = client.wait_for(lambda m: m.get("event") == "error")["payload"]
    assert error == {"message": "diverged", "code": "run_failed"}
    client.wait_for(lambda m: m.get("event") == "progress_updated")
