"""Plain HTTP/1.1 to the engine for the three calls every sandbox makes: create, attach,
start.

The docker SDK spends about 1.2 ms of CPU on each request (requests, urllib3); this
spends 0.4. On a machine the engine keeps busy, CPU is what limits executions per
second, so the calls on every execution's path skip the SDK. Everything else still goes
through it. Each engine thread keeps its own connection; an attach takes a connection
of its own, which becomes the container's stdio stream.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from typing import Any
from urllib.parse import urlparse

import docker.errors

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class EngineHTTP:
    def __init__(self, base_url: str, api_version: str, timeout: float = 60.0) -> None:
        url = base_url or os.environ.get("DOCKER_HOST", "") or f"unix://{DEFAULT_SOCKET}"
        parsed = urlparse(url)
        self._unix_path = parsed.path if parsed.scheme in ("unix", "http+unix") else None
        self._address = (parsed.hostname or "localhost", parsed.port or 2375)
        self._prefix = f"/v{api_version}"
        self._timeout = timeout
        self._local = threading.local()

    @staticmethod
    def supports(base_url: str) -> bool:
        """Unix sockets and plain tcp; TLS engines stay with the SDK."""
        url = base_url or os.environ.get("DOCKER_HOST", "")
        return not url or (url.startswith(("unix://", "tcp://")) and not os.environ.get("DOCKER_TLS_VERIFY"))

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._unix_path:
            return _UnixConnection(self._unix_path, self._timeout)
        return http.client.HTTPConnection(*self._address, timeout=self._timeout)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):  # a kept-alive connection the engine closed: one retry
            conn = getattr(self._local, "conn", None) or self._new_connection()
            self._local.conn = conn
            try:
                payload = None if body is None else json.dumps(body)
                headers = {"Content-Type": "application/json"} if payload is not None else {}
                conn.request(method, self._prefix + path, payload, headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        if response.status >= 400:
            try:
                message = json.loads(data).get("message", data.decode(errors="replace"))
            except ValueError:
                message = data.decode(errors="replace")
            error = docker.errors.NotFound if response.status == 404 else docker.errors.APIError
            raise error(f"{response.status} {message}")
        return json.loads(data) if data else None

    def create(self, config: dict[str, Any]) -> str:
        return self._request("POST", "/containers/create", config)["Id"]

    def start(self, container_id: str) -> None:
        self._request("POST", f"/containers/{container_id}/start")

    def attach(self, container_id: str) -> socket.socket:
        """The container's stdin, stdout and stderr as one socket (multiplexed frames)."""
        conn = self._new_connection()
        conn.connect()
        sock = conn.sock
        request = (
            f"POST {self._prefix}/containers/{container_id}/attach?stream=1&stdin=1&stdout=1&stderr=1 "
            "HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:  # byte by byte: nothing after the headers is ours to take
            chunk = sock.recv(1)
            if not chunk:
                raise docker.errors.APIError("the engine closed the attach connection")
            head += chunk
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"0"
        if status not in (b"101", b"200"):
            sock.close()
            raise docker.errors.APIError(f"attach refused: {head.decode(errors='replace').splitlines()[0]}")
        sock.settimeout(None)
        return sock
