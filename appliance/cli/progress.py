"""What a CLI command shows while it follows a job on the server: a progress bar on
stderr (redrawn in place on a terminal, a plain line per tenth elsewhere) and the
Ctrl-C that cancels the job there."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import Any

EXIT_INTERRUPTED = 130  # the shell's code for a program ended by Ctrl-C (SIGINT)


def render_bar(label: str, done: int, total: int) -> None:
    """`[answers] [#########...........]  45/100` on stderr, redrawn in place; a plain
    line per tenth when stderr is not a terminal."""
    fraction = done / total if total else 1.0
    if sys.stderr.isatty():
        line = f"[{label}] [{('#' * round(20 * fraction)).ljust(20, '.')}] {done:>5}/{total}"
        width = shutil.get_terminal_size().columns - 1
        sys.stderr.write("\r" + line[:width].ljust(width))
    else:
        sys.stderr.write(f"[{label}] {done}/{total}\n")
    sys.stderr.flush()


def end_bar() -> None:
    """Ends the line a terminal's bar was redrawn on (elsewhere each draw ended its own)."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")


class ThrottledBar:
    """render_bar for a job polled over and over: on a terminal at every poll; elsewhere
    only when the bar enters another tenth or changes its label, so a log gets ~10 lines."""

    def __init__(self) -> None:
        self.shown: tuple[str, int] | None = None

    def show(self, label: str, done: int, total: int, *, final: bool = False) -> None:
        """`final`: draw this one even within the last tenth drawn, unless it was just drawn."""
        step = max(1, total // 10)
        if (
            sys.stderr.isatty()
            or self.shown is None
            or label != self.shown[0]
            or done // step != self.shown[1] // step
            or (final and self.shown != (label, done))
        ):
            render_bar(label, done, total)
            self.shown = (label, done)


def cancelled(what: str, cancel: Callable[[], Any]) -> int:
    """Ctrl-C while following `what`: cancel it on the server, say so, and exit as interrupted."""
    cancel()
    print(f"\nappliance: cancelled {what}", file=sys.stderr)
    return EXIT_INTERRUPTED
