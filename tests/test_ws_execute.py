"""/ws/execute (sandbox-api.md "Real-time Execution"): output while the program runs,
then one completion; several clients and runs at once; a client that leaves cancels."""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from appliance.client import ApiError, ApplianceClient
from tests.support import HANG_SECONDS, eventually

# Sleeps until the test cancels it: what the test sees meanwhile happened while it ran.
UNTIL_CANCELLED = "import time\nprint({line!r}, flush=True)\ntime.sleep(600)"

PRINT_SLEEP_PRINT = "import sys, time\nprint('first')\nprint('warn', file=sys.stderr)\ntime.sleep(1)\nprint('second')"


@pytest.fixture
def admin(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def until_completion(stream, timeout: float = HANG_SECONDS) -> list:
    """Every message up to the completion."""
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        message = stream.receive(max(0.1, deadline - time.monotonic()))
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
    assert 1.0 <= completion.execution_time < HANG_SECONDS
    assert set(completion) >= {"type", "execution_id", "status", "exit_code", "execution_time"}
    assert admin.get_execution(execution_id).status == "completed"


def first_line(stream) -> tuple:
    """The accepted message of the run just sent, and the first line it printed (no
    completion may come before it; output may come in several pieces)."""
    accepted = stream.receive(HANG_SECONDS)
    assert accepted.type == "accepted", accepted
    printed = ""
    while "\n" not in printed:
        message = stream.receive(HANG_SECONDS)
        assert message.type in ("status", "output") and message.execution_id == accepted.execution_id, message
        if message.type == "output":
            assert message.stream == "stdout", message
            printed += message.data
    return accepted, printed


def test_first_output_arrives_before_the_program_ends(admin):
    with admin.execution_stream() as stream:
        stream.run("python", UNTIL_CANCELLED.format(line="first"), timeout=300)
        accepted, printed = first_line(stream)
        assert printed == "first\n"
        assert admin.get_execution(accepted.execution_id).status == "running"  # the program has not ended
        stream.cancel(accepted.execution_id)
        assert until_completion(stream)[-1].status == "cancelled"


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
        while len(completions) < 2:
            message = stream.receive(HANG_SECONDS)
            if message.type == "output":
                outputs[message.execution_id] = outputs.get(message.execution_id, "") + message.data
            elif message.type == "completion":
                completions[message.execution_id] = message
    assert sorted(outputs.values()) == ["run 1 start\nrun 1 end\n", "run 2 start\nrun 2 end\n"]
    assert all(c.status == "completed" for c in completions.values())
    assert set(outputs) == set(completions)


def test_concurrent_clients_each_get_their_own_output(server, admin):
    """Three clients, each with a run that only ends when cancelled: all three print while
    all three are running, so they ran at the same time."""
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ApplianceClient(server.url, api_key=server.admin_key)) for _ in range(3)]
        streams = [stack.enter_context(client.execution_stream()) for client in clients]
        for n, stream in enumerate(streams):
            stream.run("python", UNTIL_CANCELLED.format(line=f"client {n}"), timeout=300)
        firsts = [first_line(stream) for stream in streams]
        for n, (accepted, printed) in enumerate(firsts):
            assert printed == f"client {n}\n"
            assert admin.get_execution(accepted.execution_id).status == "running"
        for stream, (accepted, _) in zip(streams, firsts, strict=True):
            stream.cancel(accepted.execution_id)
            messages = until_completion(stream)
            assert messages[-1].status == "cancelled", messages
            assert not [m for m in messages if m.type == "output"], messages  # nothing of the others


def test_a_client_that_disconnects_cancels_its_execution(admin, docker_client):
    with admin.execution_stream() as stream:
        stream.run(
            "python", "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(600)", timeout=300
        )
        accepted, printed = first_line(stream)
        accepted_id, hostname = accepted.execution_id, printed.strip()
    # The connection is closed; the execution must end as cancelled and its container go.
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    state = eventually(
        lambda: (state := admin.get_execution(accepted_id)).status != "running" and state,
        message="the execution ending",
    )
    assert state.status == "cancelled" and state.progress == 1.0 and state.execution_time < HANG_SECONDS
    eventually(
        lambda: not docker_client.containers.list(all=True, ignore_removed=True, filters={"id": hostname}),
        message="the container of a cancelled execution gone",
    )


def test_cancel_message_cancels_a_run_of_this_connection(admin):
    with admin.execution_stream() as stream:
        stream.run("python", UNTIL_CANCELLED.format(line="up"), timeout=300)
        accepted, _ = first_line(stream)
        stream.cancel(accepted.execution_id)
        completion = until_completion(stream)[-1]
        stream.cancel("exec_not_mine")
        refused = stream.receive(HANG_SECONDS)
    assert completion.status == "cancelled" and completion.execution_id == accepted.execution_id
    assert refused.type == "error" and refused.error.code == "VALIDATION_ERROR"


def test_bad_messages_get_an_error_and_the_connection_stays(admin, server):
    with admin.execution_stream() as stream:
        stream.connection.send("{not json")
        not_json = stream.receive(HANG_SECONDS)
        stream.send({"type": "launch"})
        unknown = stream.receive(HANG_SECONDS)
        stream.run("cobol", "DISPLAY 'HI'")
        bad_language = stream.receive(HANG_SECONDS)
        stream.send({"type": "execute", "language": "python", "code": "print(1)", "memory_limit": "lots"})
        bad_memory = stream.receive(HANG_SECONDS)
        stream.send({"type": "cancel", "execution_id": ["exec_1"]})
        bad_id = stream.receive(HANG_SECONDS)
        stream.send({"type": "ping"})
        pong = stream.receive(HANG_SECONDS)
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
    with connect(url, open_timeout=HANG_SECONDS) as ws:
        message = json.loads(ws.recv(HANG_SECONDS))
        with pytest.raises(ConnectionClosed):
            ws.recv(HANG_SECONDS)
        return message, ws.close_code


def test_authentication_is_required_and_needs_execute(admin, server):
    message, code = refused_connection(f"{server.ws_url}/ws/execute")
    assert message["type"] == "error" and message["error"]["code"] == "AUTHENTICATION_REQUIRED" and code == 1008
    reader = admin.create_api_key("ws-exec-reader", ["sandbox_read"])
    message, code = refused_connection(f"{server.ws_url}/ws/execute?api_key={reader.api_key}")
    assert message["error"]["code"] == "INSUFFICIENT_PERMISSIONS" and message["status"] == 403 and code == 1008
    # A key in the query string works as well as the header the client sends.
    with connect(f"{server.ws_url}/ws/execute?api_key={server.admin_key}", open_timeout=HANG_SECONDS) as ws:
        ws.send(json.dumps({"type": "execute", "language": "bash", "code": "echo via-query"}))
        seen = []
        while not seen or seen[-1]["type"] != "completion":
            seen.append(json.loads(ws.recv(HANG_SECONDS)))
    assert "".join(m.get("data", "") for m in seen if m["type"] == "output") == "via-query\n"
