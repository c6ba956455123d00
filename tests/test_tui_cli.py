"""`appliance tui` and `appliance run` on the command line: what a user sees when the
TUI cannot start (one line that says what to do, never a traceback), and the flags."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT, free_port


def appliance(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """The real entry point, with no terminal: a refusal must come before any screen."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def assert_one_clear_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("appliance: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_missing_key_file_is_named_with_what_to_do(tmp_path):
    missing = tmp_path / "nope.key"
    result = appliance("tui", "--url", f"http://127.0.0.1:{free_port()}", "--api-key-file", str(missing))
    assert result.returncode == 2
    assert_one_clear_line(result, str(missing), "does not exist", "--api-key-file")


def test_an_empty_or_unreadable_key_file(tmp_path):
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    assert_one_clear_line(
        appliance("tui", "--url", "http://127.0.0.1:1", "--api-key-file", str(empty)), str(empty), "is empty"
    )
    assert_one_clear_line(
        appliance("tui", "--url", "http://127.0.0.1:1", "--api-key-file", str(tmp_path)), str(tmp_path), "cannot read"
    )


def test_a_dead_daemon_says_how_to_start_one(tmp_path):
    key = tmp_path / "some.key"
    key.write_text("ak_000000000000_notarealkeybutlongenough\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = appliance("tui", "--url", url, "--api-key-file", str(key))
    assert result.returncode == 1
    assert_one_clear_line(result, url, "nothing answers", "appliance serve")


def test_without_flags_the_local_admin_key_is_looked_for_in_the_data_dir(tmp_path):
    result = appliance("tui", "--data-dir", str(tmp_path))
    assert_one_clear_line(result, str(tmp_path / "admin.key"), "appliance serve")


def test_without_url_the_local_daemon_is_found_from_the_settings(server, tmp_path):
    """No --url: the host and port of the settings (here from the environment), the key
    given; a wrong key there is refused by that very daemon."""
    port = server.url.rsplit(":", 1)[1]
    wrong = tmp_path / "wrong.key"
    wrong.write_text("ak_000000000000_" + "x" * 32 + "\n")
    result = appliance(
        "tui",
        "--data-dir",
        str(tmp_path),
        "--api-key-file",
        str(wrong),
        env={"APPLIANCE_PORT": port, "APPLIANCE_HOST": "0.0.0.0"},
    )
    assert_one_clear_line(result, f"http://127.0.0.1:{port}", "refused the key")


def test_a_wrong_key_is_refused_before_the_screen_opens(server, tmp_path):
    wrong = tmp_path / "wrong.key"
    wrong.write_text("ak_000000000000_" + "x" * 32 + "\n")
    result = appliance("tui", "--url", server.url, "--api-key-file", str(wrong))
    assert result.returncode == 1
    line = assert_one_clear_line(result, server.url, "refused the key", str(wrong), "401")
    assert "invalid API key" in line  # the server's own words


def test_a_key_without_read_permission_is_refused_with_the_reason(server, tmp_path):
    from appliance.client import ApplianceClient

    with ApplianceClient(server.url, api_key=server.admin_key) as admin:
        created = admin.create_api_key("tui-cli-execute-only", ["execute"])
    key = tmp_path / "execute.key"
    key.write_text(created["api_key"] + "\n")
    result = appliance("tui", "--url", server.url, "--api-key-file", str(key))
    assert_one_clear_line(result, "403", "'read' permission")


def test_a_url_that_is_not_http(tmp_path):
    key = tmp_path / "some.key"
    key.write_text("ak_x\n")
    assert_one_clear_line(appliance("tui", "--url", "127.0.0.1:8080", "--api-key-file", str(key)), "http://HOST:PORT")


def test_tui_help_lists_its_flags():
    result = appliance("tui", "--help")
    assert result.returncode == 0
    for flag in ("--url", "--api-key-file", "--light", "--data-dir", "--config"):
        assert flag in result.stdout


def test_run_help_lists_its_flags_and_where_the_log_goes():
    result = appliance("run", "--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--workers", "--light", "--data-dir"):
        assert flag in result.stdout
    top = appliance("--help").stdout
    assert "tui" in top and "run" in top and "logs/appliance.log" in top


def test_run_on_a_taken_port_says_so(server, tmp_path):
    port = server.url.rsplit(":", 1)[1]
    result = appliance("run", "--data-dir", str(tmp_path), "--port", port)
    assert result.returncode == 1
    assert_one_clear_line(result, port, "appliance tui", "--port")


def test_without_a_terminal_the_tui_asks_for_one(server, tmp_path):
    """`ssh host appliance tui` without -t: no pty, so say how to get one."""
    key = tmp_path / "admin.key"
    key.write_text(server.admin_key)
    result = appliance("tui", "--url", server.url, "--api-key-file", str(key))
    assert result.returncode == 2
    assert_one_clear_line(result, "needs a terminal", "ssh -t")
