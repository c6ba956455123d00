"""Every execution's accounting, through the API: time, peak memory from the cgroup,
exit code, and one distinct reason per limit hit."""

from __future__ import annotations

import pytest

from tests.support import HANG_SECONDS, run_eval

ENGINES = ("docker", "gvisor")


@pytest.mark.parametrize("engine", ENGINES)
def test_peak_memory_and_time_are_measured(server, engine):
    with server.admin() as client:
        small = run_eval(client, "print('x')", engine=engine)
        big = run_eval(
            client,
            "import time\nblock = bytearray(120 * 1024 * 1024)\n"
            "for i in range(0, len(block), 4096): block[i] = 1\ntime.sleep(0.3)",
            engine=engine,
        )
    assert small["exit_code"] == 0 and big["exit_code"] == 0
    assert 0 < small["memory_used"] < 100 * 1024 * 1024
    assert big["memory_used"] >= 120 * 1024 * 1024 > small["memory_used"]
    # The big one sleeps 0.3 s: its time is at least that. Which of the two took longer
    # is not asserted: a loaded machine may start the small one slower by more than that.
    assert 0 < small["execution_time"] < HANG_SECONDS
    assert 0.3 <= big["execution_time"] < HANG_SECONDS


LIMITS = {
    # reason: (program, expected status)
    "timeout": ("import time\ntime.sleep(60)", "timeout"),
    "memory_limit": ("block = bytearray(600 * 1024 * 1024)", "failed"),
    "work_dir_full": ("for i in range(200):\n    open(f'f{i}', 'wb').write(b'x' * 1024 * 1024)", "failed"),
    "file_size_limit": ("open('big', 'wb').write(b'x' * 40 * 1024 * 1024)", "failed"),
    "output_truncated": ("print('y' * (2 * 1024 * 1024))", "completed"),
}


@pytest.mark.parametrize("reason", sorted(LIMITS))
@pytest.mark.parametrize("engine", ENGINES)
def test_each_limit_has_its_own_reason(server, engine, reason):
    program, status = LIMITS[reason]
    with server.admin() as client:
        result = run_eval(client, program, timeout=3, engine=engine)
    assert (result["status"], result["reason"]) == (status, reason), result["error"][-500:]


def test_pids_limit_is_its_own_reason(server):
    # Processes that sleep rather than spin, so the pids limit is what stops them.
    program = (
        "import os, time\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n    except OSError:\n        break\n"
    )
    with server.admin() as client:
        result = run_eval(client, program, timeout=10)
    assert (result["status"], result["reason"]) == ("failed", "pids_limit")
