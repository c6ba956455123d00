"""A model registry entry as a server to call: which wire protocol, where, with which
key, limits and prices. The entry's `config` keys (docs/llm-eval-api.md, "Models"):
base_url, model, api ("chat" or "completions"), api_key_env or api_key_file,
temperature, max_tokens, top_p, seed, timeout_seconds, max_retries, max_concurrency,
requests_per_minute, price_per_input_token, price_per_output_token, stream,
anthropic_version."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from appliance.core.errors import ValidationError
from appliance.core.llm.calls import Parameters
from appliance.core.models import Model


class Wire(StrEnum):
    OPENAI_CHAT = "openai-chat"
    OPENAI_COMPLETIONS = "openai-completions"
    ANTHROPIC = "anthropic"
    OLLAMA_CHAT = "ollama-chat"
    OLLAMA_GENERATE = "ollama-generate"


DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "claude": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
}
ANTHROPIC_VERSION = "2023-06-01"
# The Messages API requires max_tokens; this is what is sent when nothing names one.
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024


class CallDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """The settings an entry's config may override."""

    timeout_seconds: float = 120.0
    max_retries: int = 3
    max_concurrency: int = 8
    requests_per_minute: int = 0


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    model_id: str
    provider: str  # the registry's name (openai, claude, ...)
    wire: Wire
    base_url: str
    model_name: str  # "": ask the server for the models it serves and take the first
    api_key_env: str | None = None
    api_key_file: str | None = None
    defaults: Parameters = Parameters()
    timeout_seconds: float
    max_retries: int
    max_concurrency: int
    requests_per_minute: int
    price_per_input_token: float | None = None
    price_per_output_token: float | None = None
    stream: bool = False
    anthropic_version: str = ANTHROPIC_VERSION

    @property
    def server(self) -> tuple[str, str]:
        """What limits are kept per: the protocol family and the base URL."""
        return self.wire.value.split("-")[0], self.base_url

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        if self.price_per_input_token is None and self.price_per_output_token is None:
            return None
        return tokens_in * (self.price_per_input_token or 0.0) + tokens_out * (self.price_per_output_token or 0.0)


def _wire(model: Model, api: str) -> Wire:
    if model.provider in ("openai", "openai-compatible"):
        return Wire.OPENAI_COMPLETIONS if api == "completions" else Wire.OPENAI_CHAT
    if model.provider in ("anthropic", "claude"):
        if api == "completions":
            raise ValidationError(f"model {model.id}: Anthropic's Messages API has no completions style (config.api)")
        return Wire.ANTHROPIC
    if model.provider == "ollama":
        return Wire.OLLAMA_GENERATE if api == "completions" else Wire.OLLAMA_CHAT
    raise ValidationError(
        f"model {model.id} has provider {model.provider!r}, which the appliance cannot call; "
        "use openai-compatible (any server speaking OpenAI's API), openai, anthropic (or claude) or ollama"
    )


def _number(config: dict[str, Any], key: str) -> float | None:
    value = config.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _base_url(model: Model, wire: Wire) -> str:
    base = str(model.config.get("base_url") or model.config.get("endpoint") or "").strip().rstrip("/")
    if not base:
        if model.provider not in DEFAULT_BASE_URLS:
            raise ValidationError(
                f"model {model.id} ({model.provider}) needs config.base_url: where the server answers, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        base = DEFAULT_BASE_URLS[model.provider]
    if wire in (Wire.OLLAMA_CHAT, Wire.OLLAMA_GENERATE) and base.endswith("/v1"):
        base = base[: -len("/v1")]  # Ollama's native API is beside its OpenAI one
    return base


def endpoint_of(model: Model, defaults: CallDefaults) -> Endpoint:
    """ValidationError when the entry cannot be called (its provider, a missing URL)."""
    config = model.config
    wire = _wire(model, str(config.get("api") or "chat"))
    model_name = str(config.get("model") or "").strip()
    if not model_name and wire is Wire.ANTHROPIC:
        raise ValidationError(f"model {model.id} needs config.model: Anthropic's name of the model")
    retries, per_minute = _whole(config, "max_retries"), _whole(config, "requests_per_minute")
    return Endpoint(
        model_id=model.id,
        provider=model.provider,
        wire=wire,
        base_url=_base_url(model, wire),
        model_name=model_name,
        api_key_env=str(config["api_key_env"]) if config.get("api_key_env") else None,
        api_key_file=str(config["api_key_file"]) if config.get("api_key_file") else None,
        defaults=Parameters(
            temperature=_number(config, "temperature"),
            max_tokens=_whole(config, "max_tokens"),
            top_p=_number(config, "top_p"),
            seed=_whole(config, "seed"),
        ),
        timeout_seconds=_number(config, "timeout_seconds") or defaults.timeout_seconds,
        max_retries=defaults.max_retries if retries is None else retries,
        max_concurrency=_whole(config, "max_concurrency") or defaults.max_concurrency,
        requests_per_minute=defaults.requests_per_minute if per_minute is None else per_minute,
        price_per_input_token=_number(config, "price_per_input_token"),
        price_per_output_token=_number(config, "price_per_output_token"),
        stream=config.get("stream") is True,
        anthropic_version=str(config.get("anthropic_version") or ANTHROPIC_VERSION),
    )
