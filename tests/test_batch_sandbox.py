"""The batch lane: many executions in one locked-down container, each one isolated.

Real Docker, the real python runtime image. Every test starts its own sandbox (a few
tenths of a second) and most run several executions in it, since what matters is that
nothing of one execution reaches the next. Each runs three ways: under runc, under runc
with the authenticating relay (the default under gVisor), and under gVisor, which
scripts/setup.sh installs (a missing runsc is a broken set-up, as in test_gvisor.py).
"""

from __future__ import annotations

import asyncio
import uuid

import docker.errors
import pytest

from appliance.runtime.batch_sandbox import BatchSandbox, BatchSandboxError
from appliance.runtime.container_setup import BATCH_LABEL, INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL
from appliance.runtime.engine import DockerEngine
from appliance.runtime.images import image_ref
from appliance.runtime.limits import SandboxLimits
from tests.support import HANG_SECONDS, eventually_async

LIMITS = SandboxLimits(memory_mb=128, pids=64)
OUTPUT = 64 * 1024


@pytest.fixture
def instance_id() -> str:
    return f"test-batch-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def engine(instance_id):
    engine = DockerEngine(threads=4)
    engine.instance_id = instance_id
    yield engine
    engine.close()


# (engine name, relay): the relay is on by default under gVisor, off under runc.
MODES = {"runc": ("docker", None), "runc-relay": ("docker", True), "gvisor": ("gvisor", None)}


@pytest.fixture(params=sorted(MODES))
def mode(request) -> str:
    return request.param


@pytest.fixture
async def sandbox(runtime_images, engine, instance_id, mode):
    engine_name, relay = MODES[mode]
    box = BatchSandbox(
        engine, image_ref("python"), LIMITS, owner="owner-a", batch_id="batch-1", engine_name=engine_name, relay=relay
    )
    await box.start()
    yield box
    await box.close()


async def run(box: BatchSandbox, code: str, timeout: float = 10, output_limit: int = OUTPUT, **kw):
    return await box.run(code, timeout=timeout, output_limit=output_limit, **kw)


LIST_PROCESSES = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.getpid())"


def only_server_and_self(box: BatchSandbox, line: str) -> bool:
    """`line` is LIST_PROCESSES' output: the processes seen, and the execution's own pid."""
    listed, own = line.rsplit(" ", 1)
    return eval(listed) == sorted([*box.server_pids, int(own)])  # noqa: S307 - our own output


# --- running programs -----------------------------------------------------------------


async def test_hello_world(sandbox, docker_client, instance_id, mode):
    outcome = await run(sandbox, "print('Hello, World!')")
    assert outcome.exit_code == 0
    assert outcome.stdout == "Hello, World!\n" and outcome.stderr == ""
    assert not (outcome.timed_out or outcome.killed or outcome.flooded or outcome.oom_killed)
    assert 0 < outcome.execution_time < HANG_SECONDS
    assert outcome.memory_used and outcome.memory_used > 1024 * 1024  # bytes (peak RSS)

    info = docker_client.api.inspect_container(sandbox.container_id)
    labels = info["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "true" and labels[INSTANCE_LABEL] == instance_id
    assert labels[OWNER_LABEL] == "owner-a" and labels[BATCH_LABEL] == "batch-1"
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == LIMITS.memory_mb * 1024 * 1024
    if mode == "gvisor":
        assert host["Runtime"] == "runsc"
        assert {"Name": "nproc", "Soft": LIMITS.pids, "Hard": LIMITS.pids} in host["Ulimits"]
    else:
        assert host["PidsLimit"] == LIMITS.pids
    assert info["Config"]["User"] == "65534:65534"
    assert sandbox.relay == (mode != "runc")


async def test_exit_codes_and_exceptions(sandbox):
    cases = {
        "import sys\nsys.exit(3)": 3,
        "raise SystemExit": 0,
        "import os\nos._exit(7)": 7,
        "import sys\nsys.exit('bad input')": 1,
        "x = 1\nraise ValueError('boom')": 1,
        "def f(:\n  pass": 1,
        "raise KeyboardInterrupt": 130,
    }
    outcomes = {code: await run(sandbox, code) for code in cases}
    for code, expected in cases.items():
        assert outcomes[code].exit_code == expected, (code, outcomes[code])

    assert outcomes["import sys\nsys.exit('bad input')"].stderr == "bad input\n"
    traceback = outcomes["x = 1\nraise ValueError('boom')"].stderr
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert 'main.py", line 2, in <module>' in traceback
    assert "raise ValueError('boom')" in traceback  # the source line, without a file
    assert traceback.endswith("ValueError: boom\n")
    assert "child" not in traceback and "<string>" not in traceback  # no server frames
    assert "SyntaxError" in outcomes["def f(:\n  pass"].stderr


async def test_exit_runs_atexit_joins_threads_and_flushes(sandbox):
    code = (
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "def later():\n    time.sleep(0.2)\n    print('thread done')\n"
        "threading.Thread(target=later).start()\n"
        "sys.stdout.write('no newline')\n"
    )
    outcome = await run(sandbox, code)
    assert outcome.exit_code == 0
    assert outcome.stdout == "no newlinethread done\natexit ran\n"


async def test_stdout_stderr_and_stdin(sandbox):
    code = (
        "import sys\nprint('out ✓')\nprint('err', file=sys.stderr)\n"
        "print(repr(sys.stdin.read()))\nsys.stdout.buffer.write(b'\\xff\\n')\n"
    )
    outcome = await run(sandbox, code)
    assert outcome.exit_code == 0
    assert outcome.stdout == "out ✓\n''\n\ufffd\n"
    assert outcome.stderr == "err\n"

    closed = await run(sandbox, "import sys\nprint('bye')\nsys.stdout.close()")
    assert closed.exit_code == 0 and closed.stdout == "bye\n"


# --- nothing crosses from one execution to the next ---------------------------------------


async def test_each_execution_gets_an_empty_work_dir_and_clean_tmp(sandbox):
    first = await run(
        sandbox,
        (
            "import ctypes, errno, os\n"
            "print(os.getcwd(), os.listdir('.'))\n"
            "open('mine.txt', 'w').write('secret')\n"
            "os.makedirs('deep/er/est'); open('deep/er/est/f', 'w').write('x')\n"
            "os.chmod('deep/er', 0o000)\n"  # the wipe must get through an unreadable dir
            "open('/work/top.txt', 'w').write('x')\n"
            "open('/tmp/t.txt', 'w').write('x')\n"
            "open('/dev/shm/s.txt', 'w').write('x')\n"
            "os.symlink('/etc/passwd', 'link')\n"
            # System V IPC would outlive the execution: it is refused.
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "print('shm', libc.shmget(0x1234, 4096, 0o1000 | 0o600), errno.errorcode[ctypes.get_errno()])\n"
        ),
    )
    assert first.exit_code == 0, first
    cwd, listing = first.stdout.splitlines()[0].split(" ", 1)
    assert cwd.startswith("/work/") and listing == "[]"
    assert first.stdout.splitlines()[1] == "shm -1 ENOSYS"

    second = await run(
        sandbox,
        (
            "import os\n"
            "print(os.getcwd())\n"
            "print(os.listdir('.'), sorted(os.listdir('/work')), os.listdir('/tmp'), os.listdir('/dev/shm'))\n"
        ),
    )
    assert second.exit_code == 0, second
    lines = second.stdout.splitlines()
    assert lines[0] != cwd
    assert lines[1] == f"[] {[os_basename(lines[0])]} [] []"


def os_basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


async def test_background_processes_and_daemons_die_with_the_execution(sandbox):
    first = await run(
        sandbox,
        (
            "import os, subprocess, time\n"
            "subprocess.Popen(['sleep', '300'])\n"
            "if os.fork() == 0:\n"  # a classic daemon: fork, setsid, fork again, keep stdout open
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        while True:\n"
            "            open('/tmp/alive', 'w').write(str(time.time()))\n"
            "            time.sleep(0.02)\n"
            "    os._exit(0)\n"
            "time.sleep(0.2)\n"
            "print(sum(p.isdigit() for p in os.listdir('/proc')))\n"
        ),
    )
    assert first.exit_code == 0, first
    assert int(first.stdout) >= 4  # server, program, sleep, daemon were all there
    # The daemon still held stdout: the execution still ended when the program did, not
    # at its timeout.
    assert not first.timed_out, first

    second = await run(sandbox, "import time\ntime.sleep(0.2)\n" + LIST_PROCESSES + "\nprint(os.listdir('/tmp'))")
    assert second.exit_code == 0, second
    processes, tmp = second.stdout.splitlines()
    assert tmp == "[]"  # the daemon did not write again
    assert only_server_and_self(sandbox, processes), processes


async def test_state_of_one_execution_is_not_visible_in_the_next(sandbox):
    first = await run(
        sandbox,
        (
            "import builtins, json, os, random, sys\n"
            "os.environ['LEAK'] = '1'\nos.environ.pop('PATH')\n"
            "GLOBAL = 1\nbuiltins.leak = 1\njson.dumps = None\nsys.path.append('/leak')\n"
            "sys.setrecursionlimit(50)\n"
            "print(random.random())\n"
        ),
    )
    assert first.exit_code == 0, first
    second = await run(
        sandbox,
        (
            "import builtins, json, os, random, sys\n"
            "print('LEAK' in os.environ, 'PATH' in os.environ, 'GLOBAL' in globals(),\n"
            "      hasattr(builtins, 'leak'), json.dumps([1]), '/leak' in sys.path, sys.getrecursionlimit())\n"
            "print(random.random())\n"
        ),
    )
    assert second.exit_code == 0, second
    state, number = second.stdout.splitlines()
    assert state == "False True False False [1] False 1000"
    assert number != first.stdout.strip()  # the random generator is reseeded per execution


async def test_executions_run_one_at_a_time(sandbox):
    code = "import time\ntime.sleep(0.3)\n" + LIST_PROCESSES
    outcomes = await asyncio.gather(*(run(sandbox, code) for _ in range(3)))
    assert all(o.exit_code == 0 and only_server_and_self(sandbox, o.stdout) for o in outcomes), outcomes


# --- limits -----------------------------------------------------------------------------


async def test_timeout_kills_the_execution(sandbox):
    busy = await run(sandbox, "print('start', flush=True)\nwhile True:\n    pass", timeout=1)
    assert busy.timed_out and not busy.killed
    assert busy.exit_code == 137 and busy.stdout == "start\n"
    assert 0.9 < busy.execution_time < HANG_SECONDS

    sleeper = await run(sandbox, "import time\ntime.sleep(60)", timeout=0.5)
    assert sleeper.timed_out and sleeper.exit_code == 137

    after = await run(sandbox, LIST_PROCESSES)
    assert after.exit_code == 0 and only_server_and_self(sandbox, after.stdout)


async def test_output_is_capped_and_a_flood_is_stopped(sandbox):
    capped = await run(sandbox, "import sys\nprint('x' * 5000)\nprint('y' * 10, file=sys.stderr)", output_limit=1000)
    assert capped.exit_code == 0
    assert capped.stdout == "x" * 1000 and capped.stdout_truncated
    assert capped.stderr == "y" * 10 + "\n" and not capped.stderr_truncated
    assert not capped.flooded

    flood = await run(sandbox, "while True:\n    print('z' * 1000)", output_limit=1000, timeout=HANG_SECONDS)
    assert flood.flooded and flood.stdout == "z" * 1000 and flood.stdout_truncated
    assert not flood.timed_out  # stopped for the flood, not by the clock

    after = await run(sandbox, "print('ok')")
    assert after.stdout == "ok\n"


async def test_memory_limit(sandbox, mode):
    small = await run(sandbox, "b = bytearray(100 * 1024 * 1024)\nprint('allocated')", memory_mb=64)
    assert small.exit_code == 1 and "MemoryError" in small.stderr and small.stdout == ""

    fits = await run(sandbox, "b = bytearray(40 * 1024 * 1024)\nprint('allocated')")
    assert fits.exit_code == 0 and fits.stdout == "allocated\n"
    assert fits.memory_used > 40 * 1024 * 1024  # peak resident bytes

    # One process stops at its address-space limit.
    bomb = await run(sandbox, "x = []\nwhile True:\n    x.append(b'x' * (4 * 1024 * 1024))")
    assert bomb.exit_code == 1 and "MemoryError" in bomb.stderr, bomb

    # Several, each under that limit, exhaust the container's memory: the cgroup's OOM
    # killer takes the execution's processes, never the server. Under gVisor the host's
    # OOM killer sees one sandbox process: the whole sandbox goes, and says so.
    if mode == "gvisor":
        with pytest.raises(BatchSandboxError, match="OOM"):
            await run(sandbox, TOGETHER.replace("60 *", "40 *"))  # under gVisor's smaller limit
        return
    together = await run(sandbox, TOGETHER)
    assert together.oom_killed, together
    assert "-9" in together.stdout  # at least one of them was SIGKILLed

    after = await run(sandbox, "print('still here')")
    assert after.stdout == "still here\n"


TOGETHER = (
    "import os, time\n"
    "for _ in range(3):\n"
    "    if os.fork() == 0:\n"
    "        x = bytearray(60 * 1024 * 1024)\n"
    "        for i in range(0, len(x), 4096):\n            x[i] = 1\n"
    "        time.sleep(1)\n"
    "        os._exit(0)\n"
    "print(sorted(os.waitstatus_to_exitcode(os.wait()[1]) for _ in range(3)))\n"
)


@pytest.mark.slow
async def test_fork_bomb_is_contained(sandbox, mode):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    if mode == "gvisor":
        # Dozens of interpreters outgrow the memory limit, and under gVisor the host's OOM
        # killer takes the whole sandbox: it ends, and says so.
        with pytest.raises(BatchSandboxError, match="OOM"):
            await run(sandbox, code, timeout=3)
        return
    bomb = await run(sandbox, code, timeout=3)
    assert bomb.timed_out or bomb.oom_killed, bomb
    if hasattr(bomb, "pids_limited"):
        assert bomb.pids_limited or bomb.oom_killed

    after = await run(sandbox, LIST_PROCESSES)
    assert after.exit_code == 0 and only_server_and_self(sandbox, after.stdout), after
    hello = await run(sandbox, "print('Hello, World!')")
    assert hello.stdout == "Hello, World!\n"


async def test_no_network(sandbox, docker_client):
    outcome = await run(
        sandbox,
        (
            "import os, socket\n"
            "print(sorted(os.listdir('/sys/class/net')))\n"
            "try:\n    socket.getaddrinfo('example.com', 80)\n    print('resolved')\n"
            "except OSError:\n    print('no dns')\n"
        ),
    )
    assert outcome.stdout == "['lo']\nno dns\n", outcome
    info = docker_client.api.inspect_container(sandbox.container_id)
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["NetworkSettings"]["IPAddress"] == ""


# --- the server cannot be reached from user code ------------------------------------------


FORGE = """
import json, os, struct
frame = json.dumps({"op": "result", "id": 1, "exit_code": 0, "stdout": "", "stderr": "",
                    "stdout_truncated": False, "stderr_truncated": False, "timed_out": False,
                    "killed": False, "flooded": False, "oom_killed": False, "pids_limited": False,
                    "disk_full": False, "time": 0.0, "max_rss": 0}).encode()
frame = struct.pack(">I", len(frame)) + frame + bytes(32)
import sys
sys.stdout.buffer.write(frame); sys.stdout.flush()
print()
for pid in PIDS:
    for fd, mode in ((1, "wb"), (0, "rb"), (0, "wb")):
        path = "/proc/%d/fd/%d" % (pid, fd)
        try:
            with open(path, mode, buffering=0) as f:
                if "w" in mode:
                    f.write(frame)
            print("opened", path, mode)
        except OSError as exc:
            print("refused", path, mode, type(exc).__name__)
    try:
        open("/proc/%d/mem" % pid, "rb").close()
        print("opened mem")
    except OSError:
        print("refused mem")
"""


async def test_user_code_cannot_forge_a_result(sandbox, mode):
    code = FORGE.replace("PIDS", repr(list(sandbox.server_pids)))
    if mode == "gvisor":
        # The relay's memory, where the key is, stays closed.
        probe = await run(
            sandbox,
            (
                "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                f"for pid in {list(sandbox.server_pids)!r}:\n"
                "    try:\n        open('/proc/%d/mem' % pid, 'rb').close()\n        print('opened')\n"
                "    except OSError:\n        print('refused')\n"
                "    print('ptrace', libc.ptrace(16, pid, None, None))\n"
            ),
        )
        assert probe.stdout == "refused\nptrace -1\n" * len(sandbox.server_pids), probe
        # gVisor lets an execution open the relay's pipes: what it writes there fails the
        # relay's authentication, and the sandbox ends instead of reporting it.
        with pytest.raises(BatchSandboxError, match="authentication"):
            await run(sandbox, code)
        assert not sandbox.alive
        return
    outcome = await run(sandbox, code)
    assert outcome.exit_code == 0, outcome
    text = outcome.stdout
    assert text.startswith("\x00\x00\x01") and '"op": "result"' in text  # it stayed in its stdout
    assert "opened" not in text and text.count("refused") == 4 * len(sandbox.server_pids), text
    assert (await run(sandbox, "print('server alive')")).stdout == "server alive\n"


async def test_signals_to_the_server_are_ignored(sandbox, mode):
    signals = "SIGINT SIGTERM SIGHUP SIGQUIT SIGUSR1 SIGUSR2 SIGALRM SIGSEGV SIGRTMIN"
    if mode == "runc":
        signals += " SIGKILL SIGSTOP"  # the kernel keeps them from PID 1 of the namespace
    code = (
        f"import os, signal, time\nfor pid in {list(sandbox.server_pids)!r}:\n"
        f"    for name in {signals.split()!r}:\n        os.kill(pid, getattr(signal, name))\n"
        "time.sleep(0.2)\nprint('sent')"
    )
    outcome = await run(sandbox, code)
    assert outcome.stdout == "sent\n", outcome
    assert (await run(sandbox, "print('server alive')")).stdout == "server alive\n"


async def test_a_server_process_killed_by_an_execution_ends_the_sandbox(sandbox, mode):
    """Under gVisor, SIGKILL reaches even PID 1; with a relay, the relay is a plain
    process. Either way the sandbox ends and says so: it never carries on half-broken."""
    target = sandbox.server_pids[-1]
    if mode == "runc":
        outcome = await run(sandbox, f"import os, signal\nos.kill({target}, signal.SIGKILL)\nprint('sent')")
        assert outcome.stdout == "sent\n"
        assert (await run(sandbox, "print('server alive')")).stdout == "server alive\n"
        return
    with pytest.raises(BatchSandboxError):
        await run(sandbox, f"import os, signal, time\nos.kill({target}, signal.SIGKILL)\ntime.sleep(5)")
    assert not sandbox.alive


# --- kill, close, death -----------------------------------------------------------------


async def test_kill_current_execution(sandbox, docker_client):
    assert await sandbox.kill_current() is False  # nothing running
    code = "import time\nprint('go', flush=True)\nopen('/tmp/printed', 'w').close()\ntime.sleep(600)"
    task = asyncio.create_task(run(sandbox, code, timeout=300))

    def printed() -> bool:  # the program's /tmp is the container's: look from outside
        exec_id = docker_client.api.exec_create(sandbox.container_id, ["test", "-e", "/tmp/printed"])["Id"]
        docker_client.api.exec_start(exec_id)
        return docker_client.api.exec_inspect(exec_id)["ExitCode"] == 0

    await eventually_async(lambda: asyncio.to_thread(printed), message="the program printing 'go'")
    assert await sandbox.kill_current() is True
    outcome = await asyncio.wait_for(task, HANG_SECONDS)
    assert outcome.killed and not outcome.timed_out and outcome.stdout == "go\n"

    after = await run(sandbox, LIST_PROCESSES)
    assert after.exit_code == 0 and only_server_and_self(sandbox, after.stdout)


async def test_close_removes_the_container(runtime_images, engine, instance_id, docker_client):
    async with BatchSandbox(engine, image_ref("python"), LIMITS, owner="owner-b", batch_id="batch-2") as box:
        assert (await run(box, "print(1)")).stdout == "1\n"
        container_id = box.container_id
        assert docker_client.api.inspect_container(container_id)["State"]["Running"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(container_id)
    with pytest.raises(BatchSandboxError):
        await run(box, "print(1)")
    await box.close()  # twice is fine


async def test_stale_sandboxes_are_found_by_instance(runtime_images, engine, instance_id):
    box = BatchSandbox(engine, image_ref("python"), LIMITS, owner="o", batch_id="b")
    await box.start()
    try:
        assert await engine.call(engine.remove_instance_containers) == 1
        with pytest.raises(BatchSandboxError):
            await run(box, "print(1)")
    finally:
        await box.close()


async def test_a_dead_server_is_reported(sandbox, docker_client):
    docker_client.api.kill(sandbox.container_id)
    with pytest.raises(BatchSandboxError, match="exited|closed|failed"):
        await run(sandbox, "print(1)")
    assert not sandbox.alive
    with pytest.raises(BatchSandboxError):
        await run(sandbox, "print(1)")
