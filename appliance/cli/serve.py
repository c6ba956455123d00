"""`appliance serve`: the HTTP/WebSocket server, the scheduler and the pool, no TUI."""

from __future__ import annotations

import argparse
import sys

from appliance import __version__
from appliance.cli.common import add_server_flags, raise_priority, server_settings


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common], help="run the HTTP/WebSocket server")
    add_server_flags(serve)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from appliance.app import Appliance
    from appliance.http.app_factory import create_app

    settings = server_settings(args)
    appliance = Appliance(settings)
    appliance.check_startable()  # before listening: a refused start is one clear line
    raise_priority(settings.server_nice)
    app = create_app(appliance)
    print(
        f"appliance {__version__}: serving on http://{settings.host}:{settings.port} (data dir {settings.data_path})",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0
