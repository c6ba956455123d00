"""`appliance report ...`: an experiment's export or a comparison report, written to a
file, by the running daemon (the same file `POST /api/v1/experiments/:id/export` and
`POST /api/v1/export/comparison` answer, through appliance.client).

    appliance report comparison exp_1 exp_2 --format latex -o table.tex
    appliance report experiment exp_1 --format csv --include runs -o runs.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.client import ApiError, ApplianceClient, ExportedFile

COMPARISON_FORMATS = ("json", "csv", "markdown", "html", "latex")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", help="write an experiment's export or a comparison report to a file")
    kinds = report.add_subparsers(dest="report_kind", required=True)

    comparison = kinds.add_parser(
        "comparison", parents=[common], help="compare experiments (json, csv, markdown, html, latex)"
    )
    comparison.add_argument("experiment_ids", nargs="+", metavar="EXPERIMENT_ID")
    comparison.add_argument("--format", choices=COMPARISON_FORMATS, default="html")
    comparison.add_argument(
        "--template",
        choices=("publication", "table"),
        default="publication",
        help="latex: a whole document or the table alone",
    )
    comparison.add_argument(
        "--metric", action="append", dest="metrics", help="a metric to report (repeat; default: all)"
    )
    comparison.add_argument("--baseline", help="the experiment the others are tested against (default: the first)")
    comparison.add_argument("--title")
    _connection(comparison)
    comparison.set_defaults(func=cmd_comparison)

    experiment = kinds.add_parser("experiment", parents=[common], help="export one experiment (json or csv)")
    experiment.add_argument("experiment_id")
    experiment.add_argument("--format", choices=("json", "csv"), default="json")
    experiment.add_argument(
        "--include",
        action="append",
        choices=("config", "results", "runs", "telemetry"),
        help="json: parts to include (repeat; default all); csv: the one table (default runs)",
    )
    _connection(experiment)
    experiment.set_defaults(func=cmd_experiment)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="the file to write (default: the name the appliance gives, here)")
    parser.add_argument("--url", help="the daemon's address (default: the local daemon's host and port)")
    parser.add_argument("--api-key-file", help="file holding an API key with 'read' (default: DATA_DIR/admin.key)")


def _client(args: argparse.Namespace) -> ApplianceClient:
    from appliance.config import load_settings
    from appliance.tui.launch import LaunchError, local_url, read_key_file

    url, key_file = args.url, args.api_key_file
    if url is None or key_file is None:
        settings = load_settings({"data_dir": args.data_dir}, config_file=args.config)
        url = url or local_url(settings)
        key_path = Path(key_file).expanduser() if key_file else settings.admin_key_path
    else:
        key_path = Path(key_file).expanduser()
    try:
        key = read_key_file(key_path, local_default=args.api_key_file is None)
    except LaunchError as exc:
        raise SystemExit(f"appliance: {exc.message}") from None
    return ApplianceClient(url, api_key=key, timeout=600)


def _write(made: ExportedFile, output: str | None) -> int:
    path = made.save(output)
    print(f"wrote {path} ({len(made.content)} bytes, {made.media_type})", file=sys.stderr)
    return 0


def _failed(exc: Exception) -> int:
    message = f"{exc.status_code} {exc.code}: {exc.message}" if isinstance(exc, ApiError) else str(exc)
    print(f"appliance: {message}", file=sys.stderr)
    return 1


def cmd_comparison(args: argparse.Namespace) -> int:
    import httpx

    try:
        with _client(args) as client:
            made = client.export_comparison(
                args.experiment_ids,
                args.format,
                args.template,
                metrics=args.metrics,
                baseline=args.baseline,
                title=args.title,
            )
    except (ApiError, httpx.HTTPError) as exc:
        return _failed(exc)
    return _write(made, args.output)


def cmd_experiment(args: argparse.Namespace) -> int:
    import httpx

    try:
        with _client(args) as client:
            made = client.export_experiment(args.experiment_id, args.format, args.include)
    except (ApiError, httpx.HTTPError) as exc:
        return _failed(exc)
    return _write(made, args.output)
