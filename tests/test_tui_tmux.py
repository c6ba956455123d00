"""End to end in a real terminal: the installed `appliance` command inside tmux (120x40,
TERM=xterm-256color), watched through `tmux capture-pane`.

- `appliance tui` attached to a real `appliance serve`: an evaluation submitted through
  the API appears on the evaluations screen and completes there.
- `appliance run`: server and TUI in one process; the REST API answers on its port while
  the TUI is on screen, nothing but the TUI is drawn, `q` stops it all cleanly.

Only stable things are asserted: the screen names in the header and footer, the eval_id
in the table and the word "completed".
"""

from __future__ import annotations

import socket
import subprocess

import httpx
import pytest

from tests.support import free_port, wait_for_status
from tests.tmux_support import APPLIANCE, TmuxSession, lines_with

pytestmark = pytest.mark.slow

FOOTER_NAMES = ("Dashboard", "Evaluations", "Alerts", "Quit")


def shows_the_tui(screen: str) -> bool:
    return all(name in screen for name in FOOTER_NAMES)


def completed_row(eval_id: str):
    """A screen test: the table row of `eval_id` says completed."""
    return lambda screen: any("completed" in line for line in lines_with(screen, eval_id))


def submit(client: httpx.Client, code: str) -> str:
    response = client.post("/api/eval", json={"language": "python", "code": code})
    assert response.status_code == 200, response.text
    return response.json()["eval_id"]


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_tui_attached_to_serve_shows_an_evaluation_complete(fresh_server, tmp_path):
    server = fresh_server()
    key_file = tmp_path / "operator.key"
    key_file.write_text(server.admin_key + "\n")
    with TmuxSession(tmp_path) as tmux, server.admin() as api:
        tmux.start([str(APPLIANCE), "tui", "--url", server.url, "--api-key-file", str(key_file)])
        screen = tmux.wait_for(shows_the_tui)
        assert "Dashboard" in screen.splitlines()[0]  # the header names the screen
        assert "Traceback" not in screen

        eval_id = submit(api, "print('seen in tmux')")
        tmux.send_keys("e")
        tmux.wait_for(lambda s: "Evaluations" in s.splitlines()[0])
        tmux.wait_for(eval_id)
        tmux.wait_for(completed_row(eval_id), timeout=90)
        assert wait_for_status(api, eval_id)["status"] == "completed"

        tmux.send_keys("q")
        assert tmux.exit_status() == 0


def test_tui_without_flags_finds_the_local_daemon(fresh_server, tmp_path):
    """No --url, no --api-key-file: the settings' port and the data dir's admin key."""
    server = fresh_server()
    port = server.url.rsplit(":", 1)[1]
    with TmuxSession(tmp_path) as tmux:
        tmux.start([str(APPLIANCE), "tui", "--data-dir", str(server.data_dir)], env={"APPLIANCE_PORT": port})
        screen = tmux.wait_for(shows_the_tui)
        assert f"127.0.0.1:{port}" in screen.splitlines()[0]
        tmux.send_keys("q")
        assert tmux.exit_status() == 0


def test_run_serves_the_api_and_the_tui_in_one_process(runtime_images, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    with TmuxSession(tmp_path) as tmux:
        tmux.start([str(APPLIANCE), "run", "--data-dir", str(data_dir), "--port", str(port), "--workers", "2"])
        screen = tmux.wait_for(shows_the_tui, timeout=60)
        assert f"127.0.0.1:{port}" in screen.splitlines()[0]

        health = httpx.get(f"{url}/api/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] in ("healthy", "degraded"), health.text
        with httpx.Client(
            base_url=url, timeout=30, headers={"X-API-Key": (data_dir / "admin.key").read_text().strip()}
        ) as api:
            eval_id = submit(api, "print('seen in run mode')")
            tmux.send_keys("e")
            tmux.wait_for(eval_id)
            screen = tmux.wait_for(completed_row(eval_id), timeout=90)
        # uvicorn and the appliance log to the file, not over the screen
        for noise in ("INFO", "WARNING", "Uvicorn", "Traceback"):
            assert noise not in screen, screen

        tmux.send_keys("q")
        assert tmux.exit_status(timeout=120) == 0  # a busy engine removes warm containers slowly
        log_path = data_dir / "logs" / "appliance.log"
        assert f"the log is in {log_path}" in tmux.screen()
    assert port_is_closed(port)
    log = log_path.read_text()
    assert "Application startup complete" in log and "Shutting down" in log


def test_run_without_an_admin_key_file_uses_a_key_for_the_session_only(runtime_images, tmp_path):
    """An operator who removed admin.key (kept elsewhere): the TUI of `run` gets a key of
    its own, revoked when it quits, instead of failing."""
    data_dir, port = tmp_path / "data", free_port()
    created = subprocess.run(
        [str(APPLIANCE), "keys", "create", "--data-dir", str(data_dir), "--name", "ops", "--permissions", "admin"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ops_key = created.stdout.strip()
    with (
        TmuxSession(tmp_path) as tmux,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"X-API-Key": ops_key}) as api,
    ):
        tmux.start([str(APPLIANCE), "run", "--data-dir", str(data_dir), "--port", str(port)])
        tmux.wait_for(shows_the_tui, timeout=60)
        assert not (data_dir / "admin.key").exists()
        keys = {k["name"]: k for k in api.get("/auth/api-keys").json()["api_keys"]}
        assert keys["tui (appliance run)"]["revoked_at"] is None, keys
        tmux.send_keys("q")
        assert tmux.exit_status(timeout=120) == 0  # a busy engine removes warm containers slowly
    listed = subprocess.run(
        [str(APPLIANCE), "keys", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    session_rows = [line for line in listed.splitlines() if "tui (appliance run)" in line]
    assert len(session_rows) == 1 and session_rows[0].rstrip().endswith("revoked"), listed
