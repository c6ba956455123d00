"""Helpers for tests: start a real `appliance serve` process and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


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


def start_server(
    data_dir: Path, env: dict[str, str] | None = None, port: int | None = None, timeout: float = 30
) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_file = open(log_path, "ab")
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            # /docs is not rate limited, so probing does not use up the anonymous budget
            if httpx.get(url + "/docs", timeout=1).status_code == 200:
                return ServerProcess(proc, url, data_dir, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not answer within {timeout}s:\n{log_path.read_text()}")


def wait_for_status(
    client: httpx.Client, eval_id: str, timeout: float = 60, until=("completed", "failed", "timeout")
) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/eval-status/{eval_id}")
        response.raise_for_status()
        body = response.json()
        if body["status"] in until:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{eval_id} still {body.get('status')} after {timeout}s: {body}")


def run_eval(
    client: httpx.Client,
    code: str,
    language: str = "python",
    timeout: float = 30,
    wait: float = 90,
    engine: str | None = None,
    files: dict[str, str] | None = None,
) -> dict:
    body = {"code": code, "language": language, "timeout": timeout}
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
