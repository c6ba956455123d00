"""Helpers for tests: start a real `appliance serve` process, talk to it, and wait for
things to happen without betting on how fast the machine is."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

# A bound only a hang breaks. CI runs on a busy 2-core machine (under gVisor, too), where
# anything may take several times as long as on an idle one; how fast things are is
# measured by bench/ beside a baseline (docs/benchmarks.md), never asserted here.
HANG_SECONDS = 60.0


def _describe(message: str | Callable[[], str]) -> str:
    return message() if callable(message) else message


def _timed_out(
    message: str | Callable[[], str], timeout: float, last: Any, error: AssertionError | None
) -> AssertionError:
    detail = f"{_describe(message)}: not within {timeout:g} s"
    if error is not None:
        detail += f"; last check: {error}"
    elif last is not None:
        detail += f"; last value: {last!r}"[:2000]
    return AssertionError(detail)


def eventually(
    condition: Callable[[], Any],
    *,
    timeout: float = HANG_SECONDS,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
) -> Any:
    """Call `condition()` until it returns something truthy, and return that.

    An AssertionError from `condition` means "not yet" (so a check can be a function of
    plain asserts); any other exception ends the wait at once (`pytest.fail` for a state
    that can never come right). After `timeout` seconds
    the wait fails with `message` (a text, or a function giving one, called then) and
    the last value or assertion seen."""
    deadline = time.monotonic() + timeout
    while True:
        error = None
        try:
            value = condition()
        except AssertionError as exc:
            value, error = None, exc
        if value and error is None:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(message, timeout, value, error) from error
        time.sleep(interval)


async def eventually_async(
    condition: Callable[[], Any],
    *,
    timeout: float = HANG_SECONDS,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Any:
    """`eventually` for a running event loop: `condition()` may return an awaitable, and
    the wait between checks is `sleep` (a Textual pilot passes `pilot.pause`), so the
    loop runs on meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        error = None
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError as exc:
            value, error = None, exc
        if value and error is None:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(message, timeout, value, error) from error
        await sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, url: str, data_dir: Path, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.data_dir = data_dir
        self.log_path = log_path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def client(self, key: str | None = None, headers: dict | None = None) -> httpx.Client:
        headers = {**({"X-API-Key": key} if key else {}), **(headers or {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_hard(self) -> None:
        """SIGKILL: what a crash or an OOM killer does."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def answers(url: str, path: str = "/docs") -> bool:
    """Whether an HTTP server answers 200 at `url` + `path` (/docs: not rate limited, so
    probing uses up no budget)."""
    try:
        return httpx.get(url + path, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(
    data_dir: Path, env: dict[str, str] | None = None, port: int | None = None, timeout: float = HANG_SECONDS
) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance",
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        return answers(url)

    try:
        eventually(serving, timeout=timeout, interval=0.05, message=lambda: f"server answering\n{log_path.read_text()}")
    except AssertionError:
        proc.kill()
        proc.wait(10)
        raise
    return ServerProcess(proc, url, data_dir, log_path)


FINAL_STATUSES = ("completed", "failed", "timeout")


def wait_for_status(
    client: httpx.Client, eval_id: str, timeout: float = HANG_SECONDS, until=FINAL_STATUSES, interval: float = 0.05
) -> dict:
    """The evaluation's status body once its status is one of `until` (default: final)."""
    last: dict = {}

    def reached() -> dict | None:
        response = client.get(f"/api/eval-status/{eval_id}")
        response.raise_for_status()
        last.update(response.json())
        return dict(last) if last["status"] in until else None

    return eventually(
        reached, timeout=timeout, interval=interval, message=lambda: f"{eval_id} reaching {until} (now: {last})"
    )


def run_eval(
    client: httpx.Client,
    code: str,
    language: str = "python",
    timeout: float = 30,
    wait: float = 90,
    engine: str | None = None,
    files: dict[str, str] | None = None,
) -> dict:
    body: dict[str, Any] = {"code": code, "language": language, "timeout": timeout}
    if engine is not None:
        body["engine"] = engine
    if files is not None:
        body["files"] = files
    response = client.post("/api/eval", json=body)
    assert response.status_code == 200, response.text
    return wait_for_status(client, response.json()["eval_id"], wait)


SANDBOX_ERROR_KEYS = {"code", "message", "details", "request_id"}


def assert_sandbox_error(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    """A sandbox-surface error: {"error": {code, message, details, request_id}}, the
    request id also in X-Request-ID, and each of `words` in the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == SANDBOX_ERROR_KEYS, body
    error = body["error"]
    assert error["code"] == code, body
    assert error["request_id"].startswith("req_") and response.headers["x-request-id"] == error["request_id"]
    assert isinstance(error["details"], dict)
    for word in words:
        assert word.lower() in error["message"].lower(), body
    return error


def expect_api_error(call, status: int, code: str, *words: str):
    """`call()` raises the client's ApiError with this status and code, a request id, and
    each of `words` in its message."""
    import pytest

    from appliance.client import ApiError

    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert (error.status_code, error.code) == (status, code), error
    assert error.request_id and error.request_id.startswith("req_")
    for word in words:
        assert word.lower() in error.message.lower(), error
    return error


def remove_sandboxes_of(data_dir: Path) -> int:
    """Remove the persistent sandbox containers whose files live under `data_dir`.

    Sandboxes outlive their server by design; a test's data dir does not outlive the
    test, so its sandboxes must not either (a failed test may not have deleted its own)."""
    import docker

    client = docker.from_env()
    removed = 0
    try:
        for container in client.containers.list(
            all=True, ignore_removed=True, filters={"label": "appliance.persistent"}
        ):
            sources = [m.get("Source", "") for m in container.attrs.get("Mounts", [])]
            if any(Path(s).is_relative_to(data_dir.resolve()) for s in sources if s):
                container.remove(force=True)
                removed += 1
    finally:
        client.close()
    return removed
