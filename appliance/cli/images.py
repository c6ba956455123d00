"""`appliance images build|list|export|import`: runtime images, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cli.common import settings_from_args

if TYPE_CHECKING:
    from appliance.services.operations.images import RuntimeImages


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    imgs = sub.add_parser("images", help="runtime images").add_subparsers(dest="images_command", required=True)
    build = imgs.add_parser("build", parents=[common], help="build runtime images from Debian packages")
    build.add_argument("image", nargs="*", help="image keys (default: all)")
    build.add_argument("--force", action="store_true", help="rebuild images that exist")
    build.set_defaults(func=cmd_images_build)
    imgs.add_parser("list", parents=[common], help="list runtime images").set_defaults(func=cmd_images_list)
    export = imgs.add_parser("export", parents=[common], help="save images to a tarball (docker save)")
    export.add_argument("file")
    export.add_argument("image", nargs="*")
    export.set_defaults(func=cmd_images_export)
    load = imgs.add_parser("import", parents=[common], help="load images from a tarball (docker load)")
    load.add_argument("file")
    load.set_defaults(func=cmd_images_import)


def _images(args: argparse.Namespace) -> RuntimeImages:
    from appliance.services.operations.images import RuntimeImages  # the docker SDK: only when asked

    return RuntimeImages(settings_from_args(args))


def render_progress(key: str, fraction: float, message: str) -> None:
    from appliance.services.operations.images import render_progress as render

    render(key, fraction, message)


def cmd_images_build(args: argparse.Namespace) -> int:
    built = _images(args).build(args.image or None, only_missing=not args.force, progress=render_progress)
    print("built: " + (", ".join(built) if built else "nothing (all present; --force rebuilds)"), file=sys.stderr)
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    print(f"{'IMAGE':12} {'REFERENCE':44} {'PRESENT':8} SIZE")
    for row in _images(args).list():
        size = f"{row.size / 1e6:.0f} MB" if row.present and row.size else "-"
        print(f"{row.key:12} {row.ref:44} {'yes' if row.present else 'no':8} {size}")
    return 0


def cmd_images_export(args: argparse.Namespace) -> int:
    _images(args).export(Path(args.file), args.image or None, progress=render_progress)
    print(f"wrote {args.file}", file=sys.stderr)
    return 0


def cmd_images_import(args: argparse.Namespace) -> int:
    loaded = _images(args).load(Path(args.file), progress=render_progress)
    print("loaded: " + ", ".join(loaded), file=sys.stderr)
    return 0
