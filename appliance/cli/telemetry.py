"""`appliance telemetry export`: a running appliance's events into a file, through its
API (POST /api/v1/telemetry/export), streamed, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    telemetry = sub.add_parser("telemetry", help="telemetry events of a running appliance")
    commands = telemetry.add_subparsers(dest="telemetry_command", required=True)
    export = commands.add_parser(
        "export", parents=[common], help="export events as CSV or JSON lines (a large export waits for its job)"
    )
    export.add_argument("file", help="where to write the export (replaced)")
    export.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file's extension, else csv")
    export.add_argument("--experiment", help="only this experiment's events (filters.experiment_id)")
    export.add_argument("--event-name", help="dotted names, comma-separated; a.b.* takes a.b and every name under it")
    export.add_argument("--after", help="ISO 8601 time: events at or after it")
    export.add_argument("--before", help="ISO 8601 time: events before it")
    export.add_argument(
        "--fields", help="comma-separated: timestamp,event_name,measurements.duration_ms,metadata.model ..."
    )
    export.add_argument("--url", help="the appliance's address (default: the local one from the settings)")
    export.add_argument("--api-key-file", help="file holding an API key with 'read' (default: DATA_DIR/admin.key)")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from appliance.cli.images import render_progress
    from appliance.client import ApiError, ApplianceClient
    from appliance.tui.launch import LaunchError, connection_of

    try:
        url, api_key = connection_of(args.url, args.api_key_file, data_dir=args.data_dir, config_file=args.config)
    except LaunchError as exc:
        print(f"appliance: {exc.message}", file=sys.stderr)
        return exc.exit_code
    target = Path(args.file)
    export_format = args.format or ("jsonl" if target.suffix in (".jsonl", ".ndjson") else "csv")
    filters = {
        name: value
        for name, value in (
            ("experiment_id", args.experiment),
            ("event_name", args.event_name),
            ("after", args.after),
            ("before", args.before),
        )
        if value
    }
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None

    def progress(done: int, total: int) -> None:
        fraction = done / total if total else 0.0
        render_progress("export", min(fraction, 0.99), f"{done:,} of {total:,} events")

    try:
        with ApplianceClient(url, api_key=api_key) as client:
            rows = client.export_events(target, format=export_format, filters=filters, fields=fields, progress=progress)
    except ApiError as exc:
        print(f"appliance: export refused ({exc.status_code}): {exc.message}", file=sys.stderr)
        return 1
    render_progress("export", 1.0, f"{rows:,} events")
    print(f"wrote {rows:,} events to {target}", file=sys.stderr)
    return 0
