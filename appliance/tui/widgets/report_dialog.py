"""Asks which report to write: the experiments, the kind and format, and the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

# (kind, format): a comparison report across experiments, or one experiment's export,
# as POST /api/v1/export/comparison and POST /api/v1/experiments/:id/export make them.
REPORTS = (
    ("comparison", "html"),
    ("comparison", "latex"),
    ("comparison", "markdown"),
    ("comparison", "csv"),
    ("comparison", "json"),
    ("experiment", "json"),
    ("experiment", "csv"),
)
EXTENSIONS = {"html": "html", "latex": "tex", "markdown": "md", "csv": "csv", "json": "json"}


@dataclass(frozen=True)
class ReportOrder:
    kind: str  # comparison or experiment
    format: str
    experiment_ids: list[str]
    path: Path


def default_path(kind: str, report_format: str, experiment_ids: list[str]) -> str:
    stem = "comparison" if kind == "comparison" else (experiment_ids[0] if experiment_ids else "experiment")
    return f"{stem}.{EXTENSIONS[report_format]}"


class ReportDialog(ModalScreen[ReportOrder | None]):
    """Dismisses with a ReportOrder, or None (cancelled)."""

    DEFAULT_CSS = """
    ReportDialog { align: center middle; }
    ReportDialog > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ReportDialog .title { text-style: bold; width: 1fr; }
    ReportDialog .error { color: $error; height: auto; }
    ReportDialog Horizontal { height: auto; align-horizontal: right; }
    ReportDialog Button { margin-left: 1; }
    """
    AUTO_FOCUS = "#experiments"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, experiment_ids: list[str], directory: Path | None = None) -> None:
        super().__init__()
        self.experiment_ids = experiment_ids
        self.directory = directory or Path.cwd()
        self._path_edited = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Write a report to a file", classes="title")
            yield Label("Experiments (ids, separated by spaces; a comparison tests each against the first)")
            yield Input(" ".join(self.experiment_ids), id="experiments", compact=True)
            yield Label("Report")
            yield Select(
                ((f"{kind}: {fmt}", (kind, fmt)) for kind, fmt in REPORTS),
                value=REPORTS[0],
                allow_blank=False,
                id="report",
                compact=True,
            )
            yield Label("File")
            yield Input(self._suggested_path(), id="path", compact=True)
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Write", variant="primary", id="write", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _ids(self) -> list[str]:
        return self.query_one("#experiments", Input).value.split() if self.is_mounted else self.experiment_ids

    def _choice(self) -> tuple[str, str]:
        if not self.is_mounted:
            return REPORTS[0]
        value = self.query_one("#report", Select).value
        return value if isinstance(value, tuple) else REPORTS[0]

    def _suggested_path(self) -> str:
        kind, report_format = self._choice()
        return str(self.directory / default_path(kind, report_format, self._ids()))

    def on_select_changed(self, event: Select.Changed) -> None:
        if not self._path_edited:
            with self.prevent(Input.Changed):
                self.query_one("#path", Input).value = self._suggested_path()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "path":
            self._path_edited = True

    def _submit(self) -> None:
        error = self.query_one("#error", Static)
        ids = self._ids()
        kind, report_format = self._choice()
        path_text = self.query_one("#path", Input).value.strip()
        if not ids:
            error.update("Name at least one experiment.")
            self.query_one("#experiments", Input).focus()
            return
        if kind == "experiment" and len(ids) != 1:
            error.update("An experiment's export is of one experiment.")
            self.query_one("#experiments", Input).focus()
            return
        if not path_text:
            error.update("Say which file to write.")
            self.query_one("#path", Input).focus()
            return
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            path = self.directory / path
        if not path.parent.is_dir():
            error.update(f"There is no folder {path.parent}.")
            self.query_one("#path", Input).focus()
            return
        self.dismiss(ReportOrder(kind=kind, format=report_format, experiment_ids=ids, path=path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "write":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
