"""A labelled percentage bar: `CPU    ██████░░░░░░  45.2%`."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

# Where the bar turns from calm to warning to alarming, in percent. The alert rules'
# default thresholds are 90%, so the bar is red where an alert is near.
WARNING_PERCENT = 70.0
CRITICAL_PERCENT = 90.0
VALUE_WIDTH = 7  # " 100.0%" or "     —"


class Gauge(Static):
    """One line: the label, a bar that fills the width left, and the value. `value` is
    None until the first figure arrives (the bar shows empty and the value a dash).
    A Static, so tools that read a screen's text (tests, screenshots) read it too."""

    DEFAULT_CSS = """
    Gauge {
        height: 1;
        width: 1fr;
    }
    Gauge > .gauge--label { text-style: bold; }
    Gauge > .gauge--filled { color: $success; }
    Gauge.-warning > .gauge--filled { color: $warning; }
    Gauge.-critical > .gauge--filled { color: $error; }
    Gauge > .gauge--empty { color: $foreground 25%; }
    """
    COMPONENT_CLASSES = {"gauge--label", "gauge--filled", "gauge--empty"}

    value: reactive[float | None] = reactive(None)

    def __init__(self, label: str, *, label_width: int = 7, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.label_width = max(label_width, len(label) + 1)

    def watch_value(self, value: float | None) -> None:
        self.set_class(value is not None and CRITICAL_PERCENT > value >= WARNING_PERCENT, "-warning")
        self.set_class(value is not None and value >= CRITICAL_PERCENT, "-critical")

    def render(self) -> Text:
        value = self.value
        bar_width = max(self.content_size.width - self.label_width - VALUE_WIDTH, 0)
        share = 0.0 if value is None else min(max(value, 0.0), 100.0) / 100.0
        filled = round(bar_width * share)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self.label.ljust(self.label_width), self.get_component_rich_style("gauge--label"))
        text.append("█" * filled, self.get_component_rich_style("gauge--filled"))
        text.append("░" * (bar_width - filled), self.get_component_rich_style("gauge--empty"))
        text.append(("—" if value is None else f"{value:.1f}%").rjust(VALUE_WIDTH))
        return text
