"""Asks what a new sandbox starts from (a template from GET /api/templates) and its name."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

PREFERRED_TEMPLATE = "basic-python"


class CreateSandboxDialog(ModalScreen[dict[str, Any] | None]):
    """Dismisses with {"template", "name"} (name None for the default, the id) or None."""

    DEFAULT_CSS = """
    CreateSandboxDialog { align: center middle; }
    CreateSandboxDialog > Vertical {
        width: 64; max-width: 95%; height: auto;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    CreateSandboxDialog .title { text-style: bold; width: 1fr; margin-bottom: 1; }
    CreateSandboxDialog .hint { color: $text-muted; height: auto; }
    CreateSandboxDialog Label.field { margin-top: 1; }
    CreateSandboxDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    CreateSandboxDialog Button { margin-left: 1; }
    """
    AUTO_FOCUS = "#name"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, templates: list[dict[str, Any]]) -> None:
        super().__init__()
        self.templates = templates

    def compose(self) -> ComposeResult:
        options = [(self._label(t), t["template_id"]) for t in self.templates]
        with Vertical():
            yield Label("New sandbox", classes="title")
            yield Label("Template (runtime)")
            yield Select(options, value=self._default(), allow_blank=False, id="template", compact=True)
            yield Label("Name (optional; default: its id)", classes="field")
            yield Input(placeholder="my-sandbox, Enter to create", id="name", max_length=100, compact=True)
            yield Static("Default limits, no network (the API can change them).", classes="hint")
            with Horizontal():
                yield Button("Create", variant="primary", id="create", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @staticmethod
    def _label(template: dict[str, Any]) -> str:
        version = template.get("runtime_version")
        label = f"{template.get('runtime', '?')} {version or ''}".strip()
        if not template.get("available", True):
            label += " (image not built)"
        return f"{label} · {template['template_id']}"

    def _default(self) -> str:
        ids = [t["template_id"] for t in self.templates]
        built = [t["template_id"] for t in self.templates if t.get("available", True)]
        if PREFERRED_TEMPLATE in built:
            return PREFERRED_TEMPLATE
        return (built or ids)[0]

    def _result(self) -> dict[str, Any]:
        name = self.query_one("#name", Input).value.strip()
        return {"template": self.query_one("#template", Select).value, "name": name or None}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self._result())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self._result() if event.button.id == "create" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
