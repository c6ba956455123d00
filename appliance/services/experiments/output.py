"""What a run's program prints, line by line, turned into what the run reports.

stdout lines:
- `{"metrics": {"loss": 0.3, ...}, "step": 5}`: a metrics line (step optional: the one
  after the last; `"progress"` may ride along; `"checkpoint": "<file>"` names the
  checkpoint file these metrics belong to);
- `{"progress": 0.4}`: the run's progress (0 to 1);
- `{"tags": ["model:gpt4", ...]}`: tags added to the run (services/experiments/run_tags.py);
- `{"level": "warning", "message": "..."}`: a log line at that level;
- anything else: a log line, level from a prefix (`WARNING:`, `ERROR:`, `[info]`, ...)
  or info.
stderr lines are log lines too, at the level their prefix names, else warning (a
Python traceback's lines, error).

A line is attributed to the run whose program printed it, whatever it says (an
`"run_id"` in it means nothing). A line longer than `MAX_LINE_CHARS` is cut there. Once
the run's caps on metric points and log lines are both reached (`sink.saturated`), the
rest of the output is only scanned for its last progress value, so a program flooding
its output costs the appliance little.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any, Protocol

import msgspec

from appliance.core.experiments import LogLevel

MAX_LINE_CHARS = 64 * 1024

_PREFIX = re.compile(r"^\s*\[?(?P<level>debug|info|warn|warning|error|critical|fatal)\]?(?:[:\s]|$)", re.IGNORECASE)
_LEVELS = {
    "debug": LogLevel.DEBUG,
    "info": LogLevel.INFO,
    "warn": LogLevel.WARNING,
    "warning": LogLevel.WARNING,
    "error": LogLevel.ERROR,
    "critical": LogLevel.ERROR,
    "fatal": LogLevel.ERROR,
}
_TRACEBACK = re.compile(r"^(Traceback \(most recent call last\):|\w+(Error|Exception)\b.*:)")
_PROGRESS = re.compile(r'"progress"\s*:\s*(-?[0-9.eE+-]+)')


class RunSink(Protocol):
    def metrics(self, values: dict[str, float], step: int | None, checkpoint: str | None = None) -> None: ...

    def progress(self, value: float) -> None: ...

    def tags(self, tags: list[Any]) -> None: ...

    def log(self, level: LogLevel, message: str) -> None: ...

    @property
    def metrics_full(self) -> bool: ...

    @property
    def logs_full(self) -> bool: ...


class LineSplitter:
    """Whole lines out of chunks of text; a line past `MAX_LINE_CHARS` is cut there and
    the rest of it dropped. Splits in C (`str.split`): a flood of short lines costs a
    list, not a Python step per character."""

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._size = 0

    def feed(self, text: str) -> list[str]:
        parts = text.split("\n")
        if len(parts) == 1:
            self._keep(text)
            return []
        self._keep(parts[0])
        first = "".join(self._partial)
        self._partial, self._size = [], 0
        self._keep(parts[-1])
        lines = [first, *parts[1:-1]]
        if any(len(line) > MAX_LINE_CHARS for line in lines):
            lines = [line[:MAX_LINE_CHARS] for line in lines]
        return lines

    def flush(self) -> list[str]:
        if not self._partial:
            return []
        line = "".join(self._partial)
        self._partial, self._size = [], 0
        return [line]

    def _keep(self, piece: str) -> None:
        room = MAX_LINE_CHARS - self._size
        if piece and room > 0:
            piece = piece[:room]
            self._partial.append(piece)
            self._size += len(piece)


def finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def prefix_level(line: str) -> LogLevel | None:
    match = _PREFIX.match(line)
    return _LEVELS[match.group("level").lower()] if match else None


class RunOutputParser:
    def __init__(self, sink: RunSink) -> None:
        self._sink = sink
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def feed(self, stream: str, text: str) -> None:
        sink = self._sink
        if sink.metrics_full and sink.logs_full:
            self._scan_progress(text)
            return
        for line in self._splitters[stream].feed(text):
            # Past a cap, lines of the kind it caps are dropped unread (bar a progress).
            if "{" in line[:16]:
                if sink.metrics_full and '"metrics"' in line:
                    if '"progress"' in line:
                        self._scan_progress(line)
                    continue
            elif sink.logs_full:
                continue
            self._line(stream, line)

    def close(self) -> None:
        for stream, splitter in self._splitters.items():
            for line in splitter.flush():
                self._line(stream, line)

    def _scan_progress(self, text: str) -> None:
        found = _PROGRESS.findall(text)
        if found:
            with contextlib.suppress(ValueError):
                self._sink.progress(float(found[-1]))

    def _line(self, stream: str, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        if stream == "stdout" and line.lstrip().startswith("{"):
            decoded: Any = None
            try:
                decoded = msgspec.json.decode(line)
            except msgspec.DecodeError:
                # Python's json writes NaN and Infinity, and reads numbers past a double.
                with contextlib.suppress(ValueError, RecursionError):
                    decoded = json.loads(line)
            if isinstance(decoded, dict) and self._structured(decoded):
                return
        level = prefix_level(line)
        if stream == "stderr":
            level = level or (LogLevel.ERROR if _TRACEBACK.match(line) else LogLevel.WARNING)
        self._sink.log(level or LogLevel.INFO, line)

    def _structured(self, obj: dict[str, Any]) -> bool:
        """Handle a JSON object line; False when it is none of the structured kinds."""
        handled = False
        metrics = obj.get("metrics")
        if isinstance(metrics, dict):
            values = {str(k): v for k, v in ((k, finite_number(v)) for k, v in metrics.items()) if v is not None}
            dropped = [str(k) for k in metrics if str(k) not in values]
            step = obj.get("step")
            step_value = step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None
            checkpoint = obj.get("checkpoint")
            self._sink.metrics(values, step_value, checkpoint if isinstance(checkpoint, str) else None)
            if dropped:
                self._sink.log(
                    LogLevel.WARNING,
                    f"[appliance] metrics must be finite numbers; left out: {', '.join(dropped)[:500]}",
                )
            handled = True
        progress = finite_number(obj.get("progress"))
        if progress is not None:
            self._sink.progress(progress)
            handled = True
        tags = obj.get("tags")
        if isinstance(tags, list):
            self._sink.tags(tags)
            handled = True
        if not handled and isinstance(obj.get("message"), str):
            level = obj.get("level")
            chosen = _LEVELS.get(level.lower()) if isinstance(level, str) else None
            self._sink.log(chosen or LogLevel.INFO, obj["message"])
            handled = True
        return handled
