"""The allow-listing HTTP proxy a sandbox's traffic leaves through (see runtime/egress.py).

It runs in its own container (python3 of the python runtime image, standard library
only), shipped as text with `core/allowed_hosts.py`, which decides what is allowed. It
listens on port 3128 and understands two requests, one per connection:

* `CONNECT host:port HTTP/1.1` (HTTPS and anything else a client tunnels): if
  host:port is allowed, it connects, answers 200 and relays bytes both ways;
* a plain HTTP request in absolute form (`GET http://host[:port]/path HTTP/1.1`), or in
  origin form with a `Host` header: the host the request names must be allowed, and a
  `Host` header beside an absolute URI must name the same host (no fronting another
  site through an allowed one). The request goes out in origin form with
  `Connection: close`; the response is relayed back.

Anything else is answered 400 (not HTTP), 403 (not allowed, with the reason), 405 (an
`https://` URI without CONNECT) or 502 (the host did not answer), and closed. Names are
resolved here, by the proxy's own resolver, never by the sandbox (it has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from urllib.parse import urlsplit

from appliance.core.allowed_hosts import allows

PORT = 3128
ALLOWED_ENV = "EGRESS_ALLOWED_HOSTS"  # a JSON list of canonical entries
MAX_HEAD_BYTES = 64 * 1024
MAX_CLIENTS = 128  # connections at once; more wait their turn
HEAD_SECONDS = 30.0
CONNECT_SECONDS = 15.0
IDLE_SECONDS = 900.0  # a tunnel with no byte either way for this long is closed
CHUNK = 64 * 1024

_REQUEST_LINE = re.compile(r"^([A-Z]{1,20}) (\S{1,8192}) HTTP/1\.[01]$")
_AUTHORITY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+)(?::([0-9]{1,5}))?$")
# Hop-by-hop headers, and the proxy's own: never passed on.
_DROPPED = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"})


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 502: "Bad Gateway"}


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    match = _AUTHORITY.match(text)
    if not match or (match.group(2) is None and default_port is None):
        raise Refused(400, f"not a host:port: {text[:100]!r}")
    port = int(match.group(2)) if match.group(2) else default_port
    assert port is not None
    if not 1 <= port <= 65535:
        raise Refused(400, f"port {port} is out of range")
    return match.group(1), port


class Request:
    """What the head of a request asks for."""

    def __init__(self, head: bytes) -> None:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise Refused(400, "not an HTTP request") from None
        lines = text.split("\r\n")
        match = _REQUEST_LINE.match(lines[0])
        if not match:
            raise Refused(400, "not an HTTP request")
        self.method, self.target = match.group(1), match.group(2)
        self.version = lines[0].rsplit(" ", 1)[1]
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise Refused(400, "a header line is malformed")
            self.headers.append((name, value.strip()))
        self.path = "/"

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    def destination(self) -> tuple[str, int]:
        if self.method == "CONNECT":
            return _authority(self.target, None)
        hosts = self.header("host")
        if len(hosts) > 1:
            raise Refused(400, "more than one Host header")
        if self.target.startswith("/"):
            if not hosts:
                raise Refused(400, "a request in origin form needs a Host header")
            self.path = self.target
            return _authority(hosts[0], 80)
        try:
            parts = urlsplit(self.target)
        except ValueError:
            raise Refused(400, f"unsupported request target {self.target[:100]!r}") from None
        if parts.scheme.lower() == "https":
            raise Refused(405, "https:// goes through CONNECT (set HTTPS_PROXY), not a plain request")
        if parts.scheme.lower() != "http" or not parts.netloc:
            raise Refused(400, f"unsupported request target {self.target[:100]!r}")
        host, port = _authority(parts.netloc, 80)
        if hosts:
            named, _ = _authority(hosts[0], 80)
            if named.lower().rstrip(".") != host.lower().rstrip("."):
                raise Refused(403, f"the Host header ({named[:100]}) names another host than the URI ({host[:100]})")
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return host, port

    def outgoing_head(self, host: str, port: int) -> bytes:
        lines = [f"{self.method} {self.path} {self.version}", f"Host: {host}" + ("" if port == 80 else f":{port}")]
        for name, value in self.headers:
            if name.lower() not in _DROPPED and name.lower() != "host":
                lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Activity:
    """When a byte last went either way: a tunnel is idle only when both directions are."""

    def __init__(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def idle_for(self) -> float:
        return asyncio.get_running_loop().time() - self.last


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, activity: _Activity) -> None:
    try:
        while True:
            try:
                data = await asyncio.wait_for(source.read(CHUNK), IDLE_SECONDS)
            except TimeoutError:
                if activity.idle_for() < IDLE_SECONDS:
                    continue
                raise
            if not data:
                break
            activity.touch()
            sink.write(data)
            await sink.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()


async def _relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    activity = _Activity()
    tasks = [
        asyncio.ensure_future(_pump(client[0], upstream[1], activity)),
        asyncio.ensure_future(_pump(upstream[0], client[1], activity)),
    ]
    try:
        # Until both directions end; an error or the idle timeout on one ends both.
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        upstream[1].close()


class Proxy:
    def __init__(self, allowed: list[str]) -> None:
        self.allowed = allowed
        self.slots = asyncio.Semaphore(MAX_CLIENTS)

    def log(self, peer: object, verdict: str, what: str) -> None:
        print(f"{verdict} {what} from {peer}", file=sys.stderr, flush=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with self.slots:
                await self._serve(peer, reader, writer)
        except Refused as exc:
            self.log(peer, "refused", exc.reason)
            body = f"egress proxy: {exc.reason}\n".encode()
            head = (
                f"HTTP/1.1 {exc.status} {_STATUS_TEXT[exc.status]}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                writer.write(head.encode() + body)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to answer
        except Exception as exc:  # one connection's bug must not end the proxy
            self.log(peer, "failed", repr(exc)[:300])
        finally:
            writer.close()

    async def _serve(self, peer: object, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
        except asyncio.LimitOverrunError:
            raise Refused(400, f"request head larger than {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return
            raise Refused(400, "not an HTTP request") from None
        except TimeoutError:
            raise Refused(400, "no complete request head in time") from None
        request = Request(head[:-4])
        host, port = request.destination()
        if not allows(self.allowed, host, port):
            raise Refused(403, f"{host[:200]}:{port} is not in this sandbox's network.allowed_hosts")
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), port), CONNECT_SECONDS)
        except (TimeoutError, OSError) as exc:
            raise Refused(502, f"could not connect to {host[:200]}:{port}: {exc or type(exc).__name__}") from None
        self.log(peer, "allowed", f"{request.method} {host}:{port}")
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream[1].write(request.outgoing_head(host, port))
        await _relay((reader, writer), upstream)


async def serve(allowed: list[str], port: int = PORT) -> None:
    proxy = Proxy(allowed)
    server = await asyncio.start_server(proxy.handle, "0.0.0.0", port, limit=MAX_HEAD_BYTES, backlog=512)
    print(f"egress proxy on :{port}, allowed: {', '.join(allowed)}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    allowed = json.loads(os.environ.get(ALLOWED_ENV, "[]"))
    if not isinstance(allowed, list) or not all(isinstance(e, str) for e in allowed):
        print(f"{ALLOWED_ENV} must be a JSON list of strings", file=sys.stderr)
        return 2
    asyncio.run(serve(allowed))
    return 0
