"""The machine's side of `appliance doctor`: the data dir's disk, its permissions and
secrets, the database's schema, the port, and nothing that needs the Docker engine."""

from __future__ import annotations

import errno
import os
import pwd
import shlex
import socket
import sqlite3
import stat
import tempfile
from pathlib import Path

import httpx
import msgspec
import psutil

from appliance import __version__
from appliance.config import SECRET_FILES, Settings
from appliance.services.monitoring.metrics import DISK_MIN_FREE_BYTES
from appliance.services.operations.doctor_check import FAIL, OK, WARN, Check, Status, combine
from appliance.store.data_dir import loose_modes
from appliance.store.database import SchemaTooNew, refuse_newer_schema, schema_version

HTTP_TIMEOUT_SECONDS = 1.5


# --- disks ------------------------------------------------------------------------------


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (a data dir not made yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(name: str, path: Path, fix: str, settings: Settings) -> Check:
    # The same two lines the server draws: /api/health calls the disk unhealthy below
    # DISK_MIN_FREE_BYTES, the disk_usage alert opens at alert_disk_percent (of psutil's
    # figure, as the monitoring samples take it).
    usage = psutil.disk_usage(str(path))
    found = f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB ({usage.percent:.0f}% used) on {path}"
    if usage.free < DISK_MIN_FREE_BYTES:
        return Check(name, FAIL, f"{found}: below the {DISK_MIN_FREE_BYTES // 2**20} MiB /api/health needs", fix)
    if usage.percent >= settings.alert_disk_percent:
        return Check(name, WARN, f"{found}: at or above the disk alert's {settings.alert_disk_percent:g}%", fix)
    return Check(name, OK, found)


def check_data_disk(settings: Settings) -> Check:
    path = _existing(settings.data_path)
    return disk_check(
        "disk data dir",
        path,
        f"free space on that filesystem; du -xh -d2 {shlex.quote(str(path))} | sort -h shows what uses it",
        settings,
    )


# --- the data dir -----------------------------------------------------------------------


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_data_dir(settings: Settings) -> Check:
    name = "data dir"
    path = settings.data_path.absolute()
    me = _owner(os.geteuid())
    if not path.exists():
        parent = _existing(path)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
            return Check(
                name,
                FAIL,
                f"{path} does not exist and {me} cannot create it in {parent}",
                f"mkdir -p {shlex.quote(str(path))} && chown {me}: {shlex.quote(str(path))} "
                "(as root), or choose another --data-dir",
            )
        return Check(name, OK, f"{path} does not exist yet; the first start creates it (in {parent})")
    if not path.is_dir():
        return Check(name, FAIL, f"{path} is not a directory", "choose another --data-dir")
    info = path.stat()
    quoted = shlex.quote(str(path))
    problems: list[tuple[Status, str, str | None]] = []
    try:  # the real test: root may write where os.access says yes but the mount is read-only
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        problems.append(
            (
                FAIL,
                f"{me} cannot write in {path} ({exc.strerror})",
                f"chown -R {me}: {quoted} (as root), or run as its owner {_owner(info.st_uid)}",
            )
        )
    else:
        if info.st_uid != os.geteuid():
            problems.append(
                (
                    WARN,
                    f"{path} is owned by {_owner(info.st_uid)}, not {me}",
                    f"run the appliance as {_owner(info.st_uid)} (sudo -u {_owner(info.st_uid)} "
                    f"appliance ...), or chown -R {me}: {quoted}",
                )
            )
    loose = loose_modes(path)
    if loose:
        shown = ", ".join(f"{item.path} mode {item.mode:04o}" for item in loose[:3])
        more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
        # Each start tightens them too (directories 0700, files 0600); a short list gets
        # the command itself, so the fix works while the appliance stays down.
        fix = "restart the appliance: each start makes directories 0700 and files 0600"
        if len(loose) <= 10:
            fix = "chmod go-rwx " + " ".join(shlex.quote(str(item.path)) for item in loose)
        problems.append((WARN, f"open to other users, who could read evaluations and key hashes: {shown}{more}", fix))
    return combine(name, problems, f"{path}: owned by {me}, writable, mode {stat.S_IMODE(info.st_mode):04o}")


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def check_secrets(settings: Settings) -> Check:
    name = "secrets"
    present = [settings.data_path / file for file in SECRET_FILES if (settings.data_path / file).is_file()]
    if not present:
        return Check(name, OK, f"none yet; the first start writes {' and '.join(SECRET_FILES)} with mode 0600")
    problems: list[tuple[Status, str, str | None]] = []
    for path in present:
        info = path.stat()
        quoted = shlex.quote(str(path.absolute()))
        if info.st_mode & 0o077:
            problems.append(
                (
                    WARN,
                    f"{path.name} is mode {stat.S_IMODE(info.st_mode):04o}; only its owner may read it",
                    f"chmod 600 {quoted}",
                )
            )
        if info.st_uid != os.geteuid():
            problems.append(
                (
                    WARN,
                    f"{path.name} is owned by {_owner(info.st_uid)}, not {_owner(os.geteuid())}",
                    f"chown {_owner(os.geteuid())}: {quoted}, or run as {_owner(info.st_uid)}",
                )
            )
    return combine(name, problems, ", ".join(f"{p.name} 0600" for p in present))


def check_database(settings: Settings) -> Check:
    name = "database"
    path = settings.database_path
    latest = schema_version()
    if not path.exists():
        return Check(name, OK, f"none yet; the first start creates {path} (schema {latest})")
    try:
        refuse_newer_schema(path)  # the very check, and words, the server refuses to start with
        # Read-only: the doctor never migrates or creates anything.
        conn = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True, timeout=2)
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        finally:
            conn.close()
    except SchemaTooNew as exc:
        return Check(
            name,
            FAIL,
            str(exc),
            "run the newer appliance binary that wrote it, or restore a backup "
            "made by this version (see appliance restore --help)",
        )
    except sqlite3.Error as exc:
        return Check(
            name,
            FAIL,
            f"{path} cannot be read as SQLite: {exc}",
            "restore a backup (see appliance restore --help), or move the file away",
        )
    if current < latest:
        return Check(
            name,
            OK,
            f"{path}: schema {current}, {tables} tables; this binary migrates it to {latest} on its next start",
        )
    return Check(name, OK, f"{path}: schema {current} (current), {tables} tables")


# --- the port ---------------------------------------------------------------------------


def _bind(host: str, port: int) -> OSError | None:
    """Bind as uvicorn does (SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"{host!r} does not resolve ({exc.strerror})")
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def _holder(port: int) -> str:
    """Who listens on the port: `name (pid N)` when psutil may see it."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                process = psutil.Process(conn.pid)
                command = " ".join(process.cmdline()[:4]) or process.name()
                return f"{command} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return "another process"


class _Health(msgspec.Struct):
    """What the doctor reads of an /api/health answer."""

    version: str
    components: object  # there in an appliance's answer; its content does not matter here
    status: object = "?"


def _appliance_health(host: str, port: int) -> _Health | None:
    """/api/health's body when an appliance answers there, else None."""
    local = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
    try:
        body = httpx.get(url + "/api/health", timeout=HTTP_TIMEOUT_SECONDS).json()
    except (httpx.HTTPError, ValueError):
        return None
    try:
        return msgspec.convert(body, _Health)
    except msgspec.ValidationError:
        return None


def _free_port_after(host: str, port: int) -> int | None:
    return next((p for p in range(port + 1, min(port + 100, 65536)) if _bind(host, p) is None), None)


def check_port(settings: Settings) -> Check:
    name = "port"
    host, port = settings.host, settings.port
    where = f"{host}:{port}"
    error = _bind(host, port)
    if error is None:
        return Check(name, OK, f"{where} is free")
    if error.errno == errno.EACCES:
        return Check(
            name,
            FAIL,
            f"{_owner(os.geteuid())} may not bind {where} (ports below 1024 need root)",
            "use a port above 1023: appliance serve --port 8080 (setting port), or run as root",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return Check(
            name,
            FAIL,
            f"{host!r} is not an address of this machine ({error.strerror})",
            "appliance serve --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (all interfaces); setting host",
        )
    if error.errno != errno.EADDRINUSE:
        return Check(name, FAIL, f"cannot bind {where}: {error.strerror}", "choose another --host or --port")
    holder = _holder(port)
    health = _appliance_health(host, port)
    if health is not None:
        version = health.version
        if version == __version__:
            return Check(name, OK, f"serving: appliance {version} answers on {where} ({holder}, {health.status})")
        return Check(
            name,
            WARN,
            f"serving: appliance {version} answers on {where} ({holder}), but this binary is {__version__}",
            "restart the service to run this version (systemctl restart appliance)",
        )
    spare = _free_port_after(host, port)
    suggestion = f"appliance serve --port {spare}" if spare else "appliance serve --port PORT"
    return Check(
        name,
        FAIL,
        f"{where} is in use by {holder}, which is not an appliance",
        f"stop that process, or choose another port: {suggestion} (setting port, env APPLIANCE_PORT)",
    )
