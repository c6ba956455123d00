"""`/ws`: real WebSocket clients see one evaluation's events in order."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets


async def collect_until_completed(ws, eval_id: str, timeout: float = 60) -> list[dict]:
    events = []
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            if event.get("eval_id") != eval_id:
                continue
            events.append(event)
            if event["type"] == "completed":
                return events


async def test_events_in_order_for_one_evaluation(server):
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.2)"
    async with websockets.connect(f"{server.ws_url}/ws?api_key={server.admin_key}") as ws:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"X-API-Key": server.admin_key}, timeout=30
        ) as client:
            eval_id = (await client.post("/api/eval", json={"code": code})).json()["eval_id"]
        events = await collect_until_completed(ws, eval_id)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "status_update" and events[0]["data"]["status"] == "running"
    assert kinds[-1] == "completed" and set(kinds[1:-1]) == {"output_chunk"}
    streamed = "".join(e["data"]["output"] for e in events if e["type"] == "output_chunk")
    assert streamed == "line 0\nline 1\nline 2\n"
    final = events[-1]["data"]
    assert final["status"] == "completed" and final["exit_code"] == 0 and final["success"] is True
    assert all(set(e) == {"type", "eval_id", "data"} for e in events)


async def test_subscribe_filters_to_one_evaluation(server):
    async with (
        websockets.connect(f"{server.ws_url}/ws?api_key={server.admin_key}") as ws,
        httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": server.admin_key}, timeout=30) as client,
    ):
        await ws.send(json.dumps({"action": "subscribe", "eval_id": "placeholder"}))
        other = (await client.post("/api/eval", json={"code": "print('other')"})).json()["eval_id"]
        mine = (await client.post("/api/eval", json={"code": "print('mine')"})).json()["eval_id"]
        await ws.send(json.dumps({"action": "subscribe", "eval_id": mine}))
        events = await collect_until_completed(ws, mine)
    assert all(e["eval_id"] == mine for e in events)
    assert other != mine


async def test_other_owners_events_are_not_sent(server):
    from tests.test_auth import create_key

    dave = create_key(server, "dave", owner="dave")
    async with websockets.connect(f"{server.ws_url}/ws?api_key={dave}") as dave_ws:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": server.admin_key}, timeout=30) as admin:
            admin_eval = (await admin.post("/api/eval", json={"code": "print('admin')"})).json()["eval_id"]
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": dave}, timeout=30) as client:
            dave_eval = (await client.post("/api/eval", json={"code": "print('dave')"})).json()["eval_id"]
        seen = []
        async with asyncio.timeout(60):
            while True:
                event = json.loads(await dave_ws.recv())
                seen.append(event["eval_id"])
                if event["type"] == "completed" and event["eval_id"] == dave_eval:
                    break
    assert admin_eval not in seen


async def test_unauthenticated_socket_gets_an_error_and_is_closed(server):
    async with websockets.connect(f"{server.ws_url}/ws") as ws:
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["data"]["status_code"] == 401
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()


async def test_bad_client_message_gets_an_error_event(server):
    async with websockets.connect(f"{server.ws_url}/ws?api_key={server.admin_key}") as ws:
        await ws.send("not json")
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["data"]["status_code"] == 400
        await ws.send(json.dumps({"action": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
