"""The batch lane through the API: a batch's Python items share one locked-down sandbox,
each in a fresh process with an empty work dir; owners never share; the sandbox goes
when the batch is done."""

from __future__ import annotations

from tests.support import eventually, wait_for_status

PROBE = """
import os, socket
print(socket.gethostname(), os.getpid(), sorted(os.listdir('.')), flush=True)
open('left_behind.txt', 'w').write('x')
"""


def submit_batch(client, items: list[dict]) -> tuple[str, list[str]]:
    response = client.post("/api/eval-batch", json={"evaluations": items})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["batch_id"], [item["eval_id"] for item in body["evaluations"]]


def wait_gone(docker_client, hostnames: set[str]) -> None:
    eventually(
        lambda: not any(c["Id"].startswith(tuple(hostnames)) for c in docker_client.api.containers(all=True)),
        message=f"sandbox(es) {hostnames} gone",
    )


def test_batch_items_share_a_sandbox_but_not_processes_or_files(server, docker_client):
    with server.admin() as client:
        batch_id, ids = submit_batch(client, [{"code": PROBE, "language": "python"} for _ in range(12)])
        results = [wait_for_status(client, eval_id) for eval_id in ids]
    assert batch_id.startswith("batch_")
    assert all(r["status"] == "completed" and r["batch_id"] == batch_id for r in results), results
    seen = [r["output"].split(maxsplit=2) for r in results]
    hosts = {host for host, _, _ in seen}
    assert len(hosts) == 1, "a batch's items run in one sandbox"
    assert len({pid for _, pid, _ in seen}) == 12, "each item is a fresh process"
    assert all(files.strip() == "[]" for _, _, files in seen), "each item starts in an empty work dir"
    wait_gone(docker_client, hosts)


def test_owners_never_share_a_sandbox(server):
    from tests.test_auth import create_key

    alice = create_key(server, "lane-alice", owner="lane-alice")
    bob = create_key(server, "lane-bob", owner="lane-bob")
    hosts = []
    for key in (alice, bob, alice):  # alice twice: one sandbox per batch, too
        with server.client(key) as client:
            ids = submit_batch(client, [{"code": PROBE} for _ in range(3)])[1]
            hosts.append({wait_for_status(client, i)["output"].split()[0] for i in ids})
    assert all(len(h) == 1 for h in hosts)
    assert len(set.union(*hosts)) == 3, "no sandbox is shared between owners or batches"


def test_leftover_processes_die_with_their_item(server):
    daemon = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(60)\n    os._exit(0)\nprint('started')"
    )
    count = "import os\nprint(sum(1 for p in os.listdir('/proc') if p.isdigit()))"
    with server.admin() as client:
        _, ids = submit_batch(client, [{"code": daemon}, {"code": count}])
        results = [wait_for_status(client, eval_id) for eval_id in ids]
    assert results[0]["output"] == "started\n"
    # The server, and this item: nothing of the previous item survived.
    assert int(results[1]["output"]) <= 2, results[1]


def test_limits_and_errors_per_item(server):
    items = [
        {"code": "import time\ntime.sleep(30)", "timeout": 1},
        {"code": "raise SystemExit(3)"},
        {"code": "print('y' * (2 * 1024 * 1024))"},
        {"code": "print('still fine')"},
    ]
    with server.admin() as client:
        _, ids = submit_batch(client, items)
        results = [wait_for_status(client, eval_id) for eval_id in ids]
    assert (results[0]["status"], results[0]["reason"]) == ("timeout", "timeout")
    assert results[1]["exit_code"] == 3 and results[1]["status"] == "completed"
    assert results[2]["reason"] == "output_truncated" and len(results[2]["output"]) == 1024 * 1024
    assert results[3]["output"] == "still fine\n"


def test_killing_one_item_leaves_the_rest(server):
    with server.admin() as client:
        _, ids = submit_batch(
            client,
            [
                {"code": "import time\nprint('go', flush=True)\ntime.sleep(600)", "timeout": 300},
                {"code": "print('after')"},
            ],
        )
        # A kill at any moment of a run takes (before its process starts, too).
        wait_for_status(client, ids[0], until=("running",))
        assert client.post(f"/api/eval/{ids[0]}/kill").json()["killed"] is True
        killed, after = wait_for_status(client, ids[0]), wait_for_status(client, ids[1])
    assert (killed["status"], killed["reason"]) == ("failed", "killed")
    assert after["output"] == "after\n"


def test_other_languages_and_files_in_a_batch_run_in_containers(server):
    with server.admin() as client:
        _, ids = submit_batch(
            client,
            [
                {"code": "console.log('js')", "language": "javascript"},
                {"code": "print(open('in.txt').read())", "files": {"in.txt": "from a file"}},
                {"code": "print('lane')"},
            ],
        )
        outputs = [wait_for_status(client, eval_id)["output"] for eval_id in ids]
    assert outputs == ["js\n", "from a file\n", "lane\n"]
