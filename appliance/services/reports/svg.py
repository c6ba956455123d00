"""Charts as hand-written SVG, inline in the HTML report: no script, no library, no
network, so the one file opens anywhere offline. A bar chart with error bars (a metric
per experiment, with its confidence interval) and a line chart (a metric over steps, a
telemetry series over time), each with axes, nice ticks and a legend."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 56
# Presentation as attributes, not CSS: each chart draws the same standing alone.
TICK = 'font-size="11" fill="#444" class="tick"'
AXIS_NAME = 'font-size="12" fill="#222" class="axis-name"'
AXIS = 'stroke="#444" class="axis"'
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")

Point = tuple[float, float]


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering low..high (Heckbert's nice numbers)."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = [round(start, 12)]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 12))
    return ticks


def label(value: float) -> str:
    return f"{value:.4g}"


def _legend(names: list[str]) -> list[tuple[str, float, int]]:
    """Each name's x and row, wrapping at the chart's width (about 6.5 px a character)."""
    placed: list[tuple[str, float, int]] = []
    x, row = float(LEFT), 0
    for name in names:
        shown = name if len(name) <= 40 else name[:39] + "…"
        width = 14 + 6.5 * len(shown) + 18
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = float(LEFT), row + 1
        placed.append((shown, x, row))
        x += width
    return placed


class Frame:
    """Maps data coordinates onto the plot area."""

    def __init__(self, x_range: tuple[float, float], y_ticks: list[float], top: float = TOP) -> None:
        self.top = top
        self.x0, self.x1 = x_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (HEIGHT - self.top - BOTTOM)


def _open(title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>",
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" '
        f'font-size="14" font-weight="600" fill="#222" class="chart-title">{escape(title)}</text>',
    ]


def _y_axis(frame: Frame, ticks: list[float], name: str) -> list[str]:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e5e5e5" class="grid"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {TICK}>{label(tick)}</text>')
    parts.append(
        f'<text x="14" y="{(TOP + HEIGHT - BOTTOM) / 2}" transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2})" '
        f'text-anchor="middle" {AXIS_NAME}>{escape(name)}</text>'
    )
    parts.append(f'<line x1="{LEFT}" y1="{frame.top}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" {AXIS}/>')
    parts.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" {AXIS}/>')
    return parts


def bar_chart(title: str, metric: str, bars: list[tuple[str, float, list[float] | None]]) -> str:
    """One bar per experiment: its mean, and its confidence interval as an error bar."""
    values = [v for _, mean, ci in bars for v in [mean, *(ci or [])]]
    low, high = min([0.0, *values]), max([0.0, *values])
    ticks = nice_ticks(low, high)
    frame = Frame((0, len(bars)), ticks)
    parts = _open(title, f"{metric} per experiment: mean with confidence interval")
    parts += _y_axis(frame, ticks, metric)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(bars))
    for index, (name, mean, interval) in enumerate(bars):
        left = LEFT + index * slot + slot * 0.2
        width = slot * 0.6
        top, zero = frame.y(max(mean, 0.0)), frame.y(min(mean, 0.0))
        parts.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(zero - top, 0.5):.1f}" '
            f'fill="{color(index)}" class="bar"><title>{escape(name)}: {label(mean)}</title></rect>'
        )
        middle = left + width / 2
        if interval is not None:
            y_low, y_high = frame.y(interval[0]), frame.y(interval[1])
            parts.append(
                f'<path d="M{middle:.1f} {y_low:.1f}V{y_high:.1f}M{middle - 8:.1f} {y_low:.1f}h16'
                f'M{middle - 8:.1f} {y_high:.1f}h16" stroke="#111" stroke-width="1.5" fill="none" class="error-bar"/>'
            )
        parts.append(
            f'<text x="{middle:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" {TICK}>{escape(name[:24])}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _time_label(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%m-%d %H:%M")


def line_chart(title: str, y_name: str, x_name: str, lines: list[tuple[str, list[Point]]], *, time_axis: bool) -> str:
    """One line per named series; x is a step or, with time_axis, epoch seconds."""
    points = [p for _, series in lines for p in series]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ticks = nice_ticks(min(ys), max(ys))
    keys = _legend([name for name, _ in lines])
    top = TOP + 16 * (keys[-1][2] + 1) if keys else TOP
    frame = Frame((min(xs), max(xs)), ticks, top)
    parts = _open(title, f"{y_name} over {x_name}")
    parts += _y_axis(frame, ticks, y_name)
    for index, (name, key_x, row) in enumerate(keys):
        key_y = TOP + 4 + 16 * row
        parts.append(f'<rect x="{key_x}" y="{key_y - 9}" width="10" height="10" fill="{color(index)}"/>')
        parts.append(
            f'<text x="{key_x + 14}" y="{key_y}" font-size="11" fill="#444" class="legend">{escape(name)}</text>'
        )
    x_ticks = (
        nice_ticks(frame.x0, frame.x1, 6)
        if not time_axis
        else [frame.x0 + i * (frame.x1 - frame.x0) / 4 for i in range(5)]
    )
    for tick in x_ticks:
        if frame.x0 <= tick <= frame.x1:
            text = _time_label(tick) if time_axis else label(tick)
            anchor = (
                "end"
                if tick == x_ticks[-1] and time_axis
                else "start"
                if tick == x_ticks[0] and time_axis
                else "middle"
            )
            parts.append(
                f'<text x="{frame.x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" font-size="11" '
                f'fill="#444" class="tick">{text}</text>'
            )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - BOTTOM + 34}" text-anchor="middle" {AXIS_NAME}>'
        f"{escape(x_name)}</text>"
    )
    for index, (name, series) in enumerate(lines):
        ordered = sorted(series)
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{frame.x(x):.1f} {frame.y(y):.1f}" for i, (x, y) in enumerate(ordered)
        )
        parts.append(
            f'<path d="{path}" stroke="{color(index)}" stroke-width="2" fill="none" class="line">'
            f"<title>{escape(name)}</title></path>"
        )
        if len(ordered) == 1:
            only_x, only_y = ordered[0]
            parts.append(f'<circle cx="{frame.x(only_x):.1f}" cy="{frame.y(only_y):.1f}" r="3" fill="{color(index)}"/>')
    parts.append("</svg>")
    return "\n".join(parts)
