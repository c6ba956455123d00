"""`appliance tui` and `appliance run`: the commands that give the terminal to the TUI.

`run` puts the server, the scheduler, the pool and the TUI in one process and one event
loop; while the TUI owns the terminal, uvicorn gets no signal handlers and the log goes
to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.cli.common import add_server_flags, raise_priority, server_settings
from appliance.logging_setup import RedactSecrets

if TYPE_CHECKING:
    from appliance.app import Appliance

log = logging.getLogger("appliance")

LOG_FILE_BYTES, LOG_FILE_BACKUPS = 10 * 1024 * 1024, 3


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "run",
        parents=[common],
        help="the server and the TUI in one process (the log goes to DATA_DIR/logs/appliance.log)",
    )
    add_server_flags(run)
    run.add_argument("--light", action="store_true", help="start with the light theme")
    run.set_defaults(func=cmd_run)

    tui = sub.add_parser("tui", parents=[common], help="the TUI, attached to a running daemon")
    tui.add_argument(
        "--url",
        help="the daemon's address, e.g. http://127.0.0.1:8080 (default: the "
        "local daemon's host and port from the settings)",
    )
    tui.add_argument(
        "--api-key-file", help="file holding an API key with the 'read' permission (default: DATA_DIR/admin.key)"
    )
    tui.add_argument("--light", action="store_true", help="start with the light theme")
    tui.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from appliance.tui.app import create_tui
    from appliance.tui.launch import LaunchError, attach_backend

    try:
        backend = attach_backend(args.url, args.api_key_file, data_dir=args.data_dir, config_file=args.config)
    except LaunchError as exc:
        print(f"appliance: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if not _has_terminal():
        backend.close()
        return 2
    app = create_tui(backend, dark=not args.light)
    with _logging_to(logging.NullHandler()):  # a log line on stderr would tear the screen
        app.run()
    return app.return_code or 0


def cmd_run(args: argparse.Namespace) -> int:
    """Server, scheduler, pool and TUI in one process and one event loop."""
    from appliance.app import Appliance
    from appliance.logging_setup import PrivateRotatingFileHandler

    settings = server_settings(args)
    appliance = Appliance(settings)
    appliance.check_startable()  # one clear line before the TUI takes the terminal
    try:  # before anything starts: a taken port is one clear line, not a dead TUI
        listener = _listen(settings.host, settings.port)
    except OSError as exc:
        print(
            f"appliance: cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}): is "
            "`appliance serve` running already? Attach to it with `appliance tui`, or pick another --port",
            file=sys.stderr,
        )
        return 1
    if not _has_terminal():
        listener.close()
        return 2
    raise_priority(settings.server_nice)
    log_path = settings.data_path / "logs" / "appliance.log"
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(
        f"appliance {__version__}: starting on port {listener.getsockname()[1]} (data dir "
        f"{settings.data_path}); the log goes to {log_path}",
        file=sys.stderr,
        flush=True,
    )
    handler = PrivateRotatingFileHandler(log_path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS)
    try:
        with _logging_to(handler):
            code = asyncio.run(_run_one_process(appliance, listener, dark=not args.light))
    except KeyboardInterrupt:  # Ctrl+C while starting, before the TUI has the keyboard
        code = 130
    finally:
        print(f"appliance: stopped; the log is in {log_path}", file=sys.stderr)
    if appliance.admin_key_created:
        print(f"appliance: the first admin API key was written to {appliance.admin_key_created}", file=sys.stderr)
    return code


async def _run_one_process(appliance: Appliance, listener: socket.socket, *, dark: bool) -> int:
    import uvicorn

    from appliance.http.app_factory import create_app
    from appliance.tui.app import create_tui
    from appliance.tui.launch import in_process_backend, loopback_url

    await appliance.start()
    config = uvicorn.Config(
        create_app(appliance, manage_lifecycle=False),
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )

    class ServerWithoutSignals(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the TUI owns the terminal and its signals

    server = ServerWithoutSignals(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="http-server")
    session_key_id = None
    try:
        while not server.started:  # the client below must find the server listening
            if serving.done():
                serving.result()
                raise RuntimeError("the HTTP server stopped while starting (see the log)")
            await asyncio.sleep(0.02)
        api_key, session_key_id = await _tui_key(appliance)
        url = loopback_url(*listener.getsockname()[:2])
        app = create_tui(in_process_backend(url, api_key, appliance.bus, appliance.alerts.readings), dark=dark)

        def server_died(_: asyncio.Task[None]) -> None:
            app.exit(return_code=1, message="appliance: the HTTP server stopped; see the log")

        serving.add_done_callback(server_died)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill` or a dropped SSH session: stop cleanly
            loop.add_signal_handler(sig, app.exit)
        try:
            await app.run_async()
        finally:
            serving.remove_done_callback(server_died)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return app.return_code or 0
    finally:
        # The TUI has given the terminal back; removing the warm containers can take a
        # while on a busy engine, so say what the wait is for.
        print("appliance: stopping: HTTP server, queue, warm containers…", file=sys.stderr, flush=True)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        if session_key_id is not None:
            from appliance.core.identity import LOCAL_OPERATOR

            await appliance.auth.revoke_key(LOCAL_OPERATOR, session_key_id)
        await appliance.stop()  # sandboxes keep running, as with serve


async def _tui_key(appliance: Appliance) -> tuple[str, str | None]:
    """The TUI's key: the data dir's admin key, or, where an operator has removed that
    file, a key for this session only (returned with its id, to revoke at exit)."""
    from appliance.core.errors import AppError
    from appliance.core.identity import ADMIN, LOCAL_OPERATOR
    from appliance.tui.launch import LaunchError, read_key_file

    try:
        key = read_key_file(appliance.settings.admin_key_path)
        await appliance.auth.authenticate_key(key)
        return key, None
    except (LaunchError, AppError):
        created = await appliance.auth.create_key(LOCAL_OPERATOR, "tui (appliance run)", [ADMIN], owner="admin")
        log.info(
            "no usable admin key in %s: the TUI uses session key %s, revoked at exit",
            appliance.settings.admin_key_path,
            created.record.key_id,
        )
        return created.secret, created.record.key_id


def _has_terminal() -> bool:
    if sys.stdin.isatty() and sys.stdout.isatty():
        return True
    print(
        "appliance: the TUI needs a terminal; over SSH ask for one: ssh -t HOST appliance tui "
        "(or run `appliance serve` for no TUI)",
        file=sys.stderr,
    )
    return False


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


@contextlib.contextmanager
def _logging_to(handler: logging.Handler) -> Iterator[None]:
    """While a TUI owns the terminal, log records go to `handler` instead of stderr."""
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = saved
        handler.close()
