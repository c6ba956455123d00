"""A real terminal for end-to-end TUI tests: a detached tmux session on a private tmux
server (`tmux -L <unique>`), so a test never touches anyone's tmux, and only its own
server is killed at the end."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support import HANG_SECONDS, ROOT, eventually

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
            timeout=HANG_SECONDS,
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

    def wait_for(self, condition: str | Callable[[str], object], timeout: float = HANG_SECONDS) -> str:
        """The screen once it shows `condition` (a text, or a test of the screen's text)."""
        test = (lambda screen: condition in screen) if isinstance(condition, str) else condition
        screen = ""

        def shown() -> str | None:
            nonlocal screen
            screen = self.screen()
            return screen if test(screen) else None

        return eventually(
            shown,
            timeout=timeout,
            interval=0.2,
            message=lambda: f"the screen showing {condition!r}; it shows:\n{screen}",
        )

    def exit_status(self, timeout: float = HANG_SECONDS) -> int:
        """The command's exit status, once it has exited."""

        def written() -> str | None:
            return self.exit_file.exists() and self.exit_file.read_text().strip() or None

        status = eventually(
            written, timeout=timeout, message=lambda: f"the command exiting; the screen:\n{self.screen()}"
        )
        return int(status)

    def kill(self) -> None:
        if self.started:
            self.tmux("kill-server", check=False)
            self.started = False


def lines_with(screen: str, text: str) -> list[str]:
    return [line for line in screen.splitlines() if text in line]
