"""A dialog that asks for an optional comment before an action (acknowledge, resolve)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

MAX_COMMENT = 2000  # what the API accepts (docs/sandbox-api.md, Alerts)


class CommentDialog(ModalScreen[str | None]):
    """Dismisses with the comment ("" for none) on OK, None on Cancel."""

    DEFAULT_CSS = """
    CommentDialog { align: center middle; }
    CommentDialog > Vertical {
        width: 72; max-width: 95%; height: auto;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    CommentDialog .title { text-style: bold; width: 1fr; }
    CommentDialog .about { color: $text-muted; height: auto; max-height: 4; }
    CommentDialog Horizontal { height: auto; align-horizontal: right; }
    CommentDialog Button { margin-left: 1; }
    """
    AUTO_FOCUS = "#comment"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, about: str = "", *, ok_label: str = "OK") -> None:
        super().__init__()
        self.title_text = title
        self.about = about
        self.ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            if self.about:
                yield Static(self.about, classes="about")
            yield Input(
                placeholder="comment (optional), Enter to confirm", max_length=MAX_COMMENT, id="comment", compact=True
            )
            with Horizontal():
                yield Button(self.ok_label, variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.query_one(Input).value.strip() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
