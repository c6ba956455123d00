"""Shows a new API key's secret, the one time it exists outside its owner's hands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class SecretDialog(ModalScreen[None]):
    """The server keeps only a hash of the key, so this dialog is the only place it is
    ever shown: it says so, and offers a copy (OSC 52, which works over SSH in most
    terminals) besides selecting it with the mouse."""

    DEFAULT_CSS = """
    SecretDialog { align: center middle; }
    SecretDialog > Vertical {
        width: 76; max-width: 98%; height: auto;
        border: thick $warning; background: $surface; padding: 0 1;
    }
    SecretDialog .title { text-style: bold; width: 1fr; }
    SecretDialog .secret {
        height: auto; padding: 0 1; margin: 1 0;
        background: $boost; color: $text; text-style: bold;
    }
    SecretDialog .warning { color: $warning; text-style: bold; height: auto; }
    SecretDialog .hint { color: $text-muted; height: auto; }
    SecretDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    SecretDialog Button { margin-left: 1; }
    """
    AUTO_FOCUS = "#close"
    BINDINGS = [Binding("c", "copy", "Copy"), Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, secret: str) -> None:
        super().__init__()
        self.title_text = title
        self.secret = secret

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.secret, classes="secret", id="secret")
            yield Static("⚠ This key will not be shown again: store it now.", classes="warning")
            yield Static(
                "c copies it to the clipboard (OSC 52); or select it with the mouse (shift+drag in most terminals).",
                classes="hint",
            )
            with Horizontal():
                yield Button("Copy (c)", id="copy", compact=True)
                yield Button("I have stored it", variant="primary", id="close", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.action_close()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)
        self.notify("Key copied to the clipboard (if the terminal allows OSC 52)", timeout=4)

    def action_close(self) -> None:
        self.dismiss(None)
