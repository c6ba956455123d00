"""`appliance doctor`, `backup` and `restore`: looking after the machine and the data dir."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from appliance.cli.common import settings_from_args


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="check this machine: engine, runtimes, images, disk, data dir, port, clock; say what to fix",
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument(
        "--cluster", metavar="HOST:PORT", help="cluster mode: also check the versions on the Ray cluster's nodes"
    )
    doctor.set_defaults(func=cmd_doctor)
    backup = sub.add_parser("backup", parents=[common], help="write the data dir to a new .tar.gz (safe while serving)")
    backup.add_argument("file")
    backup.add_argument(
        "--no-telemetry", action="store_true", help="leave the telemetry events (DATA_DIR/telemetry.db) out"
    )
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", parents=[common], help="restore a backup into the data dir (not while serving)")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true", help="move the data there to DATA_DIR/replaced-<time>Z/ first")
    restore.set_defaults(func=cmd_restore)


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.services.operations import doctor_report
    from appliance.services.operations.doctor import run_checks
    from appliance.services.operations.doctor_check import FAIL

    # Repeated in the fixes it suggests (`appliance images build --data-dir D`).
    given = (("--data-dir", args.data_dir), ("--config", args.config))
    flags = "".join(f" {flag} {shlex.quote(value)}" for flag, value in given if value)
    checks = run_checks(settings_from_args(args, cluster=args.cluster), flags)
    print(
        doctor_report.render_json(checks)
        if args.json
        else doctor_report.render_text(checks, colour=sys.stdout.isatty())
    )
    return 1 if any(c.status == FAIL for c in checks) else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from appliance.services.operations.backup import create_backup
    from appliance.services.operations.images import render_progress

    s = settings_from_args(args)
    summary = create_backup(
        s.data_path, s.database_path, Path(args.file), progress=render_progress, include_telemetry=not args.no_telemetry
    )
    print(summary.describe(), file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance.services.operations.images import render_progress
    from appliance.services.operations.restore import restore_backup

    s = settings_from_args(args)
    summary = restore_backup(Path(args.file), s.data_path, s.database_path, force=args.force, progress=render_progress)
    print(summary.describe(), file=sys.stderr)
    return 0
