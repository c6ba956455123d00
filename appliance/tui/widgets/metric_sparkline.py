"""A titled sparkline with the series' latest, lowest and highest figure:

    CPU %  now 7.0  min 3.1  max 45.2
    ▁▁▂▅█▇▃▂▁▁▂▂▃▂▁

Drawn by hand rather than with Textual's Sparkline, which scales from the series'
minimum: 99.6% next to 100% would look like a spike. Here bars start at zero and
percentages top out at 100, so a bar's height means the same on every screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.widgets import Static

BARS = "▁▂▃▄▅▆▇█"
LEVELS_PER_ROW = len(BARS)


def format_number(value: float) -> str:
    """Counts as integers, other figures with one decimal."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def format_percent(value: float) -> str:
    return f"{value:.1f}"


def format_seconds(value: float) -> str:
    """Run times: milliseconds below a second, seconds above."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def columns_of(values: Sequence[float | None], width: int) -> list[float | None]:
    """`width` figures from `values`: the highest of each group when there are more
    values than columns, each value repeated across its share when there are fewer."""
    if not values or width <= 0:
        return []
    columns: list[float | None] = []
    for column in range(width):
        start = column * len(values) // width
        end = max((column + 1) * len(values) // width, start + 1)
        figures = [v for v in values[start:end] if v is not None]
        columns.append(max(figures) if figures else None)
    return columns


class MetricSparkline(Static):
    """`show(values)` draws the series, oldest first, one title line and the rest of the
    widget's height in bars. A None is a stretch without a figure (no sample taken
    then): a gap in the bars, left out of min and max. `ceiling` fixes the top of the
    scale (100 for percentages); without it the series' highest figure is the top."""

    DEFAULT_CSS = """
    MetricSparkline {
        height: 2;
        width: 1fr;
        padding: 0 1 0 0;
    }
    MetricSparkline > .metric-sparkline--title { text-style: bold; }
    MetricSparkline > .metric-sparkline--range { color: $text-muted; }
    MetricSparkline > .metric-sparkline--bars { color: $accent; }
    MetricSparkline > .metric-sparkline--zero { color: $foreground 30%; }
    """
    COMPONENT_CLASSES = {
        "metric-sparkline--title",
        "metric-sparkline--range",
        "metric-sparkline--bars",
        "metric-sparkline--zero",
    }

    def __init__(
        self,
        title: str,
        *,
        formatter: Callable[[float], str] = format_number,
        ceiling: float | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.formatter = formatter
        self.ceiling = ceiling
        self.values: list[float | None] = []
        self.latest: float | None = None

    def show(self, values: Sequence[float | None], latest: float | None = None) -> None:
        """`latest` defaults to the series' last figure."""
        self.values = list(values)
        self.latest = latest if latest is not None else (self.values[-1] if self.values else None)
        self.refresh()

    def render(self) -> Text:
        text = self._title_line()
        rows = self.content_size.height - 1
        if rows > 0:
            text.append("\n")
            text.append_text(self._bars(self.content_size.width, rows))
        return text

    def _title_line(self) -> Text:
        # The latest figure first: on a narrow screen the ellipsis takes min and max.
        figures = [v for v in self.values if v is not None]
        text = Text(
            self.title,
            self.get_component_rich_style("metric-sparkline--title"),
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
        text.append(f"  now {'—' if self.latest is None else self.formatter(self.latest)}")
        if figures:
            text.append(
                f"  min {self.formatter(min(figures))}  max {self.formatter(max(figures))}",
                self.get_component_rich_style("metric-sparkline--range"),
            )
        text.truncate(self.content_size.width, overflow="ellipsis")
        return text

    def _bars(self, width: int, rows: int) -> Text:
        columns = columns_of(self.values, width)
        figures = [v for v in columns if v is not None]
        top = self.ceiling if self.ceiling is not None else max(figures, default=0.0)
        levels = rows * LEVELS_PER_ROW
        heights: list[int | None] = []
        for value in columns:
            if value is None:
                heights.append(None)
            elif value <= 0 or top <= 0:
                heights.append(0)
            else:  # anything above zero shows at least the lowest bar
                heights.append(max(1, min(levels, round(value / top * levels))))
        bars = self.get_component_rich_style("metric-sparkline--bars")
        zero = self.get_component_rich_style("metric-sparkline--zero")
        text = Text(no_wrap=True, end="")
        for row in reversed(range(rows)):
            for height in heights:
                if height is None:
                    text.append(" ")
                elif height == 0:
                    text.append("▁" if row == 0 else " ", zero)
                else:
                    part = height - row * LEVELS_PER_ROW
                    text.append(" " if part <= 0 else BARS[min(part, LEVELS_PER_ROW) - 1], bars)
            if row:
                text.append("\n")
        return text
