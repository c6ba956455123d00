"""The one entry point (also `python -m appliance`): serve, run, tui, keys, images,
doctor, backup, restore, telemetry, openapi and report, and eval, suite and prompt (LLM
evaluation). One module per group of commands; each adds its own subcommands to the parser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.cli import images, keys, llm, openapi, operations, report, serve, telemetry, terminal
from appliance.cli.common import common_flags
from appliance.config import ConfigError
from appliance.logging_setup import configure_logging

COMMAND_GROUPS = (serve, terminal, keys, images, operations, telemetry, openapi, report, llm)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_flags()
    for group in COMMAND_GROUPS:
        group.add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"appliance: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear one-line message for expected failures
        from appliance.app import EXPECTED_FAILURES

        if isinstance(exc, EXPECTED_FAILURES):
            print(f"appliance: {getattr(exc, 'detail', exc)}", file=sys.stderr)
            return 1
        raise
