"""Evaluations running in real containers: languages, results, limits, containment."""

from __future__ import annotations

import pytest

from tests.support import HANG_SECONDS, eventually, run_eval, wait_for_status

HELLO = {
    "python": "print('Hello, World!')",
    "javascript": "console.log('Hello, World!')",
    "bash": "echo 'Hello, World!'",
    "c": '#include <stdio.h>\nint main(void) { printf("Hello, World!\\n"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "Hello, World!" << std::endl; }',
}


@pytest.mark.parametrize("language", sorted(HELLO))
def test_hello_world_in_each_language(server, language):
    with server.admin() as client:
        result = run_eval(client, HELLO[language], language)
    assert result["status"] == "completed", result
    assert result["output"] == "Hello, World!\n"
    assert result["error"] == ""
    assert result["success"] is True and result["exit_code"] == 0
    assert result["created_at"].endswith("Z") and result["completed_at"].endswith("Z")


def test_submit_response_as_documented(server):
    with server.admin() as client:
        response = client.post(
            "/api/eval", json={"code": "print(1)", "language": "python", "engine": "docker", "timeout": 30}
        )
        body = response.json()
        assert response.status_code == 200
        assert set(body) == {"eval_id", "status", "message", "queue_position"}
        assert body["status"] == "queued" and body["queue_position"] >= 1
        assert body["eval_id"].startswith("eval_") and len(body["eval_id"].split("_")) == 4
        assert body["message"] == "Evaluation queued successfully"
        wait_for_status(client, body["eval_id"])


def test_stdout_stderr_and_exit_code(server):
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"
    with server.admin() as client:
        result = run_eval(client, code)
        logs = client.get(f"/api/eval/{result['eval_id']}/logs").json()
    assert result["status"] == "completed" and result["success"] is False
    assert result["exit_code"] == 3
    assert result["output"] == "out\n" and result["error"] == "err\n"
    assert logs == {
        "eval_id": result["eval_id"],
        "output": "out\n",
        "error": "err\n",
        "is_running": False,
        "exit_code": 3,
        "status": "completed",
    }


def test_compile_error_is_reported(server):
    with server.admin() as client:
        result = run_eval(client, "int main( { return 0; }", "c")
    assert result["status"] == "completed" and result["success"] is False
    assert "error" in result["error"]


def test_timeout_is_enforced_from_outside(server):
    with server.admin() as client:
        result = run_eval(client, "import time\nprint('start', flush=True)\ntime.sleep(600)", timeout=2)
    assert result["status"] == "timeout" and result["reason"] == "timeout"
    assert result["output"] == "start\n"
    assert 2 <= result["execution_time"] < HANG_SECONDS  # ended by the timeout, not by the program


def test_kill_a_running_evaluation(server):
    with server.admin() as client:
        eval_id = client.post(
            "/api/eval", json={"code": "import time\nprint('go', flush=True)\ntime.sleep(600)", "timeout": 300}
        ).json()["eval_id"]
        wait_for_status(client, eval_id, until=("running",))
        logs = eventually(
            lambda: "go" in (body := client.get(f"/api/eval/{eval_id}/logs").json())["output"] and body,
            message="'go' in the running evaluation's output",
        )
        assert logs["is_running"] is True and logs["status"] == "running"
        killed = client.post(f"/api/eval/{eval_id}/kill").json()
        assert killed == {"eval_id": eval_id, "killed": True, "message": "Evaluation terminated successfully"}
        result = wait_for_status(client, eval_id)
        assert result["status"] == "failed" and result["reason"] == "killed"
        again = client.post(f"/api/eval/{eval_id}/kill").json()
        assert again["killed"] is False and "already finished" in again["message"]


def test_output_is_capped_and_marked_truncated(server):
    code = "import sys\nsys.stdout.write('x' * (3 * 1024 * 1024))\nprint('tail')"
    with server.admin() as client:
        result = run_eval(client, code)
    assert result["status"] == "completed"
    assert result["output_truncated"] is True and result["reason"] == "output_truncated"
    assert len(result["output"]) == 1024 * 1024


@pytest.mark.slow
def test_endless_output_flood_is_stopped(server):
    with server.admin() as client:
        result = run_eval(client, "while True:\n    print('y' * 4096)", timeout=60)
        assert client.get("/api/status").status_code == 200
    assert result["status"] == "failed" and result["reason"] == "output_limit", server.log()[-3000:]
    assert result["output_truncated"] is True


@pytest.mark.slow
def test_fork_bomb_is_contained(server):
    code = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n"
        "    print('stopped after', n, type(e).__name__, flush=True)\n"
    )
    with server.admin() as client:
        eval_id = client.post("/api/eval", json={"code": code, "timeout": 10}).json()["eval_id"]
        wait_for_status(client, eval_id, until=("running", "completed", "failed", "timeout"))
        # The server answers while the bomb goes off (how fast: bench/status_under_load.py).
        assert client.get("/api/status").status_code == 200
        result = wait_for_status(client, eval_id)
    assert "stopped after" in result["output"]
    assert int(result["output"].split()[2]) < 64


@pytest.mark.slow
def test_shell_fork_bomb_is_contained(server):
    with server.admin() as client:
        result = run_eval(client, ":(){ :|:& };:", "bash", timeout=5)
        assert client.get("/api/status").status_code == 200
    assert result["status"] in ("timeout", "completed", "failed")


@pytest.mark.slow
def test_memory_bomb_is_killed(server):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    with server.admin() as client:
        result = run_eval(client, code, timeout=30)
        assert client.get("/api/status").status_code == 200
    assert result["status"] == "failed" and result["reason"] == "memory_limit", result
    assert result["exit_code"] == 137


def test_no_network_inside(server):
    code = (
        "import socket, os\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "try:\n    socket.getaddrinfo('deb.debian.org', 80)\n    print('dns ok')\n"
        "except OSError as e:\n    print('dns failed')\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect(('127.0.0.1', 9))\n    print('connected')\nexcept OSError:\n    print('connect failed')\n"
    )
    with server.admin() as client:
        result = run_eval(client, code)
    assert result["output"].splitlines() == ["['lo']", "dns failed", "connect failed"]


def test_sandbox_profile(server):
    code = (
        "import os, resource\n"
        "print('uid', os.getuid())\n"
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith('CapEff')][0].split()[1])\n"
        "print([l for l in status.splitlines() if l.startswith('NoNewPrivs')][0].split()[1])\n"
        "try:\n    open('/etc/evil', 'w')\n    print('root writable')\nexcept OSError:\n    print('root read-only')\n"
        "open('/work/ok', 'w').write('x'); print('work writable')\n"
        "print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "print('fsize', resource.getrlimit(resource.RLIMIT_FSIZE)[0])\n"
    )
    with server.admin() as client:
        lines = run_eval(client, code)["output"].splitlines()
    assert lines == [
        "uid 65534",
        "0000000000000000",
        "1",
        "root read-only",
        "work writable",
        "nofile 256",
        f"fsize {16 * 1024 * 1024}",
    ]


def test_work_dir_is_size_capped(server):
    code = (
        "data = b'z' * (1024 * 1024)\nn = 0\ntry:\n    with open('/work/fill', 'wb') as f:\n"
        "        while True:\n            f.write(data); f.flush(); n += 1\nexcept OSError as e:\n"
        "    print('stopped at', n, 'MiB', e.errno)\n"
    )
    with server.admin() as client:
        result = run_eval(client, code)
    assert "stopped at" in result["output"]
    assert int(result["output"].split()[2]) <= 64


def test_each_run_gets_a_fresh_container(server):
    with server.admin() as client:
        run_eval(client, "open('/work/left-behind', 'w').write('secret')")
        result = run_eval(client, "import os\nprint(os.path.exists('/work/left-behind'))")
    assert result["output"] == "False\n"


def test_containers_are_removed_after_use(server, docker_client):
    with server.admin() as client:
        result = run_eval(client, "print('bye')")
    label = f"appliance.eval_id={result['eval_id']}"
    eventually(
        lambda: not docker_client.containers.list(all=True, ignore_removed=True, filters={"label": label}),
        message="container gone",
    )


def test_batch_runs_every_item(server):
    with server.admin() as client:
        body = {"evaluations": [{"code": f"print({n})", "language": "python", "timeout": 30} for n in range(5)]}
        response = client.post("/api/eval-batch", json=body)
        assert response.status_code == 200
        batch = response.json()
        assert batch["total"] == 5 and batch["queued"] == 5 and batch["failed"] == 0
        outputs = [wait_for_status(client, item["eval_id"])["output"] for item in batch["evaluations"]]
    assert outputs == [f"{n}\n" for n in range(5)]


def test_history_pagination_and_filter(server):
    with server.admin() as client:
        for n in range(3):
            run_eval(client, f"print({n})")
        page = client.get("/api/evaluations", params={"limit": 2, "offset": 0, "status": "completed"}).json()
        assert page["limit"] == 2 and page["offset"] == 0 and len(page["evaluations"]) == 2
        assert page["count"] >= 3 and page["has_more"] is True
        assert all(e["status"] == "completed" for e in page["evaluations"])
        item = page["evaluations"][0]
        assert set(item) >= {"eval_id", "status", "created_at", "code_preview", "success"}
        last = client.get(
            "/api/evaluations", params={"limit": 2, "offset": page["count"] - 1, "status": "completed"}
        ).json()
        assert len(last["evaluations"]) == 1 and last["has_more"] is False


def test_queue_and_platform_status(server):
    with server.admin() as client:
        queue = client.get("/api/queue-status").json()
        status = client.get("/api/status").json()
    assert set(queue) == {"queued", "processing", "queue_length", "total_tasks"}
    assert queue["queue_length"] == queue["queued"] + queue["processing"]
    assert status["platform"] == "healthy"
    assert status["services"] == {"gateway": "healthy", "queue": "healthy", "storage": "healthy", "executor": "healthy"}
    assert status["storage"]["total_evaluations"] >= 1
    assert "completed" in status["storage"]["by_status"]
    assert status["version"]
