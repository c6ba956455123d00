"""/ws/execute (sandbox-api.md "Real-time Execution"): output while the program runs,
then one completion; several clients and runs at once; a client that leaves cancels."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from appliance.client import ApiError, ApplianceClient

PRINT_SLEEP_PRINT = "import sys, time\nprint('first')\nprint('warn', file=sys.stderr)\ntime.sleep(1)\nprint('second')"


@pytest.fixture
def admin(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def until_completion(stream, timeout: float = 60) -> list:
    """Every message up to the completion, each with the time it arrived."""
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        message = stream.receive(max(0.1, deadline - time.monotonic()))
        message["_at"] = time.monotonic()
        messages.append(message)
        if message.type == "completion":
            return messages


def test_output_streams_while_the_program_runs_then_one_completion(admin):
    messages = list(admin.stream_execute("python", PRINT_SLEEP_PRINT, timeout=30))
    kinds = [m.type for m in messages]
    assert kinds[0] == "accepted" and kinds[-1] == "completion" and kinds.count("completion") == 1
    assert set(kinds[1:-1]) <= {"status", "output"}, kinds
    execution_id = messages[0].execution_id
    assert all(m.execution_id == execution_id for m in messages)
    stdout = "".join(m.data for m in messages if m.type == "output" and m.stream == "stdout")
    stderr = "".join(m.data for m in messages if m.type == "output" and m.stream == "stderr")
    assert (stdout, stderr) == ("first\nsecond\n", "warn\n")
    completion = messages[-1]
    assert completion.status == "completed" and completion.exit_code == 0
    assert 1.0 <= completion.execution_time < 10
    assert set(completion) >= {"type", "execution_id", "status", "exit_code", "execution_time"}
    assert admin.get_execution(execution_id).status == "completed"


def test_first_output_arrives_before_the_program_ends(admin):
    with admin.execution_stream() as stream:
        stream.run("python", PRINT_SLEEP_PRINT)
        messages = until_completion(stream)
    first = next(m for m in messages if m.type == "output" and "first" in m.data)
    second = next(m for m in messages if m.type == "output" and "second" in m.data)
    # 'first' was sent while the program slept, a second before 'second' and the end.
    assert second["_at"] - first["_at"] > 0.7 and messages[-1]["_at"] - first["_at"] > 0.7
    assert messages.index(first) < messages.index(second) < len(messages) - 1


def test_completion_matches_get_and_failures_are_reported(admin):
    with admin.execution_stream() as stream:
        stream.run("python", "import sys\nprint('x' * 10)\nsys.exit(4)", files={"in.txt": "data"})
        failed = until_completion(stream)[-1]
        stream.run("python", "open('made.txt', 'w').write('abc')", memory_limit="128M", environment={"A": "b"})
        made = until_completion(stream)[-1]
    assert (failed.status, failed.exit_code) == ("failed", 4)
    assert admin.get_execution(failed.execution_id).status == "failed"
    assert made.status == "completed" and made.files_created == [{"name": "made.txt", "size": 3}]


def test_several_runs_at_once_on_one_connection(admin):
    code = "import time\nprint('run {n} start', flush=True)\ntime.sleep(1)\nprint('run {n} end')"
    with admin.execution_stream() as stream:
        for n in (1, 2):
            stream.run("python", code.format(n=n))
        outputs: dict[str, str] = {}
        completions = {}
        deadline = time.monotonic() + 60
        while len(completions) < 2:
            message = stream.receive(max(0.1, deadline - time.monotonic()))
            if message.type == "output":
                outputs[message.execution_id] = outputs.get(message.execution_id, "") + message.data
            elif message.type == "completion":
                completions[message.execution_id] = message
    assert sorted(outputs.values()) == ["run 1 start\nrun 1 end\n", "run 2 start\nrun 2 end\n"]
    assert all(c.status == "completed" for c in completions.values())
    assert set(outputs) == set(completions)


def test_concurrent_clients_each_get_their_own_output(server):
    results: dict[int, list] = {}
    code = "import time\nprint('client {n}', flush=True)\ntime.sleep(1.5)\nprint('bye {n}')"

    def one_client(n: int) -> None:
        with ApplianceClient(server.url, api_key=server.admin_key) as client:
            results[n] = list(client.stream_execute("python", code.format(n=n)))

    started = time.monotonic()
    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    elapsed = time.monotonic() - started
    assert sorted(results) == [0, 1, 2]
    for n, messages in results.items():
        output = "".join(m.data for m in messages if m.type == "output")
        assert output == f"client {n}\nbye {n}\n" and messages[-1].status == "completed"
    assert elapsed < 4.0, f"three 1.5 s runs took {elapsed:.1f} s: they did not run at the same time"


def test_a_client_that_disconnects_cancels_its_execution(admin, docker_client):
    with admin.execution_stream() as stream:
        stream.run(
            "python", "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(60)", timeout=120
        )
        accepted = stream.receive(30)
        hostname = ""
        while not hostname:
            message = stream.receive(30)
            if message.type == "output":
                hostname = message.data.strip()
    # The connection is closed; the execution must end as cancelled and its container go.
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    deadline = time.monotonic() + 20
    while (state := admin.get_execution(accepted.execution_id)).status == "running":
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state.status == "cancelled" and state.progress == 1.0 and state.execution_time < 30
    while docker_client.containers.list(all=True, ignore_removed=True, filters={"id": hostname}):
        assert time.monotonic() < deadline, "the container of a cancelled execution is still there"
        time.sleep(0.2)


def test_cancel_message_cancels_a_run_of_this_connection(admin):
    with admin.execution_stream() as stream:
        stream.run("python", "import time\nprint('up', flush=True)\ntime.sleep(60)")
        accepted = stream.receive(30)
        while stream.receive(30).type != "output":
            pass
        stream.cancel(accepted.execution_id)
        completion = until_completion(stream)[-1]
        stream.cancel("exec_not_mine")
        refused = stream.receive(10)
    assert completion.status == "cancelled" and completion.execution_id == accepted.execution_id
    assert refused.type == "error" and refused.error.code == "VALIDATION_ERROR"


def test_bad_messages_get_an_error_and_the_connection_stays(admin, server):
    with admin.execution_stream() as stream:
        stream.connection.send("{not json")
        not_json = stream.receive(10)
        stream.send({"type": "launch"})
        unknown = stream.receive(10)
        stream.run("cobol", "DISPLAY 'HI'")
        bad_language = stream.receive(10)
        stream.send({"type": "execute", "language": "python", "code": "print(1)", "memory_limit": "lots"})
        bad_memory = stream.receive(10)
        stream.send({"type": "cancel", "execution_id": ["exec_1"]})
        bad_id = stream.receive(10)
        stream.send({"type": "ping"})
        pong = stream.receive(10)
    for message in (not_json, unknown, bad_language, bad_memory, bad_id):
        assert message.type == "error" and message.status == 400, message
        assert set(message.error) == {"code", "message", "details", "request_id"}
        assert message.error.code == "VALIDATION_ERROR" and message.error.request_id.startswith("req_")
    assert "unknown language" in bad_language.error.message and bad_memory.error.details["field"] == "memory_limit"
    assert bad_id.error.details["field"] == "execution_id"
    assert pong == {"type": "pong"}
    with pytest.raises(ApiError) as caught:
        list(admin.stream_execute("python", "print(1)", timeout=-5))
    assert caught.value.status_code == 400 and "timeout" in caught.value.message


def refused_connection(url: str) -> tuple[dict, int | None]:
    with connect(url, open_timeout=10) as ws:
        message = json.loads(ws.recv(10))
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        return message, ws.close_code


def test_authentication_is_required_and_needs_execute(admin, server):
    message, code = refused_connection(f"{server.ws_url}/ws/execute")
    assert message["type"] == "error" and message["error"]["code"] == "AUTHENTICATION_REQUIRED" and code == 1008
    reader = admin.create_api_key("ws-exec-reader", ["sandbox_read"])
    message, code = refused_connection(f"{server.ws_url}/ws/execute?api_key={reader.api_key}")
    assert message["error"]["code"] == "INSUFFICIENT_PERMISSIONS" and message["status"] == 403 and code == 1008
    # A key in the query string works as well as the header the client sends.
    with connect(f"{server.ws_url}/ws/execute?api_key={server.admin_key}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "execute", "language": "bash", "code": "echo via-query"}))
        seen = []
        while not seen or seen[-1]["type"] != "completion":
            seen.append(json.loads(ws.recv(30)))
    assert "".join(m.get("data", "") for m in seen if m["type"] == "output") == "via-query\n"
