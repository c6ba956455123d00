"""The program of an evaluation, highlighted, with line numbers."""

from __future__ import annotations

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

# Our language names (docs/api.md) -> Pygments lexers
LEXERS = {
    "python": "python",
    "javascript": "javascript",
    "bash": "bash",
    "c": "c",
    "cpp": "cpp",
    "rust": "rust",
    "go": "go",
    "java": "java",
}


class CodeView(VerticalScroll, can_focus=True):
    """Scrolls both ways; `complete=False` says that only the API's preview is known."""

    DEFAULT_CSS = """
    CodeView { height: 1fr; }
    CodeView > Static { width: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.code = ""
        self._body = Static("")

    def compose(self):
        yield self._body

    def show(self, code: str, language: str | None, *, complete: bool = True) -> None:
        self.code = code
        syntax = Syntax(
            code,
            LEXERS.get(language or "", "text"),
            line_numbers=True,
            theme="ansi_light" if not self.app.current_theme.dark else "ansi_dark",
            background_color="default",
        )
        if complete:
            self._body.update(syntax)
        else:
            note = Text("Only the first 100 characters: the API does not send the whole program.", style="italic dim")
            self._body.update(Group(note, syntax))
