"""A real terminal for end-to-end TUI tests: a detached tmux session on a private tmux
server (`tmux -L <unique>`), so a test never touches anyone's tmux, and only its own
server is killed at the end."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support import ROOT

VENV_BIN = ROOT / ".venv" / "bin"
APPLIANCE = VENV_BIN / "appliance"  # the installed entry point, as an operator runs it
TERMINAL = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "LANG": "C.UTF-8"}


class TmuxSession:
    """`with TmuxSession(tmp_path) as tmux: tmux.start([...]); tmux.wait_for("text")`."""

    def __init__(self, work_dir: Path, width: int = 120, height: int = 40) -> None:
        self.socket = f"appliance-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height
        self.exit_file = work_dir / f"{self.socket}.exit"
        self.started = False

    def __enter__(self) -> TmuxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=15,
        )

    def start(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        """Run `command` in the session's only pane with TERM set; its exit status is
        written to `exit_file` so a test can check how it ended."""
        variables = {**TERMINAL, **(env or {})}
        # COLUMNS/LINES (set under pytest) would override the pane's real size.
        unset = ["-u", "COLUMNS", "-u", "LINES"]
        line = (
            f"{shlex.join(['env', *unset, *(f'{k}={v}' for k, v in variables.items()), *command])}; "
            f"echo $? > {shlex.quote(str(self.exit_file))}; sleep 600"
        )
        self.tmux("new-session", "-d", "-s", "main", "-x", str(self.width), "-y", str(self.height), "sh", "-c", line)
        self.started = True

    def screen(self) -> str:
        """What the pane shows; lines the terminal wrapped are joined again (-J)."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "main").stdout

    def send_keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def wait_for(self, condition: str | Callable[[str], object], timeout: float = 30.0) -> str:
        """The screen once it shows `condition` (a text, or a test of the screen's text)."""
        test = (lambda screen: condition in screen) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen did not show {condition!r} within {timeout} s; it shows:\n{screen}")

    def exit_status(self, timeout: float = 30.0) -> int:
        """The command's exit status, once it has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_file.exists() and self.exit_file.read_text().strip():
                return int(self.exit_file.read_text())
            time.sleep(0.1)
        raise AssertionError(f"the command did not exit within {timeout} s; the screen:\n{self.screen()}")

    def kill(self) -> None:
        if self.started:
            self.tmux("kill-server", check=False)
            self.started = False


def lines_with(screen: str, text: str) -> list[str]:
    return [line for line in screen.splitlines() if text in line]
