"""The README's developer-checkout command, run as written: it sets up what is missing
and serves the appliance from this checkout."""

from __future__ import annotations

import re
import signal
import subprocess

import httpx
import pytest

from tests.support import ROOT, eventually, free_port

pytestmark = pytest.mark.slow


def readme_run_command() -> str:
    opening = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    line = next(line for line in opening.splitlines() if line.startswith("scripts/run.sh"))
    return line.split("#", 1)[0].strip()


def test_the_readme_run_command_sets_up_and_serves(runtime_images, tmp_path):
    port = free_port()
    command = f"{readme_run_command()} --port {port} --data-dir {tmp_path / 'data'}"
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:

        def health() -> httpx.Response | None:
            if proc.poll() is not None:
                pytest.fail((tmp_path / "run.log").read_text(), pytrace=False)
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        answered = eventually(
            health,
            timeout=300,  # setup.sh may have something to install
            interval=0.5,
            message=lambda: f"/api/health answering:\n{(tmp_path / 'run.log').read_text()}",
        )
        assert answered.json()["status"] in ("healthy", "degraded")
        assert (tmp_path / "data" / "admin.key").exists()
    finally:
        proc.send_signal(signal.SIGTERM)  # run.sh execs the server: this is its pid
        try:
            # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
            assert proc.wait(60) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
