"""`appliance openapi`: the OpenAPI document the server serves at /api/openapi.yaml,
printed without starting a server (docs/openapi.yaml is this output, committed)."""

from __future__ import annotations

import argparse
import json
import sys


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    openapi = sub.add_parser(
        "openapi",
        help="print the OpenAPI document (as GET /api/openapi.yaml serves it)",
        description="Regenerate the committed copy with: appliance openapi > docs/openapi.yaml",
    )
    openapi.add_argument("--json", action="store_true", help="JSON, as GET /api/openapi.json serves it")
    openapi.set_defaults(func=cmd_openapi)


def cmd_openapi(args: argparse.Namespace) -> int:
    from appliance.http.app_factory import openapi_document
    from appliance.http.docs import openapi_yaml_text

    document = openapi_document()
    sys.stdout.write(json.dumps(document, indent=2) + "\n" if args.json else openapi_yaml_text(document))
    return 0
