"""The two ways the TUI gets its `Backend`.

- `attach_backend`: `appliance tui` on a running daemon. The address and the key come
  from the flags, or else from the local settings (host, port, the data dir's admin key).
  Before any screen is drawn, one REST call proves the daemon answers and takes the key,
  so a wrong address or key is one clear line on the terminal, not a banner in a TUI
  that can never connect.
- `in_process_backend`: `appliance run`, where the server runs in this very process.
  The CLI hands over the appliance's bus and readings (this package must not import the
  composition root), and requests still go through the loopback HTTP API, so both ways
  in exercise the same permissions and error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from appliance.client import ApiError, ApplianceClient
from appliance.config import Settings, load_settings
from appliance.tui.backend import Backend
from appliance.tui.feeds import BusFeed, RemoteFeed

PROBE_TIMEOUT_SECONDS = 5.0
# The TUI's own requests: longer than the probe (a list of 1,000 evaluations on a busy
# daemon), short enough that a stalled daemon shows as an error notification.
REQUEST_TIMEOUT_SECONDS = 30.0
KEY_HELP = (
    "pass --api-key-file FILE with a key that has the 'read' permission "
    "(an admin creates one with `appliance keys create --name NAME --permissions read,execute`)"
)

# Exit codes: the invocation cannot work as given (key file) vs the daemon is the problem.
EXIT_USAGE = 2
EXIT_DAEMON = 1


class LaunchError(Exception):
    """Why the TUI cannot start, in one line that says what to do."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- appliance tui ------------------------------------------------------------------------


def attach_backend(
    url: str | None = None, key_file: str | None = None, *, data_dir: str | None = None, config_file: str | None = None
) -> Backend:
    """A Backend on the daemon at `url` with the key in `key_file`; either one left out
    is found in the local settings. Raises LaunchError after a failed check."""
    url, api_key = connection_of(url, key_file, data_dir=data_dir, config_file=config_file)
    client = ApplianceClient(url, api_key=api_key, timeout=REQUEST_TIMEOUT_SECONDS)
    return Backend(client, RemoteFeed(client.ws_base, api_key), url)


def connection_of(
    url: str | None = None, key_file: str | None = None, *, data_dir: str | None = None, config_file: str | None = None
) -> tuple[str, str]:
    """The daemon's address and an API key (as `attach_backend` finds them), checked
    with one request (also for CLI commands that talk to the daemon)."""
    if url is None or key_file is None:
        settings = _local_settings(data_dir, config_file)
        url = url or local_url(settings)
        key_path = Path(key_file).expanduser() if key_file else settings.admin_key_path
    else:
        key_path = Path(key_file).expanduser()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LaunchError(f"--url {url}: give the daemon's address as http://HOST:PORT", EXIT_USAGE)
    api_key = read_key_file(key_path, local_default=key_file is None)
    check_daemon(url, api_key, key_path)
    return url, api_key


def _local_settings(data_dir: str | None, config_file: str | None) -> Settings:
    # ConfigError is left to the CLI, which reports it like every other command does.
    return load_settings({"data_dir": data_dir}, config_file=config_file)


def local_url(settings: Settings) -> str:
    return loopback_url(settings.host, settings.port)


def loopback_url(host: str, port: int) -> str:
    """Where a daemon listening on host:port answers from this machine: on loopback when
    it listens on every address (0.0.0.0 / ::)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def read_key_file(path: Path, *, local_default: bool = False) -> str:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        if local_default:
            raise LaunchError(
                f"no admin key at {path}: start the daemon once (`appliance serve` writes "
                f"it there), point --data-dir at its data dir, or {KEY_HELP}",
                EXIT_USAGE,
            ) from None
        raise LaunchError(f"the API key file {path} does not exist: {KEY_HELP}", EXIT_USAGE) from None
    except PermissionError:
        raise LaunchError(
            f"cannot read the API key file {path} (permission denied): run as the user that owns it, or {KEY_HELP}",
            EXIT_USAGE,
        ) from None
    except (IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        raise LaunchError(
            f"cannot read the API key file {path} ({type(exc).__name__}): {KEY_HELP}", EXIT_USAGE
        ) from None
    if not key:
        raise LaunchError(f"the API key file {path} is empty: {KEY_HELP}", EXIT_USAGE)
    return key


def check_daemon(url: str, api_key: str, key_path: Path) -> None:
    """One authenticated request that needs what the TUI needs (the 'read' permission,
    like the /ws feed): a daemon that is down, or a key it refuses, stops us here."""
    try:
        with ApplianceClient(url, api_key=api_key, timeout=PROBE_TIMEOUT_SECONDS) as probe:
            probe.list_evaluations(limit=1)
    except httpx.ConnectError:
        raise LaunchError(
            f"nothing answers at {url}: start the appliance (`appliance serve`, or its "
            "systemd service), or pass --url with the daemon's address",
            EXIT_DAEMON,
        ) from None
    except httpx.TimeoutException:
        raise LaunchError(
            f"{url} did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s: is the appliance "
            "overloaded, or is --url the address of something else?",
            EXIT_DAEMON,
        ) from None
    except httpx.HTTPError as exc:
        raise LaunchError(f"cannot reach {url} ({type(exc).__name__}: {exc}): check --url", EXIT_DAEMON) from None
    except ApiError as exc:
        raise LaunchError(_refusal(url, key_path, exc), EXIT_DAEMON) from None


def _refusal(url: str, key_path: Path, exc: ApiError) -> str:
    said = f"{exc.status_code}: {exc.message}" if exc.message else str(exc.status_code)
    if exc.status_code == 401:
        return f"the appliance at {url} refused the key in {key_path} ({said}): {KEY_HELP}"
    if exc.status_code == 403:
        return f"the key in {key_path} may not read from {url} ({said}): the TUI needs the 'read' permission"
    if exc.status_code == 429:
        return f"{url} is rate limiting this key ({said}): wait a minute and start again"
    return f"{url} answered {said}: is --url the address of an appliance?"


# --- appliance run ------------------------------------------------------------------------


def in_process_backend(url: str, api_key: str, bus: Any, readings: Any) -> Backend:
    """The TUI of `appliance run`: requests to this process's own server on loopback,
    live events straight from its bus (`appliance.bus`, `appliance.alerts.readings`)."""
    client = ApplianceClient(url, api_key=api_key, timeout=REQUEST_TIMEOUT_SECONDS)
    return Backend(client, BusFeed(bus, readings), f"{url} (in this process)")
