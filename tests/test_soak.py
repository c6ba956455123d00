"""Two minutes of bench/soak.py in the suite: mixed work at half the sustainable rate
(languages, engines, failures, timeouts, memory kills, floods, user kills, sandbox file
traffic, /ws watchers), and it fails on anything left over: containers, descriptors,
asyncio tasks, temp files. The one-hour run and its trends are in docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_minutes_of_mixed_work_leave_nothing_behind(runtime_images):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--duration",
            "120",
            "--sample-every",
            "30",
            "--measure",
            "12",
            "--no-check-trends",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=900,  # a hang, not a figure: the soak itself is bounded
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "left over: nothing" in report and "no container of it left" in report, report
    assert "errors" not in report.split("done: ", 1)[1].splitlines()[0], report
