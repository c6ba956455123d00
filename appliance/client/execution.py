"""Code execution: run and wait, state, cancel, and streaming over /ws/execute."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from appliance.client.transport import ApiError, Transport, to_records

_OPTIONS = ("timeout", "memory_limit", "cpu_limit", "files", "environment", "network_access", "engine")


def execution_body(language: str, code: str, options: dict[str, Any]) -> dict[str, Any]:
    """The request body; `files` may also be given as {name: content}."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown execution option(s): {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    body: dict[str, Any] = {"language": language, "code": code}
    for name, value in options.items():
        if value is None:
            continue
        if name == "files" and isinstance(value, dict):
            value = [{"name": n, "content": c} for n, c in value.items()]
        body[name] = value
    return body


class ExecutionStream:
    """One /ws/execute connection: `run(...)` sends an execution, `messages()` yields
    what the server sends (Records), `send(...)` any other message (cancel, ping)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, message: dict[str, Any]) -> None:
        self.connection.send(json.dumps(message))

    def run(self, language: str, code: str, **options: Any) -> None:
        self.send({"type": "execute", **execution_body(language, code, options)})

    def cancel(self, execution_id: str | None = None) -> None:
        self.send({"type": "cancel", **({"execution_id": execution_id} if execution_id else {})})

    def receive(self, timeout: float | None = None) -> Any:
        return to_records(json.loads(self.connection.recv(timeout)))

    def messages(self, timeout: float | None = None) -> Iterator[Any]:
        while True:
            yield self.receive(timeout)

    def close(self) -> None:
        self.connection.close()


class ExecutionApi(Transport):
    def execute(self, language: str, code: str, **options: Any) -> Any:
        """POST /api/execute: runs and returns the result (execution_id, status, output,
        error, exit_code, execution_time, memory_used, files_created). Options: timeout,
        memory_limit ("256M"), cpu_limit, files ([{name, content}] or {name: content}),
        environment, network_access, engine."""
        return self.call("POST", "/api/execute", json=execution_body(language, code, options))

    def get_execution(self, execution_id: str, *, wait: float | None = None) -> Any:
        """GET /api/execute/{id}; with `wait` (seconds, at most the server's
        status_wait_max_seconds) the answer comes when the execution ends, or when the wait
        is over."""
        params = {} if wait is None else {"wait": wait}
        return self.call("GET", f"/api/execute/{execution_id}", params=params)

    def cancel_execution(self, execution_id: str) -> Any:
        return self.call("DELETE", f"/api/execute/{execution_id}")

    @contextmanager
    def execution_stream(self, *, open_timeout: float = 10) -> Iterator[ExecutionStream]:
        """A /ws/execute connection for several runs: `with client.execution_stream() as s:`."""
        # The key or token as a header, as for HTTP (a query string ends up in logs).
        headers = {
            name: value for name, value in self.http.headers.items() if name.lower() in ("x-api-key", "authorization")
        }
        with connect(
            f"{self.ws_base}/ws/execute", additional_headers=headers, open_timeout=open_timeout, max_size=None
        ) as connection:
            yield ExecutionStream(connection)

    def stream_execute(
        self, language: str, code: str, *, receive_timeout: float | None = 120, **options: Any
    ) -> Iterator[Any]:
        """Run over /ws/execute and yield each message (accepted, status, output, ...)
        up to and including the `completion`. An `error` message raises ApiError."""
        with self.execution_stream() as stream:
            stream.run(language, code, **options)
            for message in stream.messages(receive_timeout):
                if message.get("type") == "error":
                    error = message.get("error") or {}
                    raise ApiError(
                        message.get("status", 0),
                        error.get("code", "ERROR"),
                        error.get("message", ""),
                        error.get("details"),
                        error.get("request_id"),
                    )
                yield message
                if message.get("type") == "completion":
                    return
