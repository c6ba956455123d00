"""Helpers for tests of the experiments API (experiments-api.md, /api/v1)."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.support import ServerProcess, start_server

V1_ERROR_KEYS = {"code", "message", "details"}

# Every server of these tests: limits out of the way (the rate-limit tests start their
# own), and no warm containers (nothing here runs code).
V1_SERVER_ENV = {
    "APPLIANCE_RATE_LIMIT_READ": "100000",
    "APPLIANCE_RATE_LIMIT_WRITE": "100000",
    "APPLIANCE_RATE_LIMIT_EXPORT": "100000",
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
    "APPLIANCE_RATE_LIMIT_ANONYMOUS": "100000",
    "APPLIANCE_WARM_POOL_MIN_IDLE": "0",
}

SEEDED_CONFIG = """
[[models]]
name = "Seeded Llama"
provider = "openai-compatible"
[models.config]
base_url = "http://127.0.0.1:9/v1"
model = "llama-3-8b"
api_key_env = "SEEDED_LLAMA_KEY"
max_tokens = 512

[[models]]
id = "model_seeded-claude"
name = "Seeded Claude"
provider = "anthropic"
status = "inactive"
config = { model = "claude-3-5-sonnet-latest", api_key_env = "SEEDED_CLAUDE_KEY" }
"""
SEEDED_IDS = ("model_seeded-llama", "model_seeded-claude")


def fake_secret() -> str:
    """A provider key that exists only in a test's environment."""
    return f"sk-test-{secrets.token_hex(16)}"


def start_v1_server(data_dir: Path, env: dict[str, str] | None = None, config: str = SEEDED_CONFIG) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text(config)
    return start_server(data_dir, env={**V1_SERVER_ENV, **(env or {})})


def assert_v1_error(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    """experiments-api.md's error: {"error": {code, message, details}}, the code of the
    document's table, and each of `words` in the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == V1_ERROR_KEYS, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["details"], dict) and isinstance(error["message"], str) and error["message"], body
    for word in words:
        assert word.lower() in error["message"].lower(), body
    return error


def assert_invalid(response: httpx.Response, *fields: str) -> dict:
    """A 422 validation_error whose details name each of `fields` with a list of messages."""
    error = assert_v1_error(response, 422, "validation_error")
    for field in fields:
        assert field in error["details"], error
        messages = error["details"][field]
        assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages), error
    return error


def bearer(server: ServerProcess, credential: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {credential}"}, timeout=30)
