"""The selected sandbox in full: its fields, limits and use, files and snapshots."""

from __future__ import annotations

from typing import Any

from textual.content import Content

from appliance.tui.timestamps import utc_text
from appliance.tui.widgets.detail_panel import DetailPanel

STATUS_STYLE = {"running": "$success", "creating": "$warning", "stopped": "$text-muted", "error": "bold $error"}
MAX_FILES_SHOWN = 30


def _size(value: Any) -> str:
    return "—" if value is None else str(value)


def _cores(value: Any) -> str:
    return "—" if value is None else f"{value:g}"


def sandbox_content(sandbox: dict[str, Any], snapshots: list[dict[str, Any]] | None) -> Content:
    status = sandbox.get("status", "?")
    res = sandbox.get("resources") or {}
    network = (sandbox.get("network") or {}).get("enabled")
    lines = [
        Content.assemble(
            (sandbox.get("sandbox_id", "?"), "bold"),
            "  ",
            sandbox.get("name", ""),
            "  ",
            (status, STATUS_STYLE.get(status, "")),
            f" ({sandbox['status_reason']})" if sandbox.get("status_reason") else "",
        ),
        Content(
            f"runtime {sandbox.get('runtime', '?')}  template {sandbox.get('template') or '—'}  "
            f"engine {sandbox.get('engine', '?')}  network {'on' if network else 'off'}"
        ),
        Content(
            f"created {utc_text(sandbox.get('created_at'))} UTC  "
            f"last activity {utc_text(sandbox.get('last_activity'))} UTC"
        ),
        Content(
            f"memory {_size(res.get('memory_used'))} of {_size(res.get('memory_limit'))}  "
            f"cpu {_cores(res.get('cpu_used'))} of {_cores(res.get('cpu_limit'))} cores  "
            f"disk {_size(res.get('disk_used'))} of {_size(res.get('disk_limit'))}"
        ),
    ]
    environment = sandbox.get("environment") or {}
    if environment:
        lines.append(Content("env " + " ".join(f"{k}={v}" for k, v in sorted(environment.items()))))
    files = sandbox.get("files") or []
    count = sandbox.get("file_count", len(files))
    lines.append(Content.from_markup("[b]Files[/b] ($count in all, top of /sandbox shown)", count=count))
    if not files:
        lines.append(Content.from_markup("  [dim]none[/]"))
    for entry in files[:MAX_FILES_SHOWN]:
        kind = "/" if entry.get("type") == "directory" else ""
        size = f"{entry['size']} B" if entry.get("size") is not None else entry.get("type", "")
        lines.append(
            Content(
                f"  {entry.get('path', entry.get('name', '?'))}{kind}  {size}  "
                f"modified {utc_text(entry.get('modified_at'))}"
            )
        )
    if len(files) > MAX_FILES_SHOWN:
        lines.append(Content(f"  … {len(files) - MAX_FILES_SHOWN} more"))
    lines.append(Content.from_markup("[b]Snapshots[/b]"))
    if snapshots is None:
        lines.append(Content.from_markup("  [dim]not loaded[/]"))
    elif not snapshots:
        lines.append(Content.from_markup("  [dim]none[/]"))
    for snap in snapshots or ():
        lines.append(
            Content(
                f"  {snap.get('snapshot_id')}  {snap.get('name', '')}  {snap.get('status', '')}  "
                f"{snap.get('size') or '—'}  {utc_text(snap.get('created_at'))} UTC"
            )
        )
    return Content("\n").join(lines)


class SandboxDetail(DetailPanel):
    """`show(sandbox, snapshots)`, or `show(None)` when none is selected."""

    NOTHING_SELECTED = "No sandbox selected."

    def show(self, sandbox: dict[str, Any] | None, snapshots: list[dict[str, Any]] | None = None) -> None:
        self.show_content(sandbox_content(sandbox, snapshots) if sandbox else None)
