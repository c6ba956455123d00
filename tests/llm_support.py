"""Helpers for the LLM evaluation tests: an appliance whose model registry points at a
scripted model server on loopback (tests/llm_servers.py), one entry per wire protocol
and per behaviour a test needs, and the llm-eval error shape."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.llm_servers import ScriptedModelServer
from tests.support import ServerProcess, start_server

ANTHROPIC_KEY = f"sk-ant-test-{secrets.token_hex(16)}"
KEY_ENV = "SCRIPTED_ANTHROPIC_KEY"

LLM_ENV = {
    "APPLIANCE_RATE_LIMIT_LLM": "100000",
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
    "APPLIANCE_RATE_LIMIT_BATCH": "100000",
    "APPLIANCE_RATE_LIMIT_READ": "100000",
    "APPLIANCE_RATE_LIMIT_WRITE": "100000",
    "APPLIANCE_RATE_LIMIT_ANONYMOUS": "100000",
    "APPLIANCE_WARM_POOL_MIN_IDLE": "0",
    # Retries without the waits a real server would deserve.
    "APPLIANCE_LLM_RETRY_BASE_SECONDS": "0.05",
    "APPLIANCE_LLM_RETRY_MAX_SECONDS": "5",
    KEY_ENV: ANTHROPIC_KEY,
}


def models_config(url: str, key_file: Path | None = None) -> str:
    """`[[models]]` of every wire protocol and behaviour, on the scripted server at `url`."""
    entries = [
        ("model_chat", "Scripted Chat", "openai-compatible", {"base_url": f"{url}/v1", "model": "scripted-chat"}),
        (
            "model_chat-stream",
            "Scripted Chat Stream",
            "openai-compatible",
            {"base_url": f"{url}/v1", "model": "scripted-chat", "stream": True},
        ),
        (
            "model_completions",
            "Scripted Completions",
            "openai-compatible",
            {"base_url": f"{url}/v1", "model": "scripted-completions", "api": "completions"},
        ),
        (
            "model_completions-stream",
            "Scripted Completions Stream",
            "openai-compatible",
            {"base_url": f"{url}/v1", "model": "scripted-completions", "api": "completions", "stream": True},
        ),
        (
            "model_claude",
            "Scripted Claude",
            "claude",
            {"base_url": url, "model": "claude-scripted", "api_key_env": KEY_ENV, "max_tokens": 300},
        ),
        (
            "model_claude-stream",
            "Scripted Claude Stream",
            "anthropic",
            {"base_url": url, "model": "claude-scripted", "api_key_env": KEY_ENV, "stream": True},
        ),
        ("model_ollama", "Scripted Ollama", "ollama", {"base_url": url}),
        (
            "model_ollama-stream",
            "Scripted Ollama Stream",
            "ollama",
            {"base_url": url, "model": "scripted-llama", "stream": True},
        ),
        (
            "model_ollama-generate",
            "Scripted Ollama Generate",
            "ollama",
            {"base_url": url, "model": "scripted-llama", "api": "completions"},
        ),
        (
            "model_fragile",
            "Fragile",
            "openai-compatible",
            {"base_url": f"{url}/v1", "model": "fragile", "timeout_seconds": 1, "max_retries": 2},
        ),
        (
            "model_limited",
            "Limited",
            "openai-compatible",
            {"base_url": f"{url}/v1", "model": "limited", "max_concurrency": 2},
        ),
        (
            "model_priced",
            "Priced",
            "openai-compatible",
            {
                "base_url": f"{url}/v1",
                "model": "priced",
                "seed": 100,
                "temperature": 0.7,
                "price_per_input_token": 0.001,
                "price_per_output_token": 0.002,
            },
        ),
        ("model_judge", "Judge", "openai-compatible", {"base_url": f"{url}/v1", "model": "judge"}),
    ]
    lines = []
    for model_id, name, provider, config in entries:
        lines += ["[[models]]", f'id = "{model_id}"', f'name = "{name}"', f'provider = "{provider}"', "[models.config]"]
        lines += [f"{key} = {_toml(value)}" for key, value in config.items()]
        lines.append("")
    lines += [
        "[[models]]",
        'id = "model_embed"',
        'name = "Embedder"',
        'provider = "openai-compatible"',
        'type = "embedding"',
        "[models.config]",
        f'base_url = "{url}/v1"',
        'model = "scripted-embed"',
        "",
    ]
    if key_file is not None:
        lines += [
            "[[models]]",
            'id = "model_keyfile"',
            'name = "Key File"',
            'provider = "anthropic"',
            "[models.config]",
            f'base_url = "{url}"',
            'model = "claude-scripted"',
            f'api_key_file = "{key_file}"',
            "",
        ]
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def start_llm_server(
    data_dir: Path, model_server: ScriptedModelServer, env: dict[str, str] | None = None, key_file: Path | None = None
) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text(models_config(model_server.url, key_file))
    return start_server(
        data_dir, env={**LLM_ENV, "APPLIANCE_DEFAULT_MODEL_URL": f"{model_server.url}/v1", **(env or {})}
    )


def assert_llm_error(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    """llm-eval-api.md's error: {"error": {"code", "message"}} (and `details` when there
    is something to add), with each of `words` in the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"} and error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    for word in words:
        assert word.lower() in error["message"].lower(), body
    return error
