"""What every command shares: the settings from the common flags, the process priority."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from appliance.config import Settings, load_settings

log = logging.getLogger("appliance")


def common_flags() -> argparse.ArgumentParser:
    """The flags every command that reads the settings takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default ~/.local/share/appliance; env APPLIANCE_DATA_DIR)")
    common.add_argument("--config", help="config file (default DATA_DIR/config.toml)")
    return common


def settings_from_args(args: argparse.Namespace, **flags: Any) -> Settings:
    return load_settings({"data_dir": args.data_dir, **flags}, config_file=args.config)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--workers", type=int, help="evaluations run at once (default 4)")
    parser.add_argument(
        "--cluster", metavar="HOST:PORT", help="cluster mode: join this Ray cluster and run sandboxes on its nodes"
    )


def server_settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args, host=args.host, port=args.port, workers=args.workers, cluster=args.cluster)


def raise_priority(nice: int) -> None:
    """The control plane outranks what it runs: when sandboxes, fork bombs included, fill
    every core, the API still answers. Raising priority needs root; without it, stay."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        log.info("running at normal priority (raising it to nice %d needs root)", nice)
