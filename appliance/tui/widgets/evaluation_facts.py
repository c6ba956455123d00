"""The facts of one evaluation: status, exit code, timings, limits and accounting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from appliance.tui.evaluation_text import seconds, size, status_text, utc_stamp, utc_time


class EvaluationFacts(Static):
    """Four short lines from the status body (GET /api/eval-status/{id}), kept current
    from the feed; fields the server does not send are left out or shown as —."""

    DEFAULT_CSS = """
    EvaluationFacts { height: auto; padding: 0 1; }
    """

    def show(self, facts: Mapping[str, Any]) -> None:
        get = facts.get
        text = Text()
        text.append(get("eval_id", ""), style="bold")
        text.append("  ")
        text.append_text(status_text(get("status", "…"), get("success")))
        if get("exit_code") is not None:
            text.append(f" · exit {get('exit_code')}")
        if get("reason"):
            text.append(f" · {get('reason')}", style="bold red" if get("status") != "completed" else "yellow")
        if get("batch_id"):
            text.append(f" · {get('batch_id')}", style="dim")

        text.append("\nTimes ", style="bold")
        text.append(
            f"created {utc_stamp(get('created_at'))} · started {utc_time(get('started_at'))}"
            f" · ended {utc_time(get('completed_at'))} UTC"
        )

        text.append("\nLimits ", style="bold")
        limits = [f"{get('language') or '?'} on {get('engine') or '?'}"]
        if (timeout := get("timeout")) is not None:
            limits.append(f"timeout {seconds(float(timeout))}")
        if get("memory_limit_mb") is not None:
            limits.append(f"memory {get('memory_limit_mb')} MB")
        if get("cpu_limit") is not None:
            limits.append(f"cpu {get('cpu_limit')}")
        if get("network_access") is not None:
            limits.append("network on" if get("network_access") else "no network")
        text.append(" · ".join(limits))

        text.append("\nUsage ", style="bold")
        usage = [f"ran {seconds(get('execution_time'))}", f"peak memory {size(get('memory_used'))}"]
        if get("cpu_time") is not None:
            usage.append(f"cpu {seconds(get('cpu_time'))}")
        hits = get("limits_hit") or []
        usage.append(f"limits hit {', '.join(hits) if hits else 'none'}")
        cut = [name for name, field in (("stdout", "output_truncated"), ("stderr", "error_truncated")) if get(field)]
        if cut:
            usage.append(f"cut: {', '.join(cut)}")
        text.append(" · ".join(usage), style="red" if hits else "")
        self.update(text)
